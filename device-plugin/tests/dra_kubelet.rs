//! Kubelet's side of DRA, with the daemon as a process: a fake kubelet
//! finds the driver through the plugin watcher (the real registration
//! protocol), dials it, and calls `DRAPlugin` (v1 and v1beta1) and
//! `DRAResourceHealth` over the vendored protos; the claims' allocations
//! come from the fake API server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::apiserver::{allocated_claim, kubeconfig, serve_on, start, Shared, NODE};
use common::*;
use kubelet_api::dra::{v1, v1beta1};
use kubelet_api::drahealth::v1alpha1 as health;
use kubelet_api::pluginregistration::v1::{
    registration_client::RegistrationClient, InfoRequest, PluginInfo, RegistrationStatus,
};
use serde::Deserialize;
use serde_json::Value;
use sriov_device_plugin::frontends::dra::DRIVER;
use sriovnet::fake::{FakeSysfs, INTEL_82576, INTEL_E810};
use tonic::transport::Channel;

const UID_A: &str = "a0000000-0000-4000-8000-00000000000a";
const UID_B: &str = "b0000000-0000-4000-8000-00000000000b";
const UID_C: &str = "c0000000-0000-4000-8000-00000000000c";

/// The E810 pool through DRA; the igb pool through the device plugin, or
/// through DRA when `igb_api` says.
fn config(igb_api: &str) -> String {
    format!(
        r#"{{"resourceList":[
            {{"resourceName":"igb","api":"{igb_api}","selectors":{{"drivers":["igbvf"]}}}},
            {{"resourceName":"e810","api":"dra","selectors":{{"drivers":["iavf","vfio-pci"]}},
              "additionalInfo":{{"*":{{"site":"lab"}}}}}}]}}"#
    )
}

/// A node: a fake tree with an E810 PF (3 VFs, the third on vfio-pci) and
/// an 82576 PF (2 VFs), and the directories kubelet would have.
struct Node {
    dir: tempfile::TempDir,
    fake: FakeSysfs,
    plugins: PathBuf,
    registry: PathBuf,
    dra_plugins: PathBuf,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::new(dir.path());
        fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 3, 0)
            .unwrap();
        fake.bind("0000:3b:01.2", "vfio-pci").unwrap();
        fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
            .unwrap();
        let plugins = dir.path().join("device-plugins");
        let registry = dir.path().join("plugins_registry");
        let dra_plugins = dir.path().join("plugins");
        for d in [&plugins, &registry, &dra_plugins] {
            std::fs::create_dir(d).unwrap();
        }
        Node {
            dir,
            fake,
            plugins,
            registry,
            dra_plugins,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The daemon with DRA on, its API server at `kubeconfig`.
    fn daemon(&self, netns: Option<&Namespace>, kubeconfig: &Path, igb_api: &str) -> Daemon {
        start_daemon_with(
            netns,
            self.dir.path(),
            &self.plugins,
            &config(igb_api),
            &[
                "--node-name",
                NODE,
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--plugins-registry-dir",
                self.registry.to_str().unwrap(),
                "--dra-plugins-dir",
                self.dra_plugins.to_str().unwrap(),
                "--cdi-dir",
                self.path("cdi").to_str().unwrap(),
            ],
        )
    }

    fn spec(&self, uid: &str) -> PathBuf {
        self.path(&format!("cdi/sriov-dra-{uid}.json"))
    }

    fn device_info(&self, address: &str) -> PathBuf {
        self.path(&format!("devinfo/intel.com-e810-{address}-device.json"))
    }
}

/// What kubelet's plugin watcher does: waits for the driver's registration
/// socket, asks GetInfo, dials the endpoint, confirms the registration.
async fn kubelet_registers(registry: &Path) -> (PluginInfo, Channel) {
    let socket = registry.join(format!("{DRIVER}-reg.sock"));
    appears(&socket).await;
    let mut watcher = RegistrationClient::new(connect(socket).await);
    let info = watcher.get_info(InfoRequest {}).await.unwrap().into_inner();
    let channel = connect(PathBuf::from(&info.endpoint)).await;
    watcher
        .notify_registration_status(RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        })
        .await
        .unwrap();
    (info, channel)
}

