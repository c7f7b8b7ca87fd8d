//! The daemon: discover, sort into pools, serve each pool on its own
//! socket and register it with kubelet, then follow events:
//! - link events: look at the tree again (health, VFs come and go);
//! - the config file changed: apply it, keeping devices pods hold in the
//!   pool they were allocated from;
//! - kubelet restarted (it deletes plugin sockets and recreates
//!   `kubelet.sock`): serve again what was deleted and register again.
//!
//! Sockets go on SIGTERM.

pub mod config_watch;
pub mod instance;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

use inotify::{EventMask, WatchMask};
use kubelet_api::deviceplugin::v1beta1::KUBELET_SOCKET;
use sriovnet::{default_route_interfaces, Inventory, LinkEvents, LinkMonitor, PciAddress, Sysfs};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use crate::core::config::{valid_prefix, Api, Config, ConfigError};
use crate::core::health;
use crate::core::inventory;
use crate::core::pool::{self, Pins};
use crate::core::view::PoolView;
use crate::frontends::cdi;
use crate::frontends::dra;
use crate::frontends::kubelet::endpoint::{Served, Settings};
use crate::frontends::kubelet::pod_resources;
use crate::frontends::kubelet::registration::Registration;
use crate::frontends::kubelet::service::DEV;
use crate::frontends::metrics::{self, DaemonCounters, MetricsError, PoolMetrics};
use config_watch::WatchError;
use instance::{Instance, LockError};

pub struct Options {
    pub config_file: PathBuf,
    /// `/proc/net`, for the host's default routes (a fake one in tests).
    pub proc_net: PathBuf,
    pub resource_prefix: String,
    pub sysfs_root: PathBuf,
    pub device_plugin_dir: PathBuf,
    pub device_info_dir: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    /// Where CDI specs go, when CDI is on.
    pub cdi_dir: Option<PathBuf>,
    /// Register through kubelet's plugin watcher, in this directory.
    pub plugins_registry_dir: Option<PathBuf>,
    pub pod_resources_socket: PathBuf,
    /// The API of pools whose config does not say.
    pub default_api: Api,
    /// DRA, on when a node name is given; without it, pools asking for
    /// DRA are not advertised.
    pub dra: Option<DraOptions>,
}

pub struct DraOptions {
    /// This node's name: the pool its ResourceSlices make up.
    pub node_name: String,
    /// The Kubernetes API's kubeconfig, if not the in-cluster one.
    pub kubeconfig: Option<PathBuf>,
    /// Delete this node's ResourceSlices on SIGTERM.
    pub delete_slices_on_exit: bool,
    /// Kubelet's plugins directory: the driver's socket and checkpoint go
    /// in `<dir>/<driver>/`.
    pub plugins_dir: PathBuf,
    /// Where kubelet's plugin watcher looks for registrations.
    pub registry_dir: PathBuf,
    /// Where the claims' CDI specs go.
    pub cdi_dir: PathBuf,
}

struct Daemon {
    config_file: PathBuf,
    resource_prefix: String,
    config: Config,
    sysfs: Sysfs,
    settings: Settings,
    pod_resources_socket: PathBuf,
    /// The configured pools, in config order.
    served: Vec<Served>,
    /// Devices pods hold, kept in the pool they were allocated from.
    pins: Pins,
    /// The netdev names of every SR-IOV PF and VF at the last scan: a link
    /// event about one of them, or about a netdev of another SR-IOV
    /// function, makes a rescan; any other costs a lookup.
    netdevs: HashSet<String>,
    proc_net: PathBuf,
    /// The netdevs carrying a default route, as last read: a failed read
    /// must not advertise the host's uplink as if it had none.
    routes: HashSet<String>,
    metrics: watch::Sender<Vec<PoolMetrics>>,
    counters: Arc<DaemonCounters>,
    default_api: Api,
    /// Each pool's API as it is served now: a pool whose config asks for
    /// the other keeps this one while pods hold its devices.
    apis: HashMap<String, Api>,
    /// Pools whose switch is waiting for pods, said once.
    deferred: HashSet<String>,
    /// DRA pools not advertised for want of a node name, said once.
    unpublished: HashSet<String>,
    /// The DRA pools, for the publishing task and kubelet's DRA service
    /// (None: shut down); None when DRA is off (no node name).
    dra: Option<watch::Sender<Option<Vec<PoolView>>>>,
    /// The devices prepared DRA claims hold, by pool; kept there like pins.
    dra_held: Option<watch::Receiver<Pins>>,
}

