//! `sriov-device-plugin discover` run as a process against fake trees.

use std::process::{Command, Output};

use sriovnet::fake::{FakeSysfs, INTEL_82576};

fn discover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("discover")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn prints_every_pf_and_vf() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.bind(&vfs[2], "vfio-pci").unwrap();
    fake.link("bus/pci/devices/0000:01:00.0/virtfn5", "../0000:01:1a.0")
        .unwrap();

    let output = discover(&["--sysfs-root", dir.path().to_str().unwrap()]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "PF 0000:01:00.0 8086:10c9 driver=igb netdev=enp1s0 vfs=3/7 numa=0"
    );
    assert_eq!(
        lines[1],
        "  VF 0   0000:01:10.0 8086:10ca driver=igbvf netdev=enp1s0v0 iommu_group=0"
    );
    assert_eq!(
        lines[3],
        "  VF 2   0000:01:10.4 8086:10ca driver=vfio-pci netdev=- iommu_group=2"
    );
    assert_eq!(lines.len(), 4);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("warning: skipped: ") && stderr.contains("virtfn5"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_and_missing_trees_fail_with_a_reason() {
    let output = discover(&["--sysfs-root", "/nonexistent"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/bus/pci/devices"));
    let output = discover(&["--frobnicate"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument \"--frobnicate\""));
}