fn claim(uid: &str, name: &str) -> v1::Claim {
    v1::Claim {
        namespace: "default".into(),
        uid: uid.into(),
        name: name.into(),
    }
}

async fn prepare(channel: &Channel, claims: &[v1::Claim]) -> v1::NodePrepareResourcesResponse {
    v1::dra_plugin_client::DraPluginClient::new(channel.clone())
        .node_prepare_resources(v1::NodePrepareResourcesRequest {
            claims: claims.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn unprepare(channel: &Channel, claims: &[v1::Claim]) -> v1::NodeUnprepareResourcesResponse {
    v1::dra_plugin_client::DraPluginClient::new(channel.clone())
        .node_unprepare_resources(v1::NodeUnprepareResourcesRequest {
            claims: claims.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn add_claim(shared: &Shared, uid: &str, name: &str, devices: &[(&str, &str)]) {
    let claim = allocated_claim("default", name, uid, DRIVER, NODE, devices);
    shared
        .lock()
        .unwrap()
        .claims
        .insert(("default".into(), name.into()), claim);
}

fn reads(shared: &Shared) -> usize {
    shared.lock().unwrap().claim_reads.len()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A CDI spec's devices: name, env, device node paths.
fn spec_devices(path: &Path) -> Vec<(String, Vec<String>, Vec<String>)> {
    let spec: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(spec["kind"], "sriovnetwork.k8snetworkplumbingwg.io/vf");
    spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .unwrap_or_else(|| s["path"].as_str().unwrap())
                            .to_string()
                    })
                    .collect()
            };
            (
                d["name"].as_str().unwrap().to_string(),
                strings(&d["containerEdits"]["env"]),
                strings(&d["containerEdits"]["deviceNodes"]),
            )
        })
        .collect()
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Registration, prepare (repeated, per-claim errors, v1beta1), and
/// unprepare after the daemon restarted.
#[tokio::test]
async fn kubelet_prepares_and_unprepares_claims_across_a_restart() {
    let node = Node::new();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let daemon = node.daemon(None, &kubeconfig, "devicePlugin");

    let (info, channel) = kubelet_registers(&node.registry).await;
    assert_eq!(info.r#type, "DRAPlugin");
    assert_eq!(info.name, DRIVER);
    let endpoint = node.dra_plugins.join(DRIVER).join("dra.sock");
    assert_eq!(info.endpoint, endpoint.to_str().unwrap());
    assert_eq!(
        info.supported_versions,
        ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    );
    assert_eq!(mode(&endpoint), 0o600);
    assert_eq!(
        mode(&node.registry.join(format!("{DRIVER}-reg.sock"))),
        0o600
    );

    // Claim A: two VFs, one of them on vfio-pci, for two requests.
    add_claim(
        &shared,
        UID_A,
        "a",
        &[("net", "0000-3b-01-0"), ("dpdk/vfio", "0000-3b-01-2")],
    );
    let answer = prepare(&channel, &[claim(UID_A, "a")]).await;
    let a = &answer.claims[UID_A];
    assert_eq!(a.error, "");
    let devices: Vec<_> = a
        .devices
        .iter()
        .map(|d| {
            (
                d.request_names.clone(),
                d.pool_name.as_str(),
                d.device_name.as_str(),
                d.cdi_device_ids.clone(),
            )
        })
        .collect();
    let cdi = |device: &str| {
        vec![format!(
            "sriovnetwork.k8snetworkplumbingwg.io/vf={UID_A}-{device}"
        )]
    };
    assert_eq!(
        devices,
        [
            (
                vec!["net".to_string()],
                NODE,
                "0000-3b-01-0",
                cdi("0000-3b-01-0")
            ),
            (
                vec!["dpdk".to_string()],
                NODE,
                "0000-3b-01-2",
                cdi("0000-3b-01-2")
            ),
        ]
    );
    let group = std::fs::read_link(node.path("bus/pci/devices/0000:3b:01.2/iommu_group"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let spec = spec_devices(&node.spec(UID_A));
    assert_eq!(spec.len(), 2);
    assert_eq!(spec[0].0, format!("{UID_A}-0000-3b-01-0"));
    assert_eq!(
        spec[0].1[0],
        "PCIDEVICE_INTEL_COM_E810=0000:3b:01.0,0000:3b:01.2"
    );
    let info: Value = serde_json::from_str(
        spec[0].1[1]
            .strip_prefix("PCIDEVICE_INTEL_COM_E810_INFO=")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["0000:3b:01.0"]["generic"]["deviceID"], "0000:3b:01.0");
    assert_eq!(info["0000:3b:01.0"]["extra"]["site"], "lab");
    assert_eq!(
        info["0000:3b:01.2"]["vfio"]["dev-mount"],
        format!("/dev/vfio/{group}")
    );
    assert!(spec[0].2.is_empty(), "a netdev VF needs no device node");
    assert_eq!(
        spec[1].2,
        ["/dev/vfio/vfio".to_string(), format!("/dev/vfio/{group}")]
    );
    for address in ["0000:3b:01.0", "0000:3b:01.2"] {
        let info: Value =
            serde_json::from_slice(&std::fs::read(node.device_info(address)).unwrap()).unwrap();
        assert_eq!(info["pci"]["pci-address"], address, "{info}");
    }

    // Again: the same answer, from the checkpoint (the API is not read).
    let before = reads(&shared);
    assert_eq!(prepare(&channel, &[claim(UID_A, "a")]).await, answer);
    assert_eq!(reads(&shared), before);

    // Per-claim errors, each naming why; a good claim in the same call is
    // prepared, through v1beta1.
    add_claim(&shared, UID_B, "b", &[("net", "0000-3b-01-0")]);
    add_claim(&shared, UID_C, "c", &[("net", "0000-3b-01-1")]);
    let gone = "d0000000-0000-4000-8000-00000000000d";
    let mut stranger = allocated_claim(
        "default",
        "e",
        "e0000000-0000-4000-8000-00000000000e",
        DRIVER,
        NODE,
        &[("net", "0000-99-01-0")],
    );
    stranger.metadata.uid = Some("e0000000-0000-4000-8000-00000000000e".into());
    shared
        .lock()
        .unwrap()
        .claims
        .insert(("default".into(), "e".into()), stranger);
    const UID_F: &str = "f0000000-0000-4000-8000-00000000000f";
    let mut admin = allocated_claim(
        "default",
        "f",
        UID_F,
        DRIVER,
        NODE,
        &[("net", "0000-3b-01-1")],
    );
    let results = admin.status.as_mut().unwrap().allocation.as_mut().unwrap();
    results.devices.as_mut().unwrap().results.as_mut().unwrap()[0].admin_access = Some(true);
    shared
        .lock()
        .unwrap()
        .claims
        .insert(("default".into(), "f".into()), admin);
    let claims = [
        claim("../../escape", "b"),
        claim(UID_F, "f"),
        v1::Claim {
            namespace: "Bad/Ns".into(),
            uid: "f1000000-0000-4000-8000-00000000000f".into(),
            name: "x".into(),
        },
        claim(UID_B, "b"),
        claim(gone, "gone"),
        claim("e0000000-0000-4000-8000-00000000000e", "e"),
        claim(UID_C, "c"),
    ];
    let beta: v1beta1::NodePrepareResourcesResponse =
        v1beta1::dra_plugin_client::DraPluginClient::new(channel.clone())
            .node_prepare_resources(v1beta1::NodePrepareResourcesRequest {
                claims: claims
                    .iter()
                    .map(|c| v1beta1::Claim {
                        namespace: c.namespace.clone(),
                        uid: c.uid.clone(),
                        name: c.name.clone(),
                    })
                    .collect(),
            })
            .await
            .unwrap()
            .into_inner();
    let error = |uid: &str| beta.claims[uid].error.clone();
    assert!(
        error(UID_B).contains("0000-3b-01-0") && error(UID_B).contains(UID_A),
        "{}",
        error(UID_B)
    );
    assert!(error(gone).contains("default/gone"), "{}", error(gone));
    assert!(
        error(UID_F).contains("admin access is not supported"),
        "{}",
        error(UID_F)
    );
    let bad = error("f1000000-0000-4000-8000-00000000000f");
    assert!(
        bad.contains("namespace \"Bad/Ns\" is not a Kubernetes object name"),
        "{bad}"
    );
    assert!(
        error("../../escape").contains("\"../../escape\" is not a Kubernetes uid"),
        "{}",
        error("../../escape")
    );
    let e = error("e0000000-0000-4000-8000-00000000000e");
    assert!(
        e.contains("0000-99-01-0") && e.contains("not a DRA device"),
        "{e}"
    );
    assert_eq!(error(UID_C), "");
    assert_eq!(beta.claims[UID_C].devices[0].device_name, "0000-3b-01-1");
    assert!(!node.spec(UID_B).exists());

    // A restart: unprepare works from the checkpoint, and repeats.
    drop(daemon);
    assert!(!endpoint.exists(), "SIGTERM removes the sockets");
    let _daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    let before = reads(&shared);
    assert_eq!(prepare(&channel, &[claim(UID_A, "a")]).await, answer);
    assert_eq!(reads(&shared), before, "prepared before the restart");
    for _ in 0..2 {
        let answer = unprepare(&channel, &[claim(UID_A, "a"), claim(UID_C, "c")]).await;
        assert!(
            answer.claims.values().all(|c| c.error.is_empty()),
            "{answer:?}"
        );
        assert_eq!(answer.claims.len(), 2);
    }
    assert!(!node.spec(UID_A).exists() && !node.spec(UID_C).exists());
    assert!(!node.device_info("0000:3b:01.0").exists());
    // Its devices are free again: claim B gets the VF A had.
    let b = prepare(&channel, &[claim(UID_B, "b")]).await;
    assert_eq!(b.claims[UID_B].error, "");
}

/// What `deploy/dra/rbac.yaml` lets the daemon do, as (API group,
/// resource, verb).
fn granted() -> Vec<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dra/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let role = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut granted = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    granted.push((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    granted
}

/// A REST request as RBAC sees it: (API group, resource, verb).
fn as_rbac(method: &str, path: &str) -> (String, String, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not a Kubernetes API path: {path}"),
    };
    let rest = match rest {
        ["namespaces", _, rest @ ..] => rest,
        rest => rest,
    };
    let verb = match (method, rest.len()) {
        ("GET", 1) => "list",
        ("GET", _) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => panic!("unexpected {method} {path}"),
    };
    (group.into(), rest[0].into(), verb.into())
}

/// A pool moving from DRA back to the device plugin waits while a claim
/// holds one of its devices, then moves once kubelet unprepares it. Every
/// request the daemon made on the way (a stale slice deleted, slices
/// created and replaced, the claim read) is one `deploy/dra/rbac.yaml`
/// grants, and the role grants nothing the daemon did not use.
#[tokio::test]
async fn a_prepared_device_keeps_its_pool_in_dra() {
    let node = Node::new();
    let shared = Shared::default();
    let stale: k8s_openapi::api::resource::v1::ResourceSlice = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "worker-1-stale", "resourceVersion": "1"},
            "spec": {"driver": DRIVER, "nodeName": NODE,
                     "pool": {"name": NODE, "generation": 1, "resourceSliceCount": 1}}}),
    )
    .unwrap();
    shared
        .lock()
        .unwrap()
        .slices
        .insert("worker-1-stale".into(), stale);
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let _daemon = node.daemon(None, &kubeconfig, "dra");
    let (_, channel) = kubelet_registers(&node.registry).await;
    let igb = |s: &Shared| {
        s.lock()
            .unwrap()
            .slices
            .values()
            .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
            .filter(|d| d.name.starts_with("0000-01-10-"))
            .count()
    };
    until("the igb VFs published", || igb(&shared) == 2).await;
    add_claim(&shared, UID_A, "a", &[("net", "0000-01-10-0")]);
    assert_eq!(
        prepare(&channel, &[claim(UID_A, "a")]).await.claims[UID_A].error,
        ""
    );

    std::fs::write(node.path("config.json"), config("devicePlugin")).unwrap();
    let socket = node.plugins.join("intel.com_igb.sock");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!socket.exists(), "held: the pool stays in DRA");
    assert_eq!(igb(&shared), 2);

    let answer = unprepare(&channel, &[claim(UID_A, "a")]).await;
    assert_eq!(answer.claims[UID_A].error, "");
    until("the igb pool served to kubelet", || socket.exists()).await;
    until("the igb VFs unpublished", || igb(&shared) == 0).await;

    let granted = granted();
    let mut used: Vec<_> = shared
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(method, path)| as_rbac(method, path))
        .collect();
    used.sort();
    used.dedup();
    for request in &used {
        assert!(granted.contains(request), "{request:?} is not granted");
    }
    for grant in &granted {
        assert!(used.contains(grant), "{grant:?} is granted, never used");
    }
}

