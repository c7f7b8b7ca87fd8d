//! The manifests in `deploy/` checked against the binaries: the DaemonSet's
//! args parse with the binary's own parser, every path the daemon and the
//! CNI install use (at their defaults or as the args set them) is mounted
//! from the same host path, and the ConfigMap's config gives pools on a host
//! with the NICs it names. The DRA overlay (`deploy/dra/`) is checked the
//! same way, its JSON patch applied here as kustomize applies it. Schemas
//! are checked by `deploy/tests/validate.py`.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sriov_device_plugin::cli::{Cli, Command as Subcommand};
use sriovnet::fake::{FakeSysfs, INTEL_82576, MELLANOX_CX5};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join(name)).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn pod_spec() -> Value {
    manifest("base/daemonset.yaml")["spec"]["template"]["spec"].clone()
}

/// The DaemonSet's pod as `deploy/dra/` makes it: the base with the
/// overlay's JSON patch (RFC 6902 `add` and `replace`, as it uses them).
fn dra_pod_spec() -> Value {
    let mut daemonset = manifest("base/daemonset.yaml");
    for op in manifest("dra/daemonset-patch.yaml").as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let target = daemonset
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{path}: no {parent} in the base"));
        let value = op["value"].clone();
        match (op["op"].as_str().unwrap(), target) {
            ("add", Value::Array(items)) if last == "-" => items.push(value),
            ("add", Value::Object(map)) => {
                assert!(map.insert(last.into(), value).is_none(), "{path} is there");
            }
            ("replace", Value::Object(map)) => {
                assert!(
                    map.insert(last.into(), value).is_some(),
                    "{path} is not there"
                );
            }
            (op, _) => panic!("{op} {path}: not applied here"),
        }
    }
    daemonset["spec"]["template"]["spec"].clone()
}

fn container(spec: &Value, list: &str, name: &str) -> Value {
    spec[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} {name}"))
        .clone()
}

fn parse(container: &Value) -> Cli {
    let mut args = vec!["sriov-device-plugin".into()];
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().into()),
    );
    Cli::parse_args(args).unwrap_or_else(|e| panic!("{} args: {e}", container["name"]))
}

/// The volume a container path is on: (volume, mount).
fn mounted(spec: &Value, container: &Value, path: &Path) -> (Value, Value) {
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
        .unwrap_or_else(|| panic!("{} is not mounted", path.display()))
        .clone();
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap()
        .clone();
    (volume, mount)
}

/// `path` is on a hostPath volume holding the same path on the host.
fn host_path(spec: &Value, container: &Value, path: &Path, writable: bool) {
    let (volume, mount) = mounted(spec, container, path);
    let host = volume["hostPath"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("{} is not on a hostPath", path.display()));
    assert_eq!(
        host,
        mount["mountPath"],
        "{} is mounted from another host path",
        path.display()
    );
    if writable {
        assert_ne!(mount["readOnly"], true, "{} is read-only", path.display());
    }
}

#[test]
fn the_daemon_finds_every_path_it_uses_on_the_host() {
    for spec in [pod_spec(), dra_pod_spec()] {
        daemon_paths_are_the_hosts(&spec);
    }
}

fn daemon_paths_are_the_hosts(spec: &Value) {
    let spec = spec.clone();
    let daemon = container(&spec, "containers", "kube-sriovdp");
    let cli = parse(&daemon);
    assert!(cli.command.is_none(), "the container runs the daemon");
    // Link events and /proc/net's routes must be the host's.
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(cli.proc_net, Path::new("/proc/net"));

    for dir in [
        &cli.device_plugin_dir,
        &cli.plugins_registry_dir,
        &cli.device_info_dir,
        &cli.cdi_dir,
    ] {
        host_path(&spec, &daemon, dir, true);
    }
    // Connecting to a socket needs write permission on it.
    host_path(&spec, &daemon, &cli.pod_resources_socket, true);
    host_path(&spec, &daemon, &cli.sysfs_root, false);
    let (_, sys) = mounted(&spec, &daemon, &cli.sysfs_root);
    assert_eq!(sys["readOnly"], true, "/sys is only read");

    // The config: the upstream ConfigMap and key, as a directory (not a
    // subPath), so a reload sees kubelet's ..data swap.
    let (volume, mount) = mounted(&spec, &daemon, &cli.config_file);
    assert_eq!(volume["configMap"]["name"], "sriovdp-config");
    assert!(mount.get("subPath").is_none());
    let file = cli
        .config_file
        .strip_prefix(mount["mountPath"].as_str().unwrap())
        .unwrap();
    let items = volume["configMap"]["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|i| i["key"] == "config.json" && Path::new(i["path"].as_str().unwrap()) == file));
}

/// `deploy/dra/`: the node's name from the downward API turns DRA on, the
/// token is mounted (the daemon calls the API), and the driver's socket
/// and checkpoint directory is the host's kubelet plugins directory.
/// `deploy/` alone leaves DRA off and mounts no token.
#[test]
fn the_dra_overlay_gives_the_daemon_its_node_a_token_and_kubelets_plugins() {
    let base = pod_spec();
    let daemon = container(&base, "containers", "kube-sriovdp");
    assert!(daemon.get("env").is_none());
    assert_eq!(base["automountServiceAccountToken"], false);

    let spec = dra_pod_spec();
    let daemon = container(&spec, "containers", "kube-sriovdp");
    let node_name = daemon["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME is set");
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(spec["automountServiceAccountToken"], true);
    let cli = parse(&daemon);
    host_path(&spec, &daemon, &cli.dra_plugins_dir, true);
    host_path(&spec, &daemon, &cli.plugins_registry_dir, true);
    host_path(&spec, &daemon, &cli.cdi_dir, true);

    // RBAC binds the role to the DaemonSet's service account, and the
    // admission policy matches that account's user name.
    let account = format!(
        "system:serviceaccount:kube-system:{}",
        spec["serviceAccountName"].as_str().unwrap()
    );
    let text = std::fs::read_to_string(Path::new(DEPLOY).join("dra/rbac.yaml")).unwrap();
    let binding = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_json::to_value(<serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
                .unwrap()
        })
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    let subject = &binding["subjects"][0];
    assert_eq!(
        format!(
            "system:serviceaccount:{}:{}",
            subject["namespace"].as_str().unwrap(),
            subject["name"].as_str().unwrap()
        ),
        account
    );
    let policy =
        std::fs::read_to_string(Path::new(DEPLOY).join("dra/node-restriction.yaml")).unwrap();
    assert!(policy.contains(&format!("request.userInfo.username == \"{account}\"")));
}

