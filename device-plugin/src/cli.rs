//! The command line of `sriov-device-plugin`. Without a subcommand it is
//! the daemon; `discover` prints the pools this host would advertise under a
//! config, and exits; `install-cni` copies the `sriov` CNI executable into
//! the host's CNI directory. In the library so that the deploy tests parse
//! the DaemonSet's args with the parser the binary uses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sriovnet::Sysfs;

use crate::core::config::{Api, Config, DEFAULT_PREFIX};
use crate::core::{inventory, pool};
use crate::daemon;
use crate::frontends::{cdi, device_info, discover};
use crate::install_cni;

#[derive(Parser)]
#[command(name = "sriov-device-plugin", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Global: given before or after `discover`, it means the same.
    #[arg(long, global = true, default_value = "/etc/pcidp/config.json")]
    pub config_file: PathBuf,
    /// The prefix of pools that do not set resourcePrefix.
    #[arg(long, global = true, default_value = DEFAULT_PREFIX)]
    pub resource_prefix: String,
    /// The sysfs tree to read (a fake tree for tests).
    #[arg(long, global = true, default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// /proc/net, for the host's default routes (a fake one for tests).
    #[arg(long, global = true, default_value = "/proc/net", hide = true)]
    pub proc_net: PathBuf,
    /// Where pool sockets go and kubelet serves kubelet.sock.
    #[arg(long, default_value = kubelet_api::deviceplugin::v1beta1::DEVICE_PLUGIN_PATH)]
    pub device_plugin_dir: PathBuf,
    /// Where NPWG device-info files of allocated devices are written.
    #[arg(long, default_value = device_info::DEFAULT_DIR)]
    pub device_info_dir: PathBuf,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9808).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Write a CDI spec per pool and name devices for CDI at Allocate.
    #[arg(long, alias = "use-cdi")]
    pub cdi: bool,
    /// Where CDI specs go.
    #[arg(long, default_value = cdi::DEFAULT_DIR)]
    pub cdi_dir: PathBuf,
    /// Register through kubelet's plugin watcher even if its directory is
    /// not there yet (it is used anyway whenever it exists; `Register` on
    /// kubelet.sock is the fallback).
    #[arg(long)]
    pub plugin_watcher: bool,
    /// Where the plugin watcher looks for registration sockets.
    #[arg(long, default_value = kubelet_api::pluginregistration::v1::PLUGINS_REGISTRY_PATH)]
    pub plugins_registry_dir: PathBuf,
    /// Kubelet's pod resources socket: which devices pods hold, kept in
    /// their pool across config changes.
    #[arg(long, default_value = kubelet_api::podresources::v1::KUBELET_SOCKET)]
    pub pod_resources_socket: PathBuf,
    /// The API of pools whose config has no "api": device-plugin or dra.
    #[arg(long, value_enum, default_value_t = DefaultApi::DevicePlugin)]
    pub default_api: DefaultApi,
    /// DRA: this node's name, for its ResourceSlices (the DaemonSet passes
    /// it from the downward API). Without it, DRA pools are not advertised.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// DRA: a kubeconfig for the Kubernetes API (its server named by IP
    /// address), instead of the in-cluster service account.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// DRA: delete this node's ResourceSlices on SIGTERM (an uninstall;
    /// an upgrade keeps them, so the scheduler never sees the node empty).
    #[arg(long)]
    pub delete_slices_on_exit: bool,
    /// DRA: kubelet's plugins directory; the driver's socket and its
    /// checkpoint of prepared claims go in `<dir>/<driver>/`.
    #[arg(long, default_value = crate::frontends::dra::plugin::DEFAULT_PLUGINS_DIR)]
    pub dra_plugins_dir: PathBuf,
    #[command(flatten)]
    upstream_logging: UpstreamLogging,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DefaultApi {
    DevicePlugin,
    Dra,
}