/// The same across a restart: a daemon started with the pool switched to
/// the device plugin keeps it in DRA while the checkpoint says a claim
/// holds one of its devices.
#[tokio::test]
async fn a_restart_keeps_a_held_pool_in_dra() {
    let node = Node::new();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let daemon = node.daemon(None, &kubeconfig, "dra");
    let (_, channel) = kubelet_registers(&node.registry).await;
    add_claim(&shared, UID_A, "a", &[("net", "0000-01-10-0")]);
    let answer = prepare(&channel, &[claim(UID_A, "a")]).await;
    assert_eq!(answer.claims[UID_A].error, "");
    drop(daemon);

    let _daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    let socket = node.plugins.join("intel.com_igb.sock");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!socket.exists(), "held: the pool stays in DRA");
    assert_eq!(prepare(&channel, &[claim(UID_A, "a")]).await, answer);
    let answer = unprepare(&channel, &[claim(UID_A, "a")]).await;
    assert_eq!(answer.claims[UID_A].error, "");
    until("the igb pool served to kubelet", || socket.exists()).await;
}

/// A checkpoint that is not ours to parse is set aside, and the claims are
/// recovered from their CDI specs: their devices stay held (out of every
/// pool) until kubelet unprepares them. One that cannot be read at all
/// stops the daemon, naming it.
#[tokio::test]
async fn a_bad_checkpoint_loses_no_claim() {
    let node = Node::new();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    add_claim(&shared, UID_A, "a", &[("net", "0000-3b-01-0")]);
    add_claim(&shared, UID_B, "b", &[("net", "0000-3b-01-0")]);
    assert_eq!(
        prepare(&channel, &[claim(UID_A, "a")]).await.claims[UID_A].error,
        ""
    );
    drop(daemon);
    let checkpoint = node.dra_plugins.join(DRIVER).join("checkpoint.json");
    std::fs::write(&checkpoint, "{\"version\": 1, \"claims\": [").unwrap();

    let daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    let devices = || {
        let mut names: Vec<String> = shared
            .lock()
            .unwrap()
            .slices
            .values()
            .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
            .map(|d| d.name)
            .collect();
        names.sort();
        names
    };
    until("the held VF out of the slices", || {
        devices() == ["0000-3b-01-1", "0000-3b-01-2"]
    })
    .await;
    let error = prepare(&channel, &[claim(UID_B, "b")]).await.claims[UID_B]
        .error
        .clone();
    assert!(error.contains("0000-3b-01-0"), "{error}");
    assert!(std::fs::read_dir(node.dra_plugins.join(DRIVER))
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("checkpoint.bad-")));
    assert_eq!(
        unprepare(&channel, &[claim(UID_A, "a")]).await.claims[UID_A].error,
        ""
    );
    until("the VF back", || devices().len() == 3).await;
    assert_eq!(
        prepare(&channel, &[claim(UID_B, "b")]).await.claims[UID_B].error,
        ""
    );
    drop(daemon);

    std::fs::remove_file(&checkpoint).unwrap();
    std::fs::create_dir(&checkpoint).unwrap();
    let mut daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let status = daemon.0.wait().unwrap();
    assert!(
        !status.success(),
        "a daemon that cannot read its checkpoint does not run"
    );
}

