//! The daemon: discover, sort into pools, serve each pool on its own
//! socket and register it with kubelet; remove the sockets on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kubelet_api::deviceplugin::v1beta1::{
    device_plugin_server::DevicePluginServer, KUBELET_SOCKET,
};
use sriovnet::{default_route_interfaces, Sysfs};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::config::Config;
use crate::health::health_of;
use crate::server::PoolService;
use crate::{device, pool};

pub struct Options {
    pub config_file: PathBuf,
    pub resource_prefix: String,
    pub sysfs_root: PathBuf,
    pub device_plugin_dir: PathBuf,
}

pub async fn run(options: Options) -> Result<(), String> {
    let text = std::fs::read_to_string(&options.config_file)
        .map_err(|e| format!("read {}: {e}", options.config_file.display()))?;
    let config = Config::parse(&text, &options.resource_prefix)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let sysfs = Sysfs::new(&options.sysfs_root);
    let routes = default_route_interfaces(Path::new("/proc/net")).map_err(|e| e.to_string())?;
    let inventory = sysfs.scan(&routes).map_err(|e| e.to_string())?;
    for problem in &inventory.problems {
        eprintln!("warning: skipped: {problem}");
    }
    let devices = device::candidates(&sysfs, &inventory, &routes);
    let pools = pool::assign(&config.resources, &devices);

    let mut sockets = Vec::new();
    let mut health_senders = Vec::new();
    for pool in pools {
        let resource = pool.config.resource_name();
        if pool.members.is_empty() {
            eprintln!("warning: pool {resource} has no devices; not advertised");
            continue;
        }
        let endpoint = format!("{}_{}.sock", pool.config.prefix, pool.config.name);
        let socket = options.device_plugin_dir.join(&endpoint);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|e| format!("listen on {}: {e}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", socket.display()))?;
        let health = health_of(
            &sysfs,
            &pool.members.iter().map(|m| &m.device).collect::<Vec<_>>(),
        );
        let (sender, receiver) = watch::channel(health);
        health_senders.push(sender);
        let service = DevicePluginServer::new(PoolService::new(pool, receiver));
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        // Serving before registering: kubelet dials back at once.
        if let Err(e) = crate::register::register(
            &options.device_plugin_dir.join(KUBELET_SOCKET),
            &endpoint,
            &resource,
        )
        .await
        {
            eprintln!("warning: {e}");
        }
        eprintln!("serving {resource} on {}", socket.display());
        sockets.push(socket);
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for socket in sockets {
        let _ = std::fs::remove_file(socket);
    }
    drop(health_senders);
    Ok(())
}
