//! `discover` over 8 PFs x 256 VFs (2048 VFs) on a fake tree: wall time of
//! the whole process (start, config, scan, pools, JSON out) and its peak
//! RSS. Run with `cargo bench -p sriov-device-plugin --bench discover`.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use sriovnet::fake::{FakeSysfs, INTEL_E810};

const ROUNDS: usize = 30;

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
            {"resourceName":"low","selectors":{"pfNames":["ens0f0#0-127","ens1f0","ens2f0","ens3f0"]}},
            {"resourceName":"high","selectors":{"vendors":["8086"],"drivers":["iavf"]}}]}"#,
    )
    .expect("config");

    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
            .args(["discover", "--output", "json", "--config-file"])
            .arg(&config)
            .arg("--sysfs-root")
            .arg(dir.path())
            .output()
            .expect("run discover");
        times.push(start.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let total: usize = json["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["devices"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 2048);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let peak_kb = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    println!(
        "discover, 8 PFs x 256 VFs: min {:.1} ms, median {:.1} ms, max {:.1} ms ({ROUNDS} runs); peak RSS {:.1} MB",
        ms(times[0]),
        ms(times[ROUNDS / 2]),
        ms(times[ROUNDS - 1]),
        peak_kb as f64 / 1024.0
    );
}