/// An Unprepare that arrives while the Prepare of the same claim waits on
/// the API server waits its turn, then undoes it: the claim does not end
/// up prepared with kubelet believing it is not.
#[tokio::test]
async fn an_unprepare_waits_for_the_prepare_of_its_claim() {
    let node = Node::new();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let _daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    add_claim(&shared, UID_A, "a", &[("net", "0000-3b-01-0")]);
    shared.lock().unwrap().claim_delay = Duration::from_secs(1);
    let preparing = {
        let channel = channel.clone();
        tokio::spawn(async move { prepare(&channel, &[claim(UID_A, "a")]).await })
    };
    // The request arrived (the answer is a second away).
    until("the claim being read", || {
        let server = shared.lock().unwrap();
        server
            .requests
            .iter()
            .any(|(_, path)| path.ends_with("/resourceclaims/a"))
    })
    .await;
    assert_eq!(reads(&shared), 0);
    let answer = unprepare(&channel, &[claim(UID_A, "a")]).await;
    assert_eq!(answer.claims[UID_A].error, "");
    assert_eq!(preparing.await.unwrap().claims[UID_A].error, "");
    assert!(!node.spec(UID_A).exists(), "unprepared last");
    let checkpoint = node.dra_plugins.join(DRIVER).join("checkpoint.json");
    let text = std::fs::read_to_string(checkpoint).unwrap();
    assert!(!text.contains(UID_A), "{text}");
}

