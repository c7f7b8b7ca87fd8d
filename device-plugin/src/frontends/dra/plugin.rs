//! The driver's sockets for kubelet: the service (`DRAPlugin` v1 and
//! v1beta1, `DRAResourceHealth`) at `<plugins dir>/<driver>/dra.sock`, and
//! its registration at `<plugins_registry>/<driver>-reg.sock`, which
//! kubelet's plugin watcher finds, asks `GetInfo` (type `DRAPlugin`), and
//! dials the service from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kubelet_api::dra::{v1, v1beta1};
use kubelet_api::drahealth::v1alpha1 as health;
use kubelet_api::pluginregistration::v1::{PluginInfo, DRA_PLUGIN};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::service::DraService;
use super::DRIVER;
use crate::frontends::kubelet::endpoint::{bind, serve_on, BindError};
use crate::frontends::kubelet::registration::serve_registration;

/// Where kubelet looks for DRA drivers' sockets: `<dir>/<driver>/dra.sock`.
pub const DEFAULT_PLUGINS_DIR: &str = "/var/lib/kubelet/plugins";

/// The driver's service socket under the plugins directory.
pub fn socket(plugins_dir: &Path) -> PathBuf {
    plugins_dir.join(DRIVER).join("dra.sock")
}

/// The driver's registration socket in the plugin watcher's directory.
pub fn registry_socket(registry_dir: &Path) -> PathBuf {
    registry_dir.join(format!("{DRIVER}-reg.sock"))
}

/// The two sockets, served until dropped (their files go with them).
pub struct Plugin {
    socket: PathBuf,
    registry_socket: PathBuf,
    task: JoinHandle<()>,
}

/// Serves `service` and registers it, on a task that tries again, with
/// backoff, for as long as either socket cannot be made: a driver that
/// publishes slices must be reachable, or pods given its devices never
/// start. The service socket comes first, so that kubelet, which dials it
/// as soon as it sees the registration, finds it.
pub fn start(service: DraService, plugins_dir: &Path, registry_dir: &Path) -> Plugin {
    let socket = socket(plugins_dir);
    let registry_socket = registry_socket(registry_dir);
    let info = PluginInfo {
        r#type: DRA_PLUGIN.to_string(),
        name: DRIVER.to_string(),
        endpoint: socket.to_string_lossy().into_owned(),
        supported_versions: vec![v1::VERSION.to_string(), v1beta1::VERSION.to_string()],
    };
    let (at, registry_at) = (socket.clone(), registry_socket.clone());
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match bind_both(&at, &registry_at, info.clone()) {
                Ok((listener, registration)) => {
                    info!(
                        "DRA driver {DRIVER} offered to the plugin watcher ({})",
                        at.display()
                    );
                    // Aborting this task drops the guard, which stops the
                    // registration's server too.
                    let _registration = AbortOnDrop(registration);
                    return serve(service, at, listener).await;
                }
                Err(e) => warn!(
                    "DRA: {e}; claims cannot be prepared on this node; trying again in {} ms",
                    backoff.as_millis()
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
    Plugin {
        socket,
        registry_socket,
        task,
    }
}

/// The service socket bound, and the registration served.
fn bind_both(
    socket: &Path,
    registry_socket: &Path,
    info: PluginInfo,
) -> Result<(tokio::net::UnixListener, JoinHandle<()>), BindError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BindError::Listen {
            socket: socket.to_path_buf(),
            source,
        })?;
    }
    let listener = bind(socket)?;
    match serve_registration(registry_socket, info, Arc::default()) {
        Ok(registration) => Ok((listener, registration)),
        Err(e) => {
            let _ = std::fs::remove_file(socket);
            Err(e)
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the driver's three services on the socket, for good.
async fn serve(service: DraService, socket: PathBuf, listener: tokio::net::UnixListener) {
    serve_on("DRA".into(), socket, listener, move || {
        tonic::transport::Server::builder()
            .add_service(v1::dra_plugin_server::DraPluginServer::new(service.clone()))
            .add_service(v1beta1::dra_plugin_server::DraPluginServer::new(
                service.clone(),
            ))
            .add_service(
                health::dra_resource_health_server::DraResourceHealthServer::new(service.clone()),
            )
    })
    .await
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.registry_socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}
