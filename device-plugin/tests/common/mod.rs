//! What the daemon's tests share: a fake kubelet speaking the real
//! device-plugin gRPC protocol over unix sockets, the daemon as a process,
//! and private network namespaces.
#![allow(dead_code)] // each test binary uses its own part

pub mod apiserver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kubelet_api::deviceplugin::v1beta1 as dp;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tonic::transport::Channel;

pub async fn connect(socket: PathBuf) -> Channel {
    kubelet_api::connect_unix(socket).await.unwrap()
}

/// The daemon, stopped with SIGTERM when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// A named network namespace, deleted on drop.
pub struct Namespace(pub String);

impl Namespace {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("sriovdp-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        Namespace(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

pub fn start_daemon(root: &Path, plugins: &Path) -> Daemon {
    start_daemon_in(None, root, plugins, &[])
}

/// The config most tests run with: an igb pool (igbvf and vfio-pci VFs),
/// an E810 pool under another prefix, and a pool nothing matches.
pub const CONFIG: &str = r#"{"resourceList":[
            {"resourceName":"igb","selectors":{"drivers":["igbvf","vfio-pci"]},
             "additionalInfo":{"*":{"site":"lab"},"0000:01:10.0":{"site":"rack1"}}},
            {"resourceName":"e810","resourcePrefix":"example.org","selectors":{"drivers":["iavf"]}},
            {"resourceName":"none","selectors":{"vendors":["1af4"]}}]}"#;

pub fn start_daemon_in(
    netns: Option<&Namespace>,
    root: &Path,
    plugins: &Path,
    extra: &[&str],
) -> Daemon {
    start_daemon_with(netns, root, plugins, CONFIG, extra)
}

/// The daemon on `root/config.json`, written with `config`.
pub fn start_daemon_with(
    netns: Option<&Namespace>,
    root: &Path,
    plugins: &Path,
    config: &str,
    extra: &[&str],
) -> Daemon {
    let config_file = root.join("config.json");
    std::fs::write(&config_file, config).unwrap();
    let mut args = vec!["--config-file", config_file.to_str().unwrap()];
    args.extend(extra);
    spawn_daemon(netns, root, plugins, &args)
}

/// The daemon on the tree at `root`, serving in `plugins`, with `args`.
pub fn spawn_daemon(
    netns: Option<&Namespace>,
    root: &Path,
    plugins: &Path,
    args: &[&str],
) -> Daemon {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                &ns.0,
                env!("CARGO_BIN_EXE_sriov-device-plugin"),
            ]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin")),
    };
    // A plugins_registry that exists makes the daemon use the plugin
    // watcher: tests that want it name one; the rest get none, whatever the
    // machine has in /var/lib/kubelet.
    if !args.contains(&"--plugins-registry-dir") {
        command
            .arg("--plugins-registry-dir")
            .arg(root.join("no-plugins-registry"));
    }
    Daemon(
        command
            .arg("--sysfs-root")
            .arg(root)
            .arg("--device-plugin-dir")
            .arg(plugins)
            .arg("--device-info-dir")
            .arg(root.join("devinfo"))
            .args(args)
            .spawn()
            .unwrap(),
    )
}

/// Serves a fake kubelet's Registration on `<plugins>/kubelet.sock`.
pub fn start_kubelet(plugins: &Path) -> mpsc::Receiver<dp::RegisterRequest> {
    kubelet_api::fake_kubelet::serve(plugins).unwrap()
}

/// The next `count` registrations, by resource name.
pub async fn registered(
    registrations: &mut mpsc::Receiver<dp::RegisterRequest>,
    count: usize,
) -> Vec<dp::RegisterRequest> {
    let mut requests = Vec::new();
    for _ in 0..count {
        let request = tokio::time::timeout(Duration::from_secs(20), registrations.recv())
            .await
            .expect("the daemon registers its pools")
            .unwrap();
        requests.push(request);
    }
    requests.sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
    requests
}

/// A free TCP port on loopback, as `127.0.0.1:<port>`.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// `GET /metrics` from the daemon: the whole response.
pub async fn metrics(address: &str) -> String {
    get(address, "/metrics").await
}

/// `GET <path>` from the daemon's HTTP endpoint: the whole response.
pub async fn get(address: &str, path: &str) -> String {
    let stream = std::net::TcpStream::connect(address).unwrap();
    http_get(stream, path).await
}

/// `GET /metrics` from a daemon in `ns` (its loopback is up): the socket is
/// made inside the namespace, then used from here.
pub async fn metrics_in(ns: &Namespace, address: &str) -> String {
    let netns = sriovnet::Netns::open(format!("/var/run/netns/{}", ns.0)).unwrap();
    let stream = netns
        .run(|| Ok(std::net::TcpStream::connect(address)))
        .unwrap()
        .unwrap();
    http_get(stream, "/metrics").await
}

async fn http_get(stream: std::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::TcpStream::from_std(stream).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the daemon answers and closes")
    .unwrap();
    response
}

/// One unlabelled series' value in a metrics response.
pub fn series(response: &str, name: &str) -> f64 {
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{response}"))
        .parse()
        .unwrap()
}

/// Waits for a socket to appear, as kubelet's inotify would see it.
pub async fn appears(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}