#[test]
fn the_probes_ask_the_daemon_what_they_mean() {
    let spec = pod_spec();
    let daemon = container(&spec, "containers", "kube-sriovdp");
    let address = parse(&daemon).metrics_addr.expect("--metrics-addr is set");
    let port = daemon["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap();
    assert_eq!(port["containerPort"], address.port());
    assert_eq!(daemon["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(daemon["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(daemon[probe]["httpGet"]["port"], "metrics");
    }
}

#[test]
fn install_cni_writes_into_the_hosts_cni_directory() {
    let spec = pod_spec();
    let init = container(&spec, "initContainers", "install-cni");
    let Some(Subcommand::InstallCni(args)) = parse(&init).command else {
        panic!("the init container runs install-cni");
    };
    let (volume, mount) = mounted(&spec, &init, &args.to);
    assert_eq!(Path::new(mount["mountPath"].as_str().unwrap()), args.to);
    // Where runtimes look for CNI executables by default.
    assert_eq!(volume["hostPath"]["path"], "/opt/cni/bin");
    assert_ne!(mount["readOnly"], true);
}

/// Least privilege: nothing privileged, no capability, and both
/// containers run the image this version builds.
#[test]
fn the_containers_ask_for_no_privilege_and_run_this_version() {
    let spec = pod_spec();
    let image = format!("sriov-rs:{}", env!("CARGO_PKG_VERSION"));
    for (list, name) in [
        ("initContainers", "install-cni"),
        ("containers", "kube-sriovdp"),
    ] {
        let c = container(&spec, list, name);
        let security = &c["securityContext"];
        assert_ne!(security["privileged"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{name}");
        assert!(security["capabilities"].get("add").is_none(), "{name}");
        assert_eq!(c["image"], image.as_str(), "{name}");
    }
}

/// The ConfigMap's config, run through `discover --config-file` on a host
/// with the NICs it names: every pool finds its devices.
#[test]
fn the_configmaps_config_gives_its_pools() {
    let config = manifest("base/configmap.yaml")["data"]["config.json"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path().join("sys"));
    let igb = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 4, 0)
        .unwrap();
    fake.bind(&igb[3], "vfio-pci").unwrap();
    let mlx = fake
        .add_pf(&MELLANOX_CX5, "0000:5e:00.0", "ens3f0", 2, 0)
        .unwrap();
    for vf in &mlx {
        fake.write(
            &format!("bus/pci/devices/{vf}/infiniband/mlx5_{vf}/.keep"),
            "",
        )
        .unwrap();
    }
    let file = dir.path().join("config.json");
    std::fs::write(&file, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["discover", "--output", "json", "--config-file"])
        .arg(&file)
        .arg("--sysfs-root")
        .arg(dir.path().join("sys"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let pools: Value = serde_json::from_slice(&output.stdout).unwrap();
    let count = |name: &str| {
        pools["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["resourceName"] == name)
            .unwrap_or_else(|| panic!("no pool {name} in {pools}"))["devices"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("intel.com/intel_sriov_netdevice"), 3);
    assert_eq!(count("intel.com/intel_sriov_dpdk"), 1);
    assert_eq!(count("intel.com/mlnx_sriov_rdma"), 2);
}

/// Each kustomization lists every manifest beside it (as a resource or a
/// patch), so none is left out of `kubectl apply -k`, and everything it
/// lists is there.
#[test]
fn kustomizations_list_every_manifest() {
    for dir in ["", "base", "dra", "examples", "examples/dra"] {
        let path = Path::new(DEPLOY).join(dir);
        let kustomization = manifest(Path::new(dir).join("kustomization.yaml").to_str().unwrap());
        let patches = kustomization["patches"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut listed: Vec<String> = kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .chain(patches.iter().map(|p| &p["path"]))
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        for entry in &listed {
            let target = path.join(entry);
            assert!(
                target.is_file() || target.join("kustomization.yaml").is_file(),
                "{}: {entry} is not there",
                path.display()
            );
        }
        listed.retain(|e| e.ends_with(".yaml"));
        let mut present: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        listed.sort();
        present.sort();
        assert_eq!(listed, present, "{}", path.display());
    }
}