/// A scan of the tree: its PFs and VFs, and the netdevs that carry a
/// default route.
struct Scanned {
    inventory: Inventory,
    routes: HashSet<String>,
}

/// Why the daemon stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Scan(#[from] sriovnet::Error),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("DRA: {0}")]
    Checkpoint(#[from] dra::checkpoint::CheckpointError),
    #[error("handle SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("no pool could be served in {}; see the warnings above", .0.display())]
    NothingServed(PathBuf),
    #[error("--node-name (or NODE_NAME) \"{0}\" is not a node name (a DNS subdomain, lower-case, as worker-1)")]
    NodeName(String),
}

pub async fn run(options: Options) -> Result<(), DaemonError> {
    if let Some(dra) = options.dra.as_ref().filter(|d| !valid_prefix(&d.node_name)) {
        return Err(DaemonError::NodeName(dra.node_name.clone()));
    }
    let config = Config::load(&options.config_file, &options.resource_prefix)?;
    // Before anything in the directory is touched.
    let _instance = Instance::lock(&options.device_plugin_dir)?;
    let sysfs = Sysfs::new(&options.sysfs_root);
    let scanned = inventory::scan(&sysfs, &options.proc_net)?;

    // Watch before the first registration, so a kubelet restart in between
    // is not missed.
    let mut plugin_dir_events = config_watch::watch_dir::<4096>(
        &options.device_plugin_dir,
        WatchMask::CREATE | WatchMask::DELETE,
    )?;
    let mut config_events = config_watch::watch(&options.config_file)?;
    let mut links = watch_links();

    if let Some(dir) = &options.cdi_dir {
        cdi::remove_all(dir);
    }
    let registration = match options.plugins_registry_dir {
        Some(dir) => Registration::PluginWatcher(dir),
        None => Registration::Kubelet(options.device_plugin_dir.join(KUBELET_SOCKET)),
    };
    let mut daemon = Daemon {
        config_file: options.config_file,
        resource_prefix: options.resource_prefix,
        config,
        sysfs,
        settings: Settings {
            device_plugin_dir: options.device_plugin_dir,
            device_info_dir: options.device_info_dir,
            cdi_dir: options.cdi_dir,
            registration,
        },
        pod_resources_socket: options.pod_resources_socket,
        served: Vec::new(),
        pins: Pins::new(),
        netdevs: HashSet::new(),
        proc_net: options.proc_net,
        routes: HashSet::new(),
        metrics: watch::channel(Vec::new()).0,
        counters: Arc::default(),
        default_api: options.default_api,
        apis: HashMap::new(),
        deferred: HashSet::new(),
        unpublished: HashSet::new(),
        dra: None,
        dra_held: None,
    };
    // DRA: the publishing task, and the service for kubelet (its
    // checkpoint read now, so that the devices claims hold stay in their
    // pools from the first scan on).
    let dra_service = match options.dra {
        None => None,
        Some(options) => {
            let (sender, receiver) = watch::channel(None);
            let paths = dra::prepare::Paths {
                cdi_dir: options.cdi_dir.clone(),
                device_info_dir: daemon.settings.device_info_dir.clone(),
                dev: PathBuf::from(DEV),
                checkpoint: dra::plugin::socket(&options.plugins_dir)
                    .with_file_name("checkpoint.json"),
            };
            let preparer =
                dra::prepare::Preparer::new(options.node_name.clone(), paths, receiver.clone())?;
            daemon.dra = Some(sender);
            daemon.dra_held = Some(preparer.held());
            let task = tokio::spawn(dra::publish::run(
                options.node_name.clone(),
                options.kubeconfig.clone(),
                options.delete_slices_on_exit,
                receiver.clone(),
            ));
            let service = dra::service::DraService::new(
                options.node_name.clone(),
                options.kubeconfig.clone(),
                preparer,
                receiver,
            );
            Some((task, service, options))
        }
    };
    // Devices pods already hold stay where they are, whatever the config
    // says now.
    if daemon.pod_resources_socket.exists() {
        daemon.update_pins().await;
    }
    daemon.keep_held_apis();
    let (inventory, routes) = scanned;
    let views = daemon.views(Scanned { inventory, routes });
    for view in daemon.route(views) {
        let pool = Served::new(view, &daemon.settings);
        if !pool.has_devices() {
            info!(
                "pool {} has no devices yet; advertised once it has",
                pool.resource
            );
        }
        daemon.served.push(pool);
    }
    daemon.publish_metrics();
    if let Some(address) = options.metrics_addr {
        metrics::serve(address, daemon.counters.clone(), daemon.metrics.subscribe()).await?;
    }
    daemon.start_serving();
    // Kubelet dials the driver as soon as it is registered: after the
    // pools are routed, so that a claim finds its devices.
    let (dra_task, _dra_plugin) = match dra_service {
        Some((task, service, options)) => {
            let plugin = dra::plugin::start(service, &options.plugins_dir, &options.registry_dir);
            (Some(task), Some(plugin))
        }
        None => (None, None),
    };
    let mut dra_held = daemon.dra_held.clone().map(|mut receiver| {
        let seen = receiver.borrow_and_update().keys().copied().collect();
        (receiver, seen)
    });
    let advertisable = daemon.served.iter().filter(|p| p.has_devices()).count();
    let serving = daemon.served.iter().filter(|p| p.is_serving()).count();
    if advertisable > 0 && serving == 0 {
        // Every socket failed (the warnings said why): a daemon that runs on
        // serving nothing would hide it.
        for pool in &daemon.served {
            pool.remove_sockets();
        }
        return Err(DaemonError::NothingServed(
            daemon.settings.device_plugin_dir.clone(),
        ));
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let (mut linked, mut watching, mut configured) = (true, true, true);
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            event = links.recv(), if linked => {
                let Some(event) = event else {
                    // The event thread ended (it said why): devices stay as
                    // they are.
                    linked = false;
                    continue;
                };
                // Events come in bursts (creating VFs makes one per
                // netdev): take them all, then look at the tree once, if
                // any was about SR-IOV. A primary CNI's veths are not.
                let mut ours = daemon.concerns(&event);
                while let Ok(event) = links.try_recv() {
                    ours |= daemon.concerns(&event);
                }
                if !ours {
                    continue;
                }
                if !daemon.pins.is_empty() && daemon.pod_resources_socket.exists() {
                    // A pod that let a device go may have moved it back.
                    // (Without kubelet's answer, pins stay: nothing to ask.)
                    daemon.update_pins().await;
                }
                daemon.refresh().await;
            }
            Some(released) = dra_released(&mut dra_held) => {
                // A DRA claim let devices go: a pool waiting to change API,
                // or a device its pool's selectors no longer take, may move.
                if released {
                    daemon.refresh().await;
                }
            }
            event = config_events.next(), if configured => match event {
                Some(Ok(_)) => daemon.reload().await,
                Some(Err(e)) => warn!("inotify: {e}"),
                None => {
                    warn!("the config watch ended; config changes need a restart");
                    configured = false;
                }
            },
            event = plugin_dir_events.next(), if watching => match event {
                Some(Ok(event)) => {
                    let name = event.name.as_deref().unwrap_or(OsStr::new(""));
                    if event.mask.contains(EventMask::DELETE) {
                        daemon.socket_deleted(name);
                    } else if name == OsStr::new(KUBELET_SOCKET) {
                        daemon.kubelet_restarted();
                    }
                }
                Some(Err(e)) => warn!("inotify: {e}"),
                None => {
                    warn!("the inotify watch ended; kubelet restarts will not be seen");
                    watching = false;
                }
            },
        }
    }
    for pool in &daemon.served {
        pool.remove_sockets();
    }
    if let (Some(dra), Some(task)) = (&daemon.dra, dra_task) {
        dra.send_replace(None);
        // Deleting slices when asked; an API server that does not answer
        // does not hold the shutdown up for long.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    Ok(())
}

