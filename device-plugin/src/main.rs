//! `sriov-device-plugin`: advertises SR-IOV VFs to kubelet as extended
//! resources. Today: `discover`, which prints the pools this host would
//! advertise under a config. Serving kubelet comes next (issue 3).

mod config;
mod device;
mod discover;
mod health;
mod pool;
mod selector;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sriovnet::{default_route_interfaces, Sysfs};

use config::{Config, DEFAULT_PREFIX};

#[derive(Parser)]
#[command(name = "sriov-device-plugin", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the pools this host would advertise, and exit.
    Discover(DiscoverArgs),
}

#[derive(Args)]
struct DiscoverArgs {
    #[arg(long, default_value = "/etc/pcidp/config.json")]
    config_file: PathBuf,
    /// The sysfs tree to read (a fake tree for tests).
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// The prefix of pools that do not set resourcePrefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    resource_prefix: String,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn discover(args: &DiscoverArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.config_file)
        .map_err(|e| format!("read {}: {e}", args.config_file.display()))?;
    let config = Config::parse(&text, &args.resource_prefix)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let sysfs = Sysfs::new(&args.sysfs_root);
    let routes = default_route_interfaces(Path::new("/proc/net")).map_err(|e| e.to_string())?;
    let inventory = sysfs.scan(&routes).map_err(|e| e.to_string())?;
    for problem in &inventory.problems {
        eprintln!("warning: skipped: {problem}");
    }
    let devices = device::candidates(&sysfs, &inventory, &routes);
    let pools = pool::assign(&config.resources, &devices);
    match args.output {
        Output::Json => println!("{}", discover::to_json(&sysfs, &pools)),
        Output::Table => print!("{}", discover::to_table(&sysfs, &pools)),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Discover(args) => discover(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("sriov-device-plugin: {reason}");
            ExitCode::FAILURE
        }
    }
}
