//! Registering a pool with kubelet, made once the pool's own socket is
//! serving: by default a `Register` call on `kubelet.sock`; with
//! `--plugin-watcher`, a `pluginregistration` socket in kubelet's
//! plugins_registry directory, which kubelet finds, asks `GetInfo`, dials
//! the pool, and answers with `NotifyRegistrationStatus`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

use kubelet_api::deviceplugin::v1beta1::{
    registration_client::RegistrationClient, DevicePluginOptions, RegisterRequest, VERSION,
};
use kubelet_api::pluginregistration::v1::{
    registration_server, InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
    DEVICE_PLUGIN,
};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::frontends::kubelet::endpoint::{bind, BindError};
use crate::frontends::metrics::PoolCounters;

#[derive(Clone, Debug)]
pub enum Registration {
    /// `Register` on this socket (kubelet's `kubelet.sock`).
    Kubelet(PathBuf),
    /// A registration socket in this directory, for the plugin watcher.
    PluginWatcher(PathBuf),
}

/// How long any call to kubelet may take: a kubelet that accepts and never
/// answers must not hold a pool, or the daemon, for good.
pub const KUBELET_DEADLINE: Duration = Duration::from_secs(5);

/// The first wait after a failed registration; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Registers the pool with kubelet on a task of its own, again and again
/// with backoff until kubelet accepts: a `kubelet.sock` that exists before
/// kubelet listens on it (kubelet creates its registration server a few
/// hundred ms before it starts it) refuses the first attempts. Each pool
/// registers independently. Aborting the task (a newer kubelet, the pool
/// removed) stops it.
pub fn keep_registering(
    kubelet_socket: PathBuf,
    endpoint: String,
    resource_name: String,
    counters: Arc<PoolCounters>,
) -> JoinHandle<()> {
    PoolCounters::set(&counters.registered, false);
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let attempt = tokio::time::timeout(
                KUBELET_DEADLINE,
                register(&kubelet_socket, &endpoint, &resource_name),
            )
            .await
            .unwrap_or_else(|_| {
                Err(RegisterError::NoAnswer {
                    resource: resource_name.clone(),
                    socket: kubelet_socket.clone(),
                })
            });
            match attempt {
                Ok(()) => {
                    PoolCounters::count(&counters.registrations);
                    PoolCounters::set(&counters.registered, true);
                    return info!("registered {resource_name} ({endpoint})");
                }
                Err(e) => {
                    PoolCounters::count(&counters.registration_failures);
                    warn!("{e}; trying again in {} ms", backoff.as_millis());
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// A registration kubelet did not accept.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("connect {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("register {resource} with {}: {message}", socket.display())]
    Refused {
        resource: String,
        socket: PathBuf,
        message: String,
    },
    #[error("register {resource} with {}: no answer within {} s", socket.display(), KUBELET_DEADLINE.as_secs())]
    NoAnswer { resource: String, socket: PathBuf },
}

async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource_name: &str,
) -> Result<(), RegisterError> {
    let channel = kubelet_api::connect_unix(kubelet_socket)
        .await
        .map_err(|source| RegisterError::Connect {
            socket: kubelet_socket.to_path_buf(),
            source,
        })?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: VERSION.to_string(),
            endpoint: endpoint.to_string(),
            resource_name: resource_name.to_string(),
            options: Some(DevicePluginOptions {
                pre_start_required: false,
                get_preferred_allocation_available: true,
            }),
        })
        .await
        .map_err(|e| RegisterError::Refused {
            resource: resource_name.to_string(),
            socket: kubelet_socket.to_path_buf(),
            message: e.message().to_string(),
        })?;
    Ok(())
}

/// The plugin-watcher socket of a pool whose socket is `endpoint`.
pub fn registry_socket(dir: &Path, endpoint: &str) -> PathBuf {
    let stem = endpoint.strip_suffix(".sock").unwrap_or(endpoint);
    dir.join(format!("{stem}-reg.sock"))
}

/// What the plugin watcher asks a pool.
struct PluginWatcher {
    info: PluginInfo,
    counters: Arc<PoolCounters>,
}

#[tonic::async_trait]
impl registration_server::Registration for PluginWatcher {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        PoolCounters::set(&self.counters.registered, status.plugin_registered);
        if status.plugin_registered {
            PoolCounters::count(&self.counters.registrations);
            info!("kubelet registered {}", self.info.name);
        } else {
            PoolCounters::count(&self.counters.errors);
            warn!("kubelet refused {}: {}", self.info.name, status.error);
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

/// Serves a pool's plugin-watcher socket in `dir`; kubelet dials the pool
/// at `socket`, an absolute path.
pub fn serve_plugin_watcher(
    dir: &Path,
    resource_name: &str,
    socket: &Path,
    counters: &Arc<PoolCounters>,
) -> Result<JoinHandle<()>, BindError> {
    let endpoint = socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = PluginInfo {
        r#type: DEVICE_PLUGIN.to_string(),
        name: resource_name.to_string(),
        endpoint: socket.to_string_lossy().into_owned(),
        supported_versions: vec![VERSION.to_string()],
    };
    serve_registration(&registry_socket(dir, &endpoint), info, counters.clone())
}

/// Serves a plugin-watcher socket at `registry_socket` answering `info`,
/// for a device-plugin pool or the DRA driver.
pub fn serve_registration(
    registry_socket: &Path,
    info: PluginInfo,
    counters: Arc<PoolCounters>,
) -> Result<JoinHandle<()>, BindError> {
    let listener = bind(registry_socket)?;
    let name = info.name.clone();
    let service = registration_server::RegistrationServer::new(PluginWatcher { info, counters });
    Ok(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(kubelet_api::legacy_authority::incoming(listener))
            .await;
        match served {
            Ok(()) => warn!("{name}: plugin-watcher socket closed"),
            Err(e) => warn!("{name}: plugin-watcher socket stopped: {e}"),
        }
    }))
}