impl Daemon {
    /// Whether link events may change what the pools hold: lost events
    /// may; a link event may if it names a netdev of an SR-IOV function,
    /// known from the last scan (it may be gone now) or found in the tree
    /// now (a VF netdev that just appeared).
    fn concerns(&self, events: &LinkEvents) -> bool {
        match events {
            LinkEvents::Lost => true,
            LinkEvents::Links(names) => names
                .iter()
                .any(|name| self.netdevs.contains(name) || self.sysfs.is_sriov_netdev(name)),
        }
    }

    /// Every pool's devices and their health, from a scan of the tree.
    fn views(&mut self, scanned: Scanned) -> Vec<PoolView> {
        let Scanned { inventory, routes } = scanned;
        self.netdevs = inventory
            .pfs
            .iter()
            .flat_map(|pf| {
                let vfs = pf.vfs.iter().filter_map(|vf| vf.netdev.clone());
                pf.netdevs.iter().map(|n| n.name.clone()).chain(vfs)
            })
            .collect();
        let devices = inventory::candidates(&self.sysfs, &inventory, &routes);
        self.routes = routes;
        pool::assign(&self.config.resources, &devices, &self.held())
            .into_iter()
            .map(|mut pool| {
                health::mark(&self.sysfs, &mut pool.members);
                PoolView {
                    config: pool.config,
                    members: pool.members,
                }
            })
            .collect()
    }

