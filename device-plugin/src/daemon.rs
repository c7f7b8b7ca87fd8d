//! The daemon: discover, sort into pools, serve each pool on its own
//! socket and register it with kubelet. Kubelet deletes plugin sockets and
//! recreates `kubelet.sock` when it restarts: an inotify watch on the
//! directory re-serves what was deleted and registers everything again.
//! A pool server that stops is started again. Sockets go on SIGTERM.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotify::{EventMask, Inotify, WatchMask};
use kubelet_api::deviceplugin::v1beta1::{
    device_plugin_server::DevicePluginServer, KUBELET_SOCKET,
};
use sriovnet::{default_route_interfaces, LinkEvents, LinkMonitor, Sysfs};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::config::{Config, ResourceConfig};
use crate::health::health_of;
use crate::metrics::{self, PoolCounters, PoolMetrics};
use crate::server::{PoolService, PoolView, DEV};
use crate::{cdi, device, device_info, pool};

pub struct Options {
    pub config_file: PathBuf,
    pub resource_prefix: String,
    pub sysfs_root: PathBuf,
    pub device_plugin_dir: PathBuf,
    pub device_info_dir: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    /// Where CDI specs go, when CDI is on.
    pub cdi_dir: Option<PathBuf>,
}

/// One configured pool and its server, which runs while it has devices.
struct Served {
    config: ResourceConfig,
    resource: String,
    endpoint: String,
    socket: PathBuf,
    /// Every ListAndWatch stream sends a fresh list when the view changes.
    view: watch::Sender<Arc<PoolView>>,
    device_info_dir: PathBuf,
    counters: Arc<PoolCounters>,
    cdi_dir: Option<PathBuf>,
    server: Option<JoinHandle<()>>,
}