/// Logging: ours, and upstream's flags (its image's entrypoint and
/// glog's), so that its DaemonSet args work. `--log-level` and `-v` set the
/// level; glog's file and filter flags are accepted and ignored (logs go
/// to stderr, where kubelet's container runtime collects them).
#[derive(Args)]
struct UpstreamLogging {
    /// Log level: error, warn, info (default), debug or trace; or a glog
    /// verbosity number (0 is info, 1-3 debug, 4 and more trace).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log lines as text (default) or as JSON objects, one per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[arg(long, global = true, alias = "log_dir", hide = true)]
    log_dir: Option<String>,
    #[arg(long = "v", global = true, hide = true)]
    verbosity: Option<String>,
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    logtostderr: Option<String>,
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    alsologtostderr: Option<String>,
    #[arg(long, global = true, hide = true)]
    stderrthreshold: Option<String>,
    #[arg(long, global = true, hide = true)]
    vmodule: Option<String>,
    #[arg(long, global = true, alias = "log_file", hide = true)]
    log_file: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl UpstreamLogging {
    /// glog's flags that have no meaning here, if any was given.
    fn ignored(&self) -> bool {
        [
            &self.log_dir,
            &self.logtostderr,
            &self.alsologtostderr,
            &self.stderrthreshold,
            &self.vmodule,
            &self.log_file,
        ]
        .iter()
        .any(|flag| flag.is_some())
    }

    /// The level `--log-level` or `-v` asks for (`--log-level` first).
    fn level(&self) -> Result<tracing::Level, String> {
        let Some((flag, value)) = [("--log-level", &self.log_level), ("-v", &self.verbosity)]
            .into_iter()
            .find_map(|(flag, value)| Some((flag, value.as_deref()?)))
        else {
            return Ok(tracing::Level::INFO);
        };
        if let Ok(verbosity) = value.parse::<u32>() {
            return Ok(match verbosity {
                0 => tracing::Level::INFO,
                1..=3 => tracing::Level::DEBUG,
                _ => tracing::Level::TRACE,
            });
        }
        match value.to_ascii_lowercase().as_str() {
            "error" => Ok(tracing::Level::ERROR),
            "warn" | "warning" => Ok(tracing::Level::WARN),
            "info" => Ok(tracing::Level::INFO),
            "debug" => Ok(tracing::Level::DEBUG),
            "trace" => Ok(tracing::Level::TRACE),
            _ => Err(format!(
                "{flag} \"{value}\" is not error, warn, info, debug, trace or a number"
            )),
        }
    }

    /// Logs to stderr, with timestamps, at the level asked for.
    fn init(&self) -> Result<(), String> {
        let builder = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .with_max_level(self.level()?);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
        if self.ignored() {
            tracing::info!(
                "glog's file and filter flags are accepted and ignored; logs go to stderr"
            );
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the pools this host would advertise, and exit.
    Discover(DiscoverArgs),
    /// Copy the `sriov` CNI executable into a CNI directory, atomically.
    InstallCni(InstallCniArgs),
}

#[derive(Args)]
pub struct InstallCniArgs {
    /// The CNI directory, as mounted from the host (upstream sriov-cni
    /// image's name: --cni-bin-dir).
    #[arg(long, alias = "cni-bin-dir", default_value = "/host/opt/cni/bin")]
    pub to: PathBuf,
    /// The executable to install [default: `sriov` beside this one]
    /// (upstream sriov-cni image's name: --sriov-bin-file).
    #[arg(long, alias = "sriov-bin-file")]
    pub from: Option<PathBuf>,
}

#[derive(Args)]
pub struct DiscoverArgs {
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn discover(cli: &Cli, args: &DiscoverArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(&cli.config_file, &cli.resource_prefix)?;
    let sysfs = Sysfs::new(&cli.sysfs_root);
    let (inventory, routes) = inventory::scan(&sysfs, &cli.proc_net)?;
    let devices = inventory::candidates(&sysfs, &inventory, &routes);
    let pools = pool::assign(&config.resources, &devices, &pool::Pins::new());
    match args.output {
        Output::Json => println!("{}", discover::to_json(&sysfs, &pools)),
        Output::Table => print!("{}", discover::to_table(&sysfs, &pools)),
    }
    Ok(())
}

fn install_cni(args: &InstallCniArgs) -> Result<(), Box<dyn std::error::Error>> {
    let from = match &args.from {
        Some(path) => path.clone(),
        None => install_cni::default_source()?,
    };
    let outcome = install_cni::install(&from, &args.to)?;
    let target = args.to.join(install_cni::NAME);
    match outcome {
        install_cni::Outcome::Installed => println!("installed {}", target.display()),
        install_cni::Outcome::Replaced => println!("replaced {}", target.display()),
        install_cni::Outcome::UpToDate => println!("{} is up to date", target.display()),
    }
    Ok(())
}

fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    // One thread is enough for a handful of pools and keeps the daemon small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(daemon::run(daemon::Options {
        config_file: cli.config_file,
        proc_net: cli.proc_net,
        resource_prefix: cli.resource_prefix,
        sysfs_root: cli.sysfs_root,
        device_plugin_dir: cli.device_plugin_dir,
        device_info_dir: cli.device_info_dir,
        metrics_addr: cli.metrics_addr,
        cdi_dir: cli.cdi.then(|| cli.cdi_dir.clone()),
        // As upstream: the plugin watcher wherever kubelet has one.
        plugins_registry_dir: (cli.plugin_watcher || cli.plugins_registry_dir.is_dir())
            .then(|| cli.plugins_registry_dir.clone()),
        pod_resources_socket: cli.pod_resources_socket,
        default_api: match cli.default_api {
            DefaultApi::DevicePlugin => Api::DevicePlugin,
            DefaultApi::Dra => Api::Dra,
        },
        dra: cli.node_name.map(|node_name| daemon::DraOptions {
            node_name,
            kubeconfig: cli.kubeconfig,
            delete_slices_on_exit: cli.delete_slices_on_exit,
            plugins_dir: cli.dra_plugins_dir,
            // DRA registers through the plugin watcher only, and hands
            // devices out through CDI only.
            registry_dir: cli.plugins_registry_dir,
            cdi_dir: cli.cdi_dir,
        }),
    }))?;
    Ok(())
}

/// Go's flag package takes `-name` as well as `--name`: so do we. Every
/// flag of ours has a long name, so a single dash before more than one
/// letter (or glog's `-v`) is read as two.
fn go_style(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|arg| {
        let text = arg.to_string_lossy();
        let name = text.split('=').next().unwrap_or_default();
        let single_dash = name.starts_with('-') && !name.starts_with("--");
        if single_dash && (name.len() > 2 || name == "-v") {
            format!("-{text}").into()
        } else {
            arg
        }
    })
    .collect()
}

impl Cli {
    /// Parses a command line as the binary does, Go-style single-dash flags
    /// included, and checks the values clap leaves to us.
    pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, String> {
        let cli = Cli::try_parse_from(go_style(args.into_iter())).map_err(|e| e.to_string())?;
        cli.upstream_logging.level()?;
        Ok(cli)
    }
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(go_style(std::env::args_os()));
    if let Err(reason) = cli.upstream_logging.init() {
        eprintln!("sriov-device-plugin: {reason}");
        return ExitCode::from(2);
    }
    let outcome = match &cli.command {
        Some(Command::Discover(args)) => discover(&cli, args),
        Some(Command::InstallCni(args)) => install_cni(args),
        None => serve(cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            tracing::error!("{reason}");
            ExitCode::FAILURE
        }
    }
}