/// An API server that takes the claim read and never answers fails that
/// claim after 10 s, saying so, rather than holding kubelet's call.
#[tokio::test]
async fn a_mute_api_server_fails_the_claim_not_the_call() {
    let node = Node::new();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let _daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;
    add_claim(&shared, UID_A, "a", &[("net", "0000-3b-01-0")]);
    shared.lock().unwrap().claim_delay = Duration::from_secs(3600);
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        prepare(&channel, &[claim(UID_A, "a")]),
    )
    .await
    .expect("an answer within the claim read's timeout");
    let error = &answer.claims[UID_A].error;
    assert!(
        error.contains("default/a: no answer within 10 s"),
        "{error}"
    );
    assert!(!node.spec(UID_A).exists());
}

/// A driver socket that cannot be made at start (here a file where its
/// directory goes) is tried again until it can: kubelet then finds the
/// driver, without a daemon restart.
#[tokio::test]
async fn the_driver_socket_is_tried_again_until_it_can_be_made() {
    let node = Node::new();
    let obstacle = node.dra_plugins.join(DRIVER);
    std::fs::write(&obstacle, "").unwrap();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let _daemon = node.daemon(None, &kubeconfig, "devicePlugin");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!node.registry.join(format!("{DRIVER}-reg.sock")).exists());
    std::fs::remove_file(&obstacle).unwrap();
    let (info, _) = kubelet_registers(&node.registry).await;
    assert_eq!(info.name, DRIVER);
}

