//! The daemon with 8 PFs x 256 VFs (2048 VFs) on a fake tree: time from
//! start until every pool is registered with a fake kubelet, its peak RSS
//! then, and the time from kubelet.sock reappearing (a kubelet restart)
//! until every pool has registered again.
//! Run with `cargo bench -p sriov-device-plugin --bench daemon`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubelet_api::deviceplugin::v1beta1::{
    self as dp,
    registration_server::{Registration, RegistrationServer},
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

struct Kubelet(mpsc::Sender<Instant>);

#[tonic::async_trait]
impl Registration for Kubelet {
    async fn register(
        &self,
        _: Request<dp::RegisterRequest>,
    ) -> Result<Response<dp::Empty>, Status> {
        let _ = self.0.send(Instant::now()).await;
        Ok(Response::new(dp::Empty {}))
    }
}

fn start_kubelet(plugins: &Path) -> mpsc::Receiver<Instant> {
    let (sender, receiver) = mpsc::channel(8);
    let listener = UnixListener::bind(plugins.join("kubelet.sock")).expect("kubelet.sock");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(Kubelet(sender)))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    receiver
}

async fn last_of(registrations: &mut mpsc::Receiver<Instant>, count: usize) -> Instant {
    let mut last = Instant::now();
    for _ in 0..count {
        last = tokio::time::timeout(Duration::from_secs(10), registrations.recv())
            .await
            .expect("registration")
            .expect("kubelet");
    }
    last
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (dir, config) = common::host_with_2048_vfs();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let mut kubelet = start_kubelet(&plugins);

    let start = Instant::now();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("--config-file")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--device-plugin-dir")
        .arg(&plugins)
        .arg("--device-info-dir")
        .arg(dir.path().join("devinfo"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let registered = last_of(&mut kubelet, 2).await - start;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).expect("status");
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .to_string();

    // A kubelet restart: plugin sockets deleted, kubelet.sock anew.
    let mut restarts = Vec::new();
    for _ in 0..10 {
        for entry in std::fs::read_dir(&plugins).expect("read dir") {
            std::fs::remove_file(entry.expect("entry").path()).expect("remove");
        }
        let restarted = Instant::now();
        let mut kubelet = start_kubelet(&plugins);
        restarts.push(last_of(&mut kubelet, 2).await - restarted);
    }
    restarts.sort();
    let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
    let _ = daemon.wait();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "daemon, 8 PFs x 256 VFs: both pools registered {:.1} ms after start; peak RSS {}; \
         re-registered after a kubelet restart in median {:.1} ms, max {:.1} ms (10 restarts)",
        ms(registered),
        peak.trim_start_matches("VmHWM:").trim(),
        ms(restarts[restarts.len() / 2]),
        ms(restarts[restarts.len() - 1]),
    );
}