    /// Scans the tree again, on a blocking thread: the scan is thousands of
    /// sysfs reads (some 36 ms for 2048 VFs), and Allocate and ListAndWatch
    /// run on this thread meanwhile.
    async fn rescan(&mut self) -> Vec<PoolView> {
        let (sysfs, proc_net, last_routes) = (
            self.sysfs.clone(),
            self.proc_net.clone(),
            self.routes.clone(),
        );
        let counters = self.counters.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let routes = match default_route_interfaces(&proc_net) {
                Ok(routes) => routes,
                Err(e) => {
                    warn!(
                        "{e}; the default routes read before stand (the host's uplink stays out)"
                    );
                    last_routes
                }
            };
            let inventory = sysfs.scan(&routes).unwrap_or_else(|e| {
                warn!("cannot read {}: {e}", sysfs.root().display());
                Inventory::default()
            });
            counters.rescanned(started.elapsed());
            Scanned { inventory, routes }
        })
        .await
        // The scan panicked: a bug, and the panic goes on here.
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.views(scanned)
    }

    /// Looks at the tree again; a pool that got its first devices is
    /// served and registered.
    async fn refresh(&mut self) {
        let views = self.rescan().await;
        self.apply(views);
    }

    /// Each pool to its API: the device-plugin pools are returned, the DRA
    /// pools go to the publishing task. A pool whose config asks for
    /// another API than it is served through switches only once no pod
    /// holds its devices: a held device never changes API.
    fn route(&mut self, views: Vec<PoolView>) -> Vec<PoolView> {
        let mut device_plugin = Vec::new();
        let mut dra = Vec::new();
        let held = self.held();
        for view in views {
            let resource = view.config.resource_name();
            let wanted = view.config.api.unwrap_or(self.default_api);
            let api = match self.apis.get(&resource) {
                Some(&current) if current != wanted && held.values().any(|r| *r == resource) => {
                    if self.deferred.insert(resource.clone()) {
                        info!("{resource}: moves to {wanted} once pods let its devices go");
                    }
                    current
                }
                _ => {
                    self.deferred.remove(&resource);
                    wanted
                }
            };
            self.apis.insert(resource, api);
            match api {
                Api::DevicePlugin => device_plugin.push(view),
                Api::Dra => dra.push(view),
            }
        }
        match &self.dra {
            Some(sender) => {
                // Only news wakes the publisher and the health streams: a
                // rescan that changed nothing (a claim released) costs no
                // pass over the API server.
                sender.send_if_modified(|current| {
                    let changed = current.as_ref() != Some(&dra);
                    if changed {
                        *current = Some(dra);
                    }
                    changed
                });
            }
            None => {
                for view in dra {
                    let resource = view.config.resource_name();
                    if self.unpublished.insert(resource.clone()) {
                        warn!("{resource} asks for DRA, but no node name is set (NODE_NAME or --node-name): it is not advertised");
                    }
                }
            }
        }
        device_plugin
    }

    /// Fresh views of every pool: device-plugin pools updated, served or
    /// removed; DRA pools published.
    fn apply(&mut self, views: Vec<PoolView>) {
        let mut old = std::mem::take(&mut self.served);
        for view in self.route(views) {
            let resource = view.config.resource_name();
            match old.iter().position(|p| p.resource == resource) {
                Some(at) => {
                    let pool = old.remove(at);
                    if pool.update(view) {
                        info!("{}: devices or health changed", pool.resource);
                    }
                    self.served.push(pool);
                }
                None => self.served.push(Served::new(view, &self.settings)),
            }
        }
        for gone in old {
            gone.remove();
        }
        self.publish_metrics();
        self.start_serving();
    }

    fn start_serving(&mut self) {
        for pool in self.served.iter_mut() {
            if pool.is_serving() || !pool.has_devices() {
                continue;
            }
            // Serving before registering: kubelet dials back at once.
            match pool.serve() {
                Ok(()) => pool.register(),
                Err(e) => warn!("{e}"),
            }
        }
    }

    /// At start: a pool whose devices pods hold stays on the API that
    /// handed them out (pod resources say the device plugin, the DRA
    /// checkpoint says DRA), whatever the config says now; it moves once
    /// they are released, as after a reload.
    fn keep_held_apis(&mut self) {
        for resource in self.pins.values() {
            self.apis.insert(resource.clone(), Api::DevicePlugin);
        }
        if let Some(dra) = &self.dra_held {
            for resource in dra.borrow().values() {
                self.apis.insert(resource.clone(), Api::Dra);
            }
        }
    }

    /// The devices pods hold, through either API.
    fn held(&self) -> Pins {
        let mut held = self.pins.clone();
        if let Some(dra) = &self.dra_held {
            held.extend(dra.borrow().iter().map(|(a, r)| (*a, r.clone())));
        }
        held
    }

    /// Which devices pods hold: kubelet's pod resources API says; when it
    /// cannot be asked, what this daemon handed out since start, and what
    /// was held before, stay held.
    async fn update_pins(&mut self) {
        self.pins = match pod_resources::in_use(&self.pod_resources_socket).await {
            Ok(pins) => pins,
            Err(e) => {
                warn!("{e}; devices handed out since start stay in their pools");
                let mut pins = std::mem::take(&mut self.pins);
                for pool in &self.served {
                    for id in pool.handed_out() {
                        if let Ok(address) = id.parse() {
                            pins.entry(address).or_insert_with(|| pool.resource.clone());
                        }
                    }
                }
                pins
            }
        };
    }

    /// Applies the config file as it is now: pools added, removed or
    /// changed. A config that cannot be read leaves the current one.
    async fn reload(&mut self) {
        let config = match Config::load(&self.config_file, &self.resource_prefix) {
            Ok(config) => config,
            Err(e) => {
                return warn!("config not applied, the current one stays: {e}");
            }
        };
        if config.resources == self.config.resources {
            return;
        }
        info!("config changed; applying it");
        self.update_pins().await;
        self.config = config;
        let views = self.rescan().await;
        self.apply(views);
    }

    /// Kubelet removed a pool's socket: serve it again. (Our own re-binding
    /// deletes it too, but then it is back.)
    fn socket_deleted(&mut self, name: &OsStr) {
        for pool in self.served.iter_mut().filter(|p| p.is_serving()) {
            if name == OsStr::new(&pool.endpoint) && !pool.socket.exists() {
                if let Err(e) = pool.serve() {
                    warn!("{e}");
                }
            }
        }
    }

    fn kubelet_restarted(&mut self) {
        info!("kubelet.sock is new: kubelet restarted; registering again");
        for pool in self.served.iter_mut().filter(|p| p.is_serving()) {
            if !pool.socket.exists() {
                if let Err(e) = pool.serve() {
                    warn!("{e}");
                }
            }
            pool.register();
        }
    }

    fn publish_metrics(&self) {
        self.metrics
            .send_replace(self.served.iter().map(Served::metrics).collect());
    }
}

