//! The daemon with 8 PFs x 256 VFs (2048 VFs) on a fake tree: time from
//! start until every pool is registered with a fake kubelet, its peak RSS
//! then, and the time from kubelet.sock reappearing (a kubelet restart)
//! until every pool has registered again, and Allocate round trips. Then,
//! with the daemon in a private network namespace, the CPU time it spends
//! while 100 veth pairs (links that are not ours, as a primary CNI makes
//! them for every pod) are created, set up and deleted there.
//! Run with `cargo bench -p sriov-device-plugin --bench daemon`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubelet_api::deviceplugin::v1beta1::{self as dp, device_plugin_client::DevicePluginClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// The time the last of `count` registrations arrived, and the requests.
async fn last_of(
    registrations: &mut mpsc::Receiver<dp::RegisterRequest>,
    count: usize,
) -> (Instant, Vec<dp::RegisterRequest>) {
    let mut requests = Vec::new();
    for _ in 0..count {
        requests.push(
            tokio::time::timeout(Duration::from_secs(10), registrations.recv())
                .await
                .expect("registration")
                .expect("kubelet"),
        );
    }
    (Instant::now(), requests)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (dir, config) = common::host_with_2048_vfs();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let mut kubelet = kubelet_api::fake_kubelet::serve(&plugins).expect("kubelet.sock");

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
    let (registered, pools) = last_of(&mut kubelet, 2).await;
    let registered = registered - start;
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
        let mut kubelet = kubelet_api::fake_kubelet::serve(&plugins).expect("kubelet.sock");
        restarts.push(last_of(&mut kubelet, 2).await.0 - restarted);
    }
    restarts.sort();

    // Allocate round trips on one connection, one device each, as kubelet
    // makes them: gRPC over the unix socket, the response, the device-info
    // file.
    let channel = kubelet_api::connect_unix(plugins.join(&pools[0].endpoint))
        .await
        .expect("pool socket");
    let mut pool = DevicePluginClient::new(channel);
    let mut lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .expect("ListAndWatch")
        .into_inner();
    let devices = lists
        .message()
        .await
        .expect("list")
        .expect("a list")
        .devices;
    let mut allocations = Vec::new();
    for device in devices.iter().take(200) {
        let request = dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec![device.id.clone()],
            }],
        };
        let started = Instant::now();
        pool.allocate(request).await.expect("Allocate");
        allocations.push(started.elapsed());
    }
    allocations.sort();
    let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
    let _ = daemon.wait();
    let (churn_cpu, churn_wall) = foreign_link_churn(&config, dir.path(), &plugins).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "daemon, 8 PFs x 256 VFs: both pools registered {:.1} ms after start; peak RSS {}; \
         re-registered after a kubelet restart in median {:.1} ms, max {:.1} ms (10 restarts); \
         Allocate round trip median {:.2} ms, max {:.2} ms ({} calls); \
         100 foreign veth pairs created, set up and deleted over {:.1} s cost the daemon {:.2} s of CPU",
        ms(registered),
        peak.trim_start_matches("VmHWM:").trim(),
        ms(restarts[restarts.len() / 2]),
        ms(restarts[restarts.len() - 1]),
        ms(allocations[allocations.len() / 2]),
        ms(allocations[allocations.len() - 1]),
        allocations.len(),
        churn_wall.as_secs_f64(),
        churn_cpu,
    );
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?}");
}

/// The daemon's user and system CPU seconds so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // USER_HZ, which /proc reports in, is 100 on Linux whatever the kernel's HZ.
    ticks / 100.0
}

/// The daemon in a private network namespace, registered; then 100 veth
/// pairs created, set up and deleted there. Returns the daemon's CPU
/// seconds during the churn, and its wall time.
async fn foreign_link_churn(
    config: &std::path::Path,
    root: &std::path::Path,
    plugins: &std::path::Path,
) -> (f64, Duration) {
    let ns = format!("sriovdp-bench-{}", std::process::id());
    ip(&["netns", "add", &ns]);
    for entry in std::fs::read_dir(plugins).expect("read dir") {
        let _ = std::fs::remove_file(entry.expect("entry").path());
    }
    let mut kubelet = kubelet_api::fake_kubelet::serve(plugins).expect("kubelet.sock");
    // `ip netns exec` execs the daemon: the pid is the daemon's.
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            env!("CARGO_BIN_EXE_sriov-device-plugin"),
        ])
        .arg("--config-file")
        .arg(config)
        .arg("--sysfs-root")
        .arg(root)
        .arg("--device-plugin-dir")
        .arg(plugins)
        .arg("--device-info-dir")
        .arg(root.join("devinfo"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    last_of(&mut kubelet, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(daemon.id());
    let started = Instant::now();
    for n in 0..100 {
        let (a, b) = (format!("churn{n}a"), format!("churn{n}b"));
        ip(&[
            "-n", &ns, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ]);
        ip(&["-n", &ns, "link", "set", &a, "up"]);
        ip(&["-n", &ns, "link", "set", &b, "up"]);
        ip(&["-n", &ns, "link", "del", &a]);
    }
    let wall = started.elapsed();
    // Events still queued are the daemon's to handle too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = cpu_seconds(daemon.id()) - before;
    let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
    let _ = daemon.wait();
    ip(&["netns", "del", &ns]);
    (cpu, wall)
}