impl Served {
    /// (Re)binds the socket and serves on it; the server restarts itself if
    /// it ever stops, so the pool keeps being advertised.
    fn serve(&mut self) -> Result<(), String> {
        if let Some(old) = self.server.take() {
            old.abort();
        }
        let listener = bind(&self.socket)?;
        let (config, view, resource, socket, device_info_dir, counters, cdi) = (
            self.config.clone(),
            self.view.subscribe(),
            self.resource.clone(),
            self.socket.clone(),
            self.device_info_dir.clone(),
            self.counters.clone(),
            self.cdi_dir.is_some(),
        );
        self.server = Some(tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let incoming = match listener.take().map(Ok).unwrap_or_else(|| bind(&socket)) {
                    Ok(l) => UnixListenerStream::new(l),
                    Err(e) => {
                        eprintln!("warning: {resource}: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let service = DevicePluginServer::new(PoolService::new(
                    config.clone(),
                    view.clone(),
                    device_info_dir.clone(),
                    counters.clone(),
                    cdi,
                ));
                let served = Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await;
                eprintln!("warning: {resource}: server stopped ({served:?}); serving again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }));
        Ok(())
    }

    /// Takes the pool's members and health as they are now; true if they
    /// changed.
    fn update(&self, view: PoolView) -> bool {
        self.view.send_if_modified(|current| {
            let changed = **current != view;
            if changed {
                // A device that left the pool leaves no device info behind.
                for gone in current.members.iter().filter(|m| !view.members.contains(m)) {
                    device_info::remove(
                        &self.device_info_dir,
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
        if let Some(dir) = &self.cdi_dir {
            cdi::write(dir, &self.config, view, Path::new(DEV));
        }
    }

    fn has_devices(&self) -> bool {
        !self.view.borrow().members.is_empty()
    }

    async fn register(&self, dir: &Path) {
        match crate::register::register(&dir.join(KUBELET_SOCKET), &self.endpoint, &self.resource)
            .await
        {
            Ok(()) => {
                PoolCounters::count(&self.counters.registrations);
                eprintln!("registered {} ({})", self.resource, self.socket.display());
            }
            Err(e) => {
                PoolCounters::count(&self.counters.errors);
                eprintln!("warning: {e}");
            }
        }
    }
}

/// A fresh socket, mode 0600.
fn bind(socket: &Path) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).map_err(|e| format!("listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", socket.display()))?;
    Ok(listener)
}

pub async fn run(options: Options) -> Result<(), String> {
    let config = Config::load(&options.config_file, &options.resource_prefix)?;
    let sysfs = Sysfs::new(&options.sysfs_root);
    let (inventory, routes) = device::scan(&sysfs)?;
    let initial = views(&sysfs, &config, Some(inventory), &routes);

    // Watch before the first registration, so a kubelet restart in between
    // is not missed.
    let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    inotify
        .watches()
        .add(
            &options.device_plugin_dir,
            WatchMask::CREATE | WatchMask::DELETE,
        )
        .map_err(|e| format!("watch {}: {e}", options.device_plugin_dir.display()))?;
    let mut events = inotify
        .into_event_stream([0u8; 4096])
        .map_err(|e| format!("inotify: {e}"))?;

    let mut links = watch_links();
    let mut served: Vec<Served> = Vec::new();
    for (resource_config, view) in config.resources.iter().zip(initial) {
        let endpoint = format!("{}_{}.sock", resource_config.prefix, resource_config.name);
        let pool = Served {
            resource: resource_config.resource_name(),
            config: resource_config.clone(),
            socket: options.device_plugin_dir.join(&endpoint),
            endpoint,
            view: watch::channel(Arc::new(view)).0,
            device_info_dir: options.device_info_dir.clone(),
            counters: Arc::default(),
            cdi_dir: options.cdi_dir.clone(),
            server: None,
        };
        device_info::remove_all(&options.device_info_dir, &pool.resource);
        served.push(pool);
    }
    if let Some(dir) = &options.cdi_dir {
        cdi::remove_all(dir);
        for pool in &served {
            pool.write_cdi_spec(&pool.view.borrow());
        }
    }
    if let Some(address) = options.metrics_addr {
        let pools = served
            .iter()
            .map(|p| PoolMetrics {
                resource: p.resource.clone(),
                view: p.view.subscribe(),
                counters: p.counters.clone(),
            })
            .collect();
        metrics::serve(address, Arc::new(pools)).await?;
    }
    for pool in served.iter_mut() {
        if pool.has_devices() {
            // Serving before registering: kubelet dials back at once.
            pool.serve()?;
            pool.register(&options.device_plugin_dir).await;
        } else {
            eprintln!(
                "pool {} has no devices yet; advertised once it has",
                pool.resource
            );
        }
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut watching = true;
    let mut linked = true;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            event = links.recv(), if linked => {
                if event.is_none() {
                    // The event thread ended (it said why): devices stay as
                    // they are.
                    linked = false;
                    continue;
                }
                // Links changed: VFs may have come or gone, a PF's link may
                // be up or down. Events come in bursts (creating VFs makes
                // one per netdev): take them all, then look at the tree once.
                while links.try_recv().is_ok() {}
                let routes = default_route_interfaces(Path::new("/proc/net")).unwrap_or_default();
                let now = views(&sysfs, &config, None, &routes);
                for (pool, view) in served.iter_mut().zip(now) {
                    if pool.update(view) {
                        eprintln!("{}: devices or health changed", pool.resource);
                        if pool.server.is_none() && pool.has_devices() {
                            if let Err(e) = pool.serve() {
                                eprintln!("warning: {e}");
                                continue;
                            }
                            pool.register(&options.device_plugin_dir).await;
                        }
                    }
                }
            }
            event = events.next(), if watching => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        eprintln!("warning: inotify: {e}");
                        continue;
                    }
                    None => {
                        eprintln!("warning: the inotify watch ended; kubelet restarts will not be seen");
                        watching = false;
                        continue;
                    }
                };
                let name = event.name.as_deref().unwrap_or(OsStr::new(""));
                let serving = served.iter_mut().filter(|p| p.server.is_some());
                if event.mask.contains(EventMask::DELETE) {
                    // Kubelet removed a pool's socket: serve it again. (Our
                    // own re-binding deletes it too, but then it is back.)
                    for pool in serving.filter(|p| name == OsStr::new(&p.endpoint) && !p.socket.exists()) {
                        if let Err(e) = pool.serve() {
                            eprintln!("warning: {e}");
                        }
                    }
                } else if name == OsStr::new(KUBELET_SOCKET) {
                    eprintln!("kubelet restarted; registering again");
                    for pool in serving {
                        if !pool.socket.exists() {
                            if let Err(e) = pool.serve() {
                                eprintln!("warning: {e}");
                            }
                        }
                        pool.register(&options.device_plugin_dir).await;
                    }
                }
            }
        }
    }
    for pool in &served {
        let _ = std::fs::remove_file(&pool.socket);
    }
    Ok(())
}

/// Every pool's devices and their health, as the tree says now (scanning it
/// unless a fresh inventory is given).
fn views(
    sysfs: &Sysfs,
    config: &Config,
    inventory: Option<sriovnet::Inventory>,
    routes: &HashSet<String>,
) -> Vec<PoolView> {
    let inventory = match inventory.map(Ok).unwrap_or_else(|| sysfs.scan(routes)) {
        Ok(inventory) => inventory,
        Err(e) => {
            eprintln!("warning: cannot read {}: {e}", sysfs.root().display());
            sriovnet::Inventory::default()
        }
    };
    let devices = device::candidates(sysfs, &inventory, routes);
    pool::assign(&config.resources, &devices)
        .into_iter()
        .map(|pool| {
            let health = health_of(
                sysfs,
                &pool.members.iter().map(|m| &m.device).collect::<Vec<_>>(),
            );
            PoolView {
                members: pool.members,
                health,
            }
        })
        .collect()
}

/// Link events from the kernel, read on a thread of their own (the
/// subscription blocks). A failure is reported and the thread ends:
/// devices keep the health they have.
fn watch_links() -> mpsc::Receiver<LinkEvents> {
    let (sender, receiver) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut monitor = match LinkMonitor::open() {
            Ok(monitor) => monitor,
            Err(e) => return eprintln!("warning: no link events, health will not change: {e}"),
        };
        loop {
            match monitor.wait() {
                Ok(events) => {
                    if sender.blocking_send(events).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    return eprintln!("warning: link events stopped, health will not change: {e}")
                }
            }
        }
    });
    receiver
}
