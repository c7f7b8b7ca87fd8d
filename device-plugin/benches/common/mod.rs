//! The host both benchmarks measure: 8 E810 PFs x 256 VFs (2048 VFs) on a
//! fake tree, NUMA nodes 0 and 1, and a config of two pools.

use std::path::PathBuf;

use sriovnet::fake::{FakeSysfs, INTEL_E810};

/// The tree (deleted when the returned directory drops) and the config.
pub fn host_with_2048_vfs() -> (tempfile::TempDir, PathBuf) {
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
    (dir, config)
}