/// As root, in a private network namespace where a veth carries the PF's
/// name (link events about it are real): a PF going down reaches the
/// health stream and the slices, and a claim for its VF is refused.
#[tokio::test]
async fn an_unhealthy_vf_reaches_the_health_stream_and_the_slices() {
    let node = Node::new();
    let ns = Namespace::new();
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&[
        "-n", &ns.0, "link", "add", "ens2f0", "type", "veth", "peer", "name", "ens2f0p",
    ]);
    // The API server listens inside the namespace, where the daemon is.
    let netns = sriovnet::Netns::open(format!("/var/run/netns/{}", ns.0)).unwrap();
    let listener = netns
        .run(|| Ok(std::net::TcpListener::bind("127.0.0.1:0")))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let shared = Shared::default();
    serve_on(
        tokio::net::TcpListener::from_std(listener).unwrap(),
        shared.clone(),
    )
    .await;
    let kubeconfig = kubeconfig(node.dir.path(), address);
    let _daemon = node.daemon(Some(&ns), &kubeconfig, "devicePlugin");
    let (_, channel) = kubelet_registers(&node.registry).await;

    let mut stream =
        health::dra_resource_health_client::DraResourceHealthClient::new(channel.clone())
            .node_watch_resources(health::NodeWatchResourcesRequest {})
            .await
            .unwrap()
            .into_inner();
    let mut next = async || {
        let message = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .expect("a health update")
            .unwrap()
            .unwrap();
        message
            .devices
            .iter()
            .map(|d| {
                let id = d.device.as_ref().unwrap();
                assert_eq!(id.pool_name, NODE);
                assert!(d.last_updated_time > 0);
                (id.device_name.clone(), d.health)
            })
            .collect::<Vec<_>>()
    };
    let healthy = health::HealthStatus::Healthy as i32;
    let unhealthy = health::HealthStatus::Unhealthy as i32;
    let first = next().await;
    let names = ["0000-3b-01-0", "0000-3b-01-1", "0000-3b-01-2"];
    assert_eq!(first, names.map(|n| (n.to_string(), healthy)));

    node.fake
        .write("class/net/ens2f0/operstate", "down\n")
        .unwrap();
    ip(&["-n", &ns.0, "link", "set", "ens2f0", "up"]);
    assert_eq!(next().await, names.map(|n| (n.to_string(), unhealthy)));
    let slice_health = || {
        shared
            .lock()
            .unwrap()
            .slices
            .values()
            .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
            .filter_map(|d| {
                let attribute = d.attributes?.get(&format!("{DRIVER}/healthy"))?.bool;
                attribute
            })
            .collect::<Vec<bool>>()
    };
    until("the slices say unhealthy", || slice_health() == [false; 3]).await;

    add_claim(&shared, UID_A, "a", &[("net", "0000-3b-01-1")]);
    let answer = prepare(&channel, &[claim(UID_A, "a")]).await;
    let error = &answer.claims[UID_A].error;
    assert!(
        error.contains("0000-3b-01-1") && error.contains("unhealthy"),
        "{error}"
    );
    assert!(!node.spec(UID_A).exists());

    node.fake
        .write("class/net/ens2f0/operstate", "up\n")
        .unwrap();
    ip(&["-n", &ns.0, "link", "set", "ens2f0", "down"]);
    assert_eq!(next().await, names.map(|n| (n.to_string(), healthy)));
    // Nothing changes: the stream says it again (10 s on), so that kubelet
    // never takes the report as stale.
    let repeated = std::time::Instant::now();
    assert_eq!(next().await, names.map(|n| (n.to_string(), healthy)));
    assert!(repeated.elapsed() > Duration::from_secs(5));
}
