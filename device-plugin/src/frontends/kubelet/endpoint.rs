//! One pool served to kubelet: its socket (mode 0600), a server that starts
//! itself again if it stops, and its registration, either with `Register`
//! on `kubelet.sock` or through kubelet's plugin watcher.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

use kubelet_api::deviceplugin::v1beta1::device_plugin_server::DevicePluginServer;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::core::config::ResourceConfig;
use crate::core::view::PoolView;
use crate::frontends::kubelet::registration::Registration;
use crate::frontends::kubelet::service::{PoolService, DEV};
use crate::frontends::metrics::{PoolCounters, PoolMetrics};
use crate::frontends::{cdi, device_info};

/// What every pool shares: where things go and how to register.
#[derive(Clone)]
pub struct Settings {
    pub device_plugin_dir: PathBuf,
    pub device_info_dir: PathBuf,
    /// Where CDI specs go, when CDI is on.
    pub cdi_dir: Option<PathBuf>,
    pub registration: Registration,
}

/// A configured pool; its server runs while it has devices.
pub struct Served {
    pub resource: String,
    /// The socket's file name, as registered.
    pub endpoint: String,
    pub socket: PathBuf,
    /// Every ListAndWatch stream sends a fresh list when the view changes.
    view: watch::Sender<Arc<PoolView>>,
    counters: Arc<PoolCounters>,
    settings: Settings,
    server: Option<JoinHandle<()>>,
    /// The plugin-watcher socket's server, once registered that way.
    registry: Option<JoinHandle<()>>,
    /// The task registering with `kubelet.sock` until kubelet accepts.
    registering: Option<JoinHandle<()>>,
}

impl Served {
    /// A pool not served yet; files an earlier run left for it are removed.
    pub fn new(view: PoolView, settings: &Settings) -> Self {
        let config = &view.config;
        let endpoint = format!("{}_{}.sock", config.prefix, config.name);
        let resource = config.resource_name();
        device_info::remove_all(&settings.device_info_dir, &resource);
        let served = Served {
            socket: settings.device_plugin_dir.join(&endpoint),
            endpoint,
            resource,
            view: watch::channel(Arc::new(view)).0,
            counters: Arc::default(),
            settings: settings.clone(),
            server: None,
            registry: None,
            registering: None,
        };
        served.write_cdi_spec(&served.view.borrow());
        served
    }

    pub fn config(&self) -> ResourceConfig {
        self.view.borrow().config.clone()
    }

    pub fn metrics(&self) -> PoolMetrics {
        PoolMetrics {
            resource: self.resource.clone(),
            view: self.view.subscribe(),
            counters: self.counters.clone(),
        }
    }

