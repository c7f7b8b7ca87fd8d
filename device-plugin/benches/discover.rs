//! `discover` over 8 PFs x 256 VFs (2048 VFs) on a fake tree: wall time of
//! the whole process (start, config, scan, pools, JSON out) and its peak
//! RSS. Run with `cargo bench -p sriov-device-plugin --bench discover`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

const ROUNDS: usize = 30;

fn main() {
    let (dir, config) = common::host_with_2048_vfs();

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
