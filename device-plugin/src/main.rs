//! `sriov-device-plugin`: advertises SR-IOV VFs to kubelet as extended
//! resources. Without a subcommand it is the daemon; `discover` prints the
//! pools this host would advertise under a config, and exits.

mod allocate;
mod cdi;
mod config;
mod daemon;
mod device;
mod device_info;
mod discover;
mod health;
mod metrics;
mod pool;
mod preferred;
mod register;
mod selector;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sriovnet::Sysfs;

use config::{Config, DEFAULT_PREFIX};

#[derive(Parser)]
#[command(name = "sriov-device-plugin", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[arg(long, default_value = "/etc/pcidp/config.json")]
    config_file: PathBuf,
    /// The prefix of pools that do not set resourcePrefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    resource_prefix: String,
    /// The sysfs tree to read (a fake tree for tests).
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// Where pool sockets go and kubelet serves kubelet.sock.
    #[arg(long, default_value = kubelet_api::deviceplugin::v1beta1::DEVICE_PLUGIN_PATH)]
    device_plugin_dir: PathBuf,
    /// Where NPWG device-info files of allocated devices are written.
    #[arg(long, default_value = device_info::DEFAULT_DIR)]
    device_info_dir: PathBuf,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9808).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Write a CDI spec per pool and name devices for CDI at Allocate.
    #[arg(long)]
    cdi: bool,
    /// Where CDI specs go.
    #[arg(long, default_value = cdi::DEFAULT_DIR)]
    cdi_dir: PathBuf,
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
    let config = Config::load(&args.config_file, &args.resource_prefix)?;
    let sysfs = Sysfs::new(&args.sysfs_root);
    let (inventory, routes) = device::scan(&sysfs)?;
    let devices = device::candidates(&sysfs, &inventory, &routes);
    let pools = pool::assign(&config.resources, &devices);
    match args.output {
        Output::Json => println!("{}", discover::to_json(&sysfs, &pools)),
        Output::Table => print!("{}", discover::to_table(&sysfs, &pools)),
    }
    Ok(())
}

fn serve(cli: Cli) -> Result<(), String> {
    // One thread is enough for a handful of pools and keeps the daemon small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(daemon::run(daemon::Options {
        config_file: cli.config_file,
        resource_prefix: cli.resource_prefix,
        sysfs_root: cli.sysfs_root,
        device_plugin_dir: cli.device_plugin_dir,
        device_info_dir: cli.device_info_dir,
        metrics_addr: cli.metrics_addr,
        cdi_dir: cli.cdi.then_some(cli.cdi_dir),
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Some(Command::Discover(args)) => discover(args),
        None => serve(cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("sriov-device-plugin: {reason}");
            ExitCode::FAILURE
        }
    }
}
