//! `sriov-device-plugin discover` run as a process against fake trees laid
//! out as the kernel lays them out.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sriovnet::fake::{FakeSysfs, INTEL_82576, INTEL_E810, MELLANOX_CX5};

/// A host with three NICs:
/// - enp1s0, an 82576 PF (0000:01:00.0) with 7 igbvf VFs, VF 6 on vfio-pci;
/// - ens2f0, an E810 PF (0000:3b:00.0) with 8 iavf VFs, NUMA node 1;
/// - ens3f0, a ConnectX-5 PF (0000:5e:00.0) with no VFs enabled: itself a device.
fn host() -> (tempfile::TempDir, FakeSysfs) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    let igb = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 7, 0)
        .unwrap();
    fake.bind(&igb[6], "vfio-pci").unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 8, 1)
        .unwrap();
    fake.add_pf(&MELLANOX_CX5, "0000:5e:00.0", "ens3f0", 0, 0)
        .unwrap();
    fake.write("bus/pci/devices/0000:5e:00.0/infiniband/mlx5_0/.keep", "")
        .unwrap();
    (dir, fake)
}

fn discover(root: &Path, config: &Value, extra: &[&str]) -> Output {
    let file = root.join("config.json");
    std::fs::write(&file, config.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args([
            "discover",
            "--config-file",
            file.to_str().unwrap(),
            "--sysfs-root",
            root.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn pools(root: &Path, config: &Value) -> Value {
    let output = discover(root, config, &["--output", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each pool's device addresses, by resource name.
fn members(root: &Path, config: &Value) -> Vec<(String, Vec<String>)> {
    pools(root, config)["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let devices = p["devices"].as_array().unwrap();
            (
                p["resourceName"].as_str().unwrap().to_string(),
                devices
                    .iter()
                    .map(|d| d["pciAddress"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn one_pool(root: &Path, selectors: Value) -> Vec<String> {
    let config = json!({"resourceList": [{"resourceName": "p", "selectors": selectors}]});
    members(root, &config).remove(0).1
}

#[test]
fn json_describes_each_device() {
    let (dir, _fake) = host();
    let config = json!({"resourceList": [{"resourceName": "igb", "resourcePrefix": "example.org", "selectors": {"drivers": ["igbvf", "vfio-pci"]}}]});
    let out = pools(dir.path(), &config);
    let devices = out["pools"][0]["devices"].as_array().unwrap();
    assert_eq!(out["pools"][0]["resourceName"], "example.org/igb");
    assert_eq!(devices.len(), 7);
    assert_eq!(
        devices[1],
        json!({
            "pciAddress": "0000:01:10.2", "pfName": "enp1s0", "pfPciAddress": "0000:01:00.0", "vfIndex": 1,
            "vendor": "8086", "device": "10ca", "driver": "igbvf", "netdev": "enp1s0v1",
            "numaNode": 0, "iommuGroup": 1, "health": "Healthy"
        })
    );
    assert_eq!(devices[6]["driver"], "vfio-pci");
    assert_eq!(devices[6]["netdev"], Value::Null);
}

#[test]
fn every_selector_field() {
    let (dir, fake) = host();
    let root = dir.path();
    fake.write("bus/pci/devices/0000:5e:00.0/acpi_index", "3\n")
        .unwrap();
    fake.write("class/net/ens3f0/type", "32\n").unwrap();
    let e810_vf = |i: u32| format!("0000:3b:{:02x}.{}", (8 + i) / 8, (8 + i) % 8);

    assert_eq!(
        one_pool(root, json!({"vendors": ["15b3"]})),
        ["0000:5e:00.0"]
    );
    assert_eq!(
        one_pool(root, json!({"devices": ["10CA"]})).len(),
        7,
        "ids match in any case"
    );
    assert_eq!(
        one_pool(root, json!({"drivers": ["vfio-pci"]})),
        ["0000:01:11.4"]
    );
    assert_eq!(
        one_pool(
            root,
            json!({"pciAddresses": ["0000:01:10.2", "0000:5e:00.0"]})
        ),
        ["0000:01:10.2", "0000:5e:00.0"]
    );
    assert_eq!(
        one_pool(root, json!({"acpiIndexes": ["3"]})),
        ["0000:5e:00.0"]
    );
    assert_eq!(
        one_pool(root, json!({"pfNames": ["ENS2F0#0,2-3,7"]})),
        [e810_vf(0), e810_vf(2), e810_vf(3), e810_vf(7)]
    );
    assert_eq!(
        one_pool(root, json!({"pfNames": ["0000:01:00.0#0-1"]})),
        ["0000:01:10.0", "0000:01:10.2"]
    );
    assert_eq!(
        one_pool(root, json!({"rootDevices": ["0000:3b:00.0#5"]})),
        [e810_vf(5)]
    );
    assert_eq!(
        one_pool(root, json!({"linkTypes": ["infiniband"]})),
        ["0000:5e:00.0"]
    );
    assert_eq!(one_pool(root, json!({"isRdma": true})), ["0000:5e:00.0"]);
    assert_eq!(
        one_pool(root, json!({"linkTypes": ["ether"], "vendors": ["8086"]})).len(),
        15
    );
    // Keys AND within a selector; selectors OR within a pool.
    assert!(one_pool(root, json!({"vendors": ["15b3"], "drivers": ["iavf"]})).is_empty());
    assert_eq!(
        one_pool(
            root,
            json!([{"vendors": ["15b3"]}, {"pfNames": ["enp1s0#6"]}])
        ),
        ["0000:01:11.4", "0000:5e:00.0"]
    );
    assert_eq!(
        one_pool(root, json!({})).len(),
        16,
        "an empty selector takes every device"
    );
}

#[test]
fn a_device_goes_to_the_first_pool_that_matches() {
    let (dir, _fake) = host();
    let config = json!({"resourceList": [
        {"resourceName": "first", "selectors": {"pfNames": ["enp1s0#0-2"]}},
        {"resourceName": "rest", "selectors": {"vendors": ["8086"], "drivers": ["igbvf"]}},
        {"resourceName": "empty", "selectors": {"vendors": ["1af4"]}}
    ]});
    let got = members(dir.path(), &config);
    assert_eq!(got[0].1, ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]);
    assert_eq!(got[1].1, ["0000:01:10.6", "0000:01:11.0", "0000:01:11.2"]);
    assert!(got[2].1.is_empty());
}

#[test]
fn a_pf_with_vfs_is_not_a_device_and_health_follows_its_link() {
    let (dir, fake) = host();
    let all = json!({"resourceList": [{"resourceName": "all", "selectors": {}}]});
    let devices = members(dir.path(), &all).remove(0).1;
    assert!(
        !devices.contains(&"0000:01:00.0".to_string())
            && !devices.contains(&"0000:3b:00.0".to_string())
    );

    fake.write("class/net/ens2f0/operstate", "down\n").unwrap();
    fake.write("class/net/enp1s0/carrier", "0\n").unwrap();
    let out = pools(dir.path(), &all);
    for device in out["pools"][0]["devices"].as_array().unwrap() {
        let pf = device["pfName"].as_str().unwrap_or("ens3f0");
        let expected = if pf == "ens3f0" {
            "Healthy"
        } else {
            "Unhealthy"
        };
        assert_eq!(device["health"], expected, "{device}");
    }
}

#[test]
fn table_by_default() {
    let (dir, _fake) = host();
    let config =
        json!({"resourceList": [{"resourceName": "cx5", "selectors": {"vendors": ["15b3"]}}]});
    let output = discover(dir.path(), &config, &[]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("RESOURCE") && lines[0].ends_with("HEALTH"),
        "{text}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "intel.com/cx5",
            "0000:5e:00.0",
            "-",
            "-",
            "15b3:1017",
            "mlx5_core",
            "ens3f0",
            "0",
            "-",
            "Healthy"
        ]
    );
}

#[test]
fn an_invalid_config_exits_with_a_one_line_reason() {
    let (dir, _fake) = host();
    let bad = json!({"resourceList": [{"resourceName": "a b", "selectors": {}}]});
    let output = discover(dir.path(), &bad, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(" ERROR resourceList[0]: resourceName"),
        "{stderr}"
    );

    let dropped =
        json!({"resourceList": [{"resourceName": "x", "selectors": {"ddpProfiles": ["gtp"]}}]});
    let output = discover(dir.path(), &dropped, &[]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains(" WARN pool intel.com/x dropped: ddpProfiles is not supported"));

    // As JSON lines, for a log pipeline.
    let output = discover(dir.path(), &dropped, &["--log-format", "json"]);
    let line: Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(
        line["fields"]["message"],
        "pool intel.com/x dropped: ddpProfiles is not supported"
    );
    assert!(line["timestamp"].is_string(), "{line}");
    // --log-level error: the warning is not logged; a level that is none
    // is refused, naming flag and value.
    let output = discover(dir.path(), &dropped, &["--log-level", "error"]);
    assert!(output.status.success() && output.stderr.is_empty());
    let output = discover(dir.path(), &dropped, &["--log-level", "loud"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains(r#"--log-level "loud" is not error, warn, info, debug, trace or a number"#));

    let missing = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["discover", "--config-file", "/nonexistent/config.json"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.json"));
}

/// Go's flag package takes `-flag` and `-flag=value` as well as `--flag`;
/// upstream's DaemonSets pass them that way, with logging flags we ignore.
#[test]
fn upstream_style_flags() {
    let (dir, _fake) = host();
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        json!({"resourceList": [{"resourceName": "igb", "selectors": {"drivers": ["igbvf"]}}]})
            .to_string(),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["discover", "--output", "json"])
        .arg(format!("-config-file={}", file.display()))
        .args(["-sysfs-root", dir.path().to_str().unwrap()])
        .arg("-resource-prefix=example.org")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pools: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(pools["pools"][0]["resourceName"], "example.org/igb");
    assert_eq!(pools["pools"][0]["devices"].as_array().unwrap().len(), 6);

    // The daemon's logging flags are accepted: it gets as far as reading
    // the config, which does not exist here.
    let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args([
            "--log-level=10",
            "--log-dir=sriovdp",
            "-v=3",
            "-logtostderr",
            "-alsologtostderr",
            "-stderrthreshold=INFO",
            "-vmodule=x=2",
            "-log_file=/tmp/x.log",
            "--use-cdi",
            "-config-file=/nonexistent/config.json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("read /nonexistent/config.json"), "{stderr}");
}

#[test]
fn config_paths_that_are_not_config_files() {
    let (dir, _fake) = host();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 2 << 20]).unwrap();
    for (path, expected) in [
        (fifo.as_path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (big.as_path(), "larger than 1048576 bytes"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
            .arg("discover")
            .arg("--config-file")
            .arg(path)
            .arg("--sysfs-root")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", path.display());
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(expected),
            "{stderr}"
        );
    }
}

#[test]
fn flags_mean_the_same_before_and_after_discover() {
    let (dir, _fake) = host();
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        r#"{"resourceList":[{"resourceName":"igb","selectors":{"drivers":["igbvf"]}}]}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("--config-file")
        .arg(&file)
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--resource-prefix=example.org")
        .args(["discover", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pools: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(pools["pools"][0]["resourceName"], "example.org/igb");
    assert_eq!(pools["pools"][0]["devices"].as_array().unwrap().len(), 6);
}

#[test]
fn link_types_by_name_or_arphrd_number() {
    let (dir, _fake) = host();
    for link_type in ["ether", "1"] {
        let vfs = one_pool(
            dir.path(),
            json!({"linkTypes": [link_type], "pfNames": ["enp1s0"]}),
        );
        assert_eq!(vfs.len(), 7, "{link_type}");
    }
    assert!(one_pool(
        dir.path(),
        json!({"linkTypes": ["32"], "pfNames": ["enp1s0"]})
    )
    .is_empty());
}