    /// Devices this pool's Allocate handed out since start.
    pub fn handed_out(&self) -> Vec<String> {
        self.counters
            .allocated
            .lock()
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_serving(&self) -> bool {
        self.server.is_some()
    }

    /// (Re)binds the socket and serves on it; the server restarts itself if
    /// it ever stops, so the pool keeps being advertised.
    pub fn serve(&mut self) -> Result<(), BindError> {
        if let Some(old) = self.server.take() {
            old.abort();
        }
        let listener = bind(&self.socket)?;
        PoolCounters::set(&self.counters.serving, true);
        let (view, resource, socket, device_info_dir, counters, cdi) = (
            self.view.subscribe(),
            self.resource.clone(),
            self.socket.clone(),
            self.settings.device_info_dir.clone(),
            self.counters.clone(),
            self.settings.cdi_dir.is_some(),
        );
        self.server = Some(tokio::spawn(serve_on(
            resource,
            socket,
            listener,
            move || {
                Server::builder().add_service(DevicePluginServer::new(PoolService::new(
                    view.clone(),
                    device_info_dir.clone(),
                    counters.clone(),
                    cdi,
                )))
            },
        )));
        Ok(())
    }

    /// Takes the pool's config, members and health as they are now; true if
    /// they changed.
    pub fn update(&self, view: PoolView) -> bool {
        self.view.send_if_modified(|current| {
            let changed = **current != view;
            if changed {
                // A device that left the pool leaves no device info behind.
                for gone in current.members.iter().filter(|m| !view.members.contains(m)) {
                    device_info::remove(
                        &self.settings.device_info_dir,
                        &self.resource,
                        &gone.device.address.to_string(),
                    );
                }
                *current = Arc::new(view);
                self.write_cdi_spec(current);
            }
            changed
        })
    }

    fn write_cdi_spec(&self, view: &PoolView) {
        if let Some(dir) = &self.settings.cdi_dir {
            cdi::write(dir, view, Path::new(DEV));
        }
    }

    pub fn has_devices(&self) -> bool {
        !self.view.borrow().members.is_empty()
    }

    /// Registers with kubelet, without waiting: `Register` calls on a task
    /// that retries until kubelet accepts (a newer call replaces it), or a
    /// plugin-watcher socket served once (kubelet finds it again after a
    /// restart).
    pub fn register(&mut self) {
        match &self.settings.registration {
            Registration::Kubelet(kubelet_socket) => {
                if let Some(old) = self.registering.take() {
                    old.abort();
                }
                self.registering = Some(crate::frontends::kubelet::registration::keep_registering(
                    kubelet_socket.clone(),
                    self.endpoint.clone(),
                    self.resource.clone(),
                    self.counters.clone(),
                ));
            }
            Registration::PluginWatcher(dir) if self.registry.is_none() => {
                match crate::frontends::kubelet::registration::serve_plugin_watcher(
                    dir,
                    &self.resource,
                    &self.socket,
                    &self.counters,
                ) {
                    Ok(server) => {
                        self.registry = Some(server);
                        info!("offered {} to the plugin watcher", self.resource);
                    }
                    Err(e) => {
                        PoolCounters::count(&self.counters.registration_failures);
                        warn!("{e}");
                    }
                }
            }
            Registration::PluginWatcher(_) => {}
        }
    }

    /// The pool is gone from the config: kubelet is told it has no devices,
    /// then its sockets and files go.
    pub fn remove(mut self) {
        PoolCounters::set(&self.counters.serving, false);
        let config = self.config();
        self.update(PoolView {
            config: config.clone(),
            members: Vec::new(),
        });
        if let Some(registering) = self.registering.take() {
            registering.abort();
        }
        if let Some(registry) = self.registry.take() {
            registry.abort();
            if let Registration::PluginWatcher(dir) = &self.settings.registration {
                let _ = std::fs::remove_file(
                    crate::frontends::kubelet::registration::registry_socket(dir, &self.endpoint),
                );
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = &self.settings.cdi_dir {
            cdi::remove(dir, &config);
        }
        if let Some(server) = self.server.take() {
            // A moment for the empty list to reach kubelet's stream.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                server.abort();
            });
        }
        info!("pool {} removed", self.resource);
    }

    /// Sockets go when the daemon stops.
    pub fn remove_sockets(&self) {
        let _ = std::fs::remove_file(&self.socket);
        if let (Some(_), Registration::PluginWatcher(dir)) =
            (&self.registry, &self.settings.registration)
        {
            let _ = std::fs::remove_file(crate::frontends::kubelet::registration::registry_socket(
                dir,
                &self.endpoint,
            ));
        }
    }
}

/// Serves `router()` on the socket for good: if the server ever stops, the
/// socket is bound again and a fresh router serves it. `name` says whose
/// socket it is in the logs.
pub async fn serve_on(
    name: String,
    socket: PathBuf,
    listener: UnixListener,
    router: impl Fn() -> tonic::transport::server::Router,
) {
    let mut listener = Some(listener);
    loop {
        let incoming = match listener.take().map(Ok).unwrap_or_else(|| bind(&socket)) {
            Ok(l) => kubelet_api::legacy_authority::incoming(l),
            Err(e) => {
                warn!("{name}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match router().serve_with_incoming(incoming).await {
            Ok(()) => warn!("{name}: server closed; serving again"),
            Err(e) => warn!("{name}: server stopped: {e}; serving again"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A socket that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("listen on {}: {source}", socket.display())]
    Listen {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("chmod {}: {source}", socket.display())]
    Chmod {
        socket: PathBuf,
        source: std::io::Error,
    },
}

/// A fresh socket, mode 0600.
pub fn bind(socket: &Path) -> Result<UnixListener, BindError> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(|source| BindError::Listen {
        socket: socket.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        BindError::Chmod {
            socket: socket.to_path_buf(),
            source,
        }
    })?;
    Ok(listener)
}