/// The devices DRA claims hold, and those the daemon last saw.
type DraHeld = (watch::Receiver<Pins>, HashSet<PciAddress>);

/// Waits for the devices DRA claims hold to change: Some(true) when some
/// were let go, Some(false) when only taken; never ready without DRA.
async fn dra_released(held: &mut Option<DraHeld>) -> Option<bool> {
    let Some((receiver, seen)) = held else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        *held = None;
        return None;
    }
    let now: HashSet<PciAddress> = receiver.borrow_and_update().keys().copied().collect();
    let released = seen.iter().any(|address| !now.contains(address));
    *seen = now;
    Some(released)
}

/// Link events from the kernel, read on a thread of their own (the
/// subscription blocks). A failure is reported and the thread ends:
/// devices keep the health they have.
fn watch_links() -> mpsc::Receiver<LinkEvents> {
    let (sender, receiver) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut monitor = match LinkMonitor::open() {
            Ok(monitor) => monitor,
            Err(e) => return warn!("no link events, health will not change: {e}"),
        };
        loop {
            match monitor.wait() {
                Ok(events) => {
                    if sender.blocking_send(events).is_err() {
                        return;
                    }
                }
                Err(e) => return warn!("link events stopped, health will not change: {e}"),
            }
        }
    });
    receiver
}
