//! The daemon with 8 PFs x 256 VFs (2048 VFs) on a fake tree: time from
//! start until every pool's socket is serving, and its peak RSS then.
//! Run with `cargo bench -p sriov-device-plugin --bench daemon`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sriovnet::fake::{FakeSysfs, INTEL_E810};

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeSysfs::new(dir.path());
    for pf in 0..8u8 {
        let address = format!("0000:{:02x}:00.0", 0x10 + pf * 4);
        fake.add_pf(
            &INTEL_E810,
            &address,
            &format!("ens{pf}f0"),
            256,
            (pf / 4).into(),
        )
        .expect("fake PF");
    }
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"resourceList":[
            {"resourceName":"low","selectors":{"pfNames":["ens0f0","ens1f0","ens2f0","ens3f0"]}},
            {"resourceName":"high","selectors":{"drivers":["iavf"]}}]}"#,
    )
    .expect("config");
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).expect("plugins dir");
    let sockets = [
        plugins.join("intel.com_low.sock"),
        plugins.join("intel.com_high.sock"),
    ];

    let start = Instant::now();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("--config-file")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--device-plugin-dir")
        .arg(&plugins)
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    while !sockets.iter().all(|s| s.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon did not start serving"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let serving = start.elapsed();
    // Settle, then read the high-water mark.
    std::thread::sleep(Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).expect("status");
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .to_string();
    let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
    let _ = daemon.wait();
    println!(
        "daemon, 8 PFs x 256 VFs: both pools serving {:.1} ms after start; peak RSS {}",
        serving.as_secs_f64() * 1000.0,
        peak.trim_start_matches("VmHWM:").trim()
    );
}
