//! The DRA frontend: the ResourceSlices a node's pools become, and their
//! publisher against a fake API server that speaks the real REST protocol:
//! JSON bodies typed by k8s-openapi, field selectors, resourceVersions, 409
//! on a stale write or an existing name, 404, 500s, and a server that is
//! not there yet.

mod common;

use common::apiserver::{client, kubeconfig, serve_on, start, Shared, NODE, NODE_UID};
use k8s_openapi::api::resource::v1::ResourceSlice;
use serde_json::json;
use sriov_device_plugin::core::config::Config;
use sriov_device_plugin::core::view::PoolView;
use sriov_device_plugin::core::{inventory, pool};
use sriov_device_plugin::frontends::dra::publish::{publish_until_done, Changes, Publisher};
use sriov_device_plugin::frontends::dra::slices::{slices, Node};
use sriov_device_plugin::frontends::dra::DRIVER;
use sriovnet::fake::{FakeSysfs, INTEL_E810};

/// Two E810 PFs with 150 VFs each, in one pool.
fn pools(dir: &std::path::Path) -> Vec<PoolView> {
    let fake = FakeSysfs::new(dir);
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 150, 1)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:5e:00.0", "ens3f0", 150, 0)
        .unwrap();
    let config = Config::parse(
        r#"{"resourceList":[{"resourceName":"e810","selectors":{"drivers":["iavf"]}}]}"#,
        "intel.com",
    )
    .unwrap();
    let sysfs = fake.sysfs();
    let (inventory, routes) = inventory::scan(&sysfs, &dir.join("no-proc-net")).unwrap();
    let devices = inventory::candidates(&sysfs, &inventory, &routes);
    pool::assign(&config.resources, &devices, &pool::Pins::new())
        .into_iter()
        .map(|pool| PoolView {
            config: pool.config,
            members: pool.members,
        })
        .collect()
}

fn pool_of(shared: &Shared) -> Vec<(String, i64, i64, usize)> {
    shared
        .lock()
        .unwrap()
        .slices
        .values()
        .filter(|s| s.spec.driver == DRIVER)
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                s.spec.pool.generation,
                s.spec.pool.resource_slice_count,
                s.spec.devices.as_ref().map_or(0, Vec::len),
            )
        })
        .collect()
}

/// Publishes until done, failing the test after 20 s instead of hanging,
/// with the error a pass then gives.
async fn publish(publisher: &Publisher, pools: &[PoolView]) -> Changes {
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        publish_until_done(publisher, pools),
    )
    .await;
    match done {
        Ok(changes) => changes,
        Err(_) => panic!(
            "not published in 20 s: {:?}",
            publisher.publish(pools).await
        ),
    }
}

fn a_slice(name: &str, node: &str, driver: &str) -> ResourceSlice {
    serde_json::from_value(json!({"metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"driver": driver, "nodeName": node,
                 "pool": {"name": node, "generation": 4, "resourceSliceCount": 1}}}))
    .unwrap()
}

#[tokio::test]
async fn three_hundred_vfs_become_three_slices_and_stay_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut pools = pools(dir.path());
    let shared = Shared::default();
    {
        // A previous run's extra slice, and slices that are not ours.
        let server = &mut shared.lock().unwrap();
        let stale = format!("{NODE}-{DRIVER}-7");
        server
            .slices
            .insert(stale.clone(), a_slice(&stale, NODE, DRIVER));
        server.slices.insert(
            "other-node".into(),
            a_slice("other-node", "worker-2", DRIVER),
        );
        server.slices.insert(
            "other-driver".into(),
            a_slice("other-driver", NODE, "gpu.example.com"),
        );
    }
    let address = start(shared.clone()).await;
    let publisher = Publisher::connect(client(address), DRIVER, NODE)
        .await
        .unwrap();

    let changes = publish(&publisher, &pools).await;
    assert_eq!(
        (changes.created, changes.deleted, changes.generation),
        (3, 1, 5)
    );
    let slice = |n| format!("{NODE}-{DRIVER}-{n}");
    assert_eq!(
        pool_of(&shared),
        [
            ("other-node".into(), 4, 1, 0),
            (slice(0), 5, 3, 128),
            (slice(1), 5, 3, 128),
            (slice(2), 5, 3, 44),
        ]
    );
    assert!(shared.lock().unwrap().slices.contains_key("other-driver"));
    let owner = shared.lock().unwrap().slices[&slice(0)]
        .metadata
        .owner_references
        .clone()
        .unwrap();
    assert_eq!(owner[0].uid, NODE_UID);

    // Nothing changed: nothing is written.
    shared.lock().unwrap().writes.clear();
    let changes = publish(&publisher, &pools).await;
    assert_eq!(
        (changes.created, changes.replaced, changes.deleted),
        (0, 0, 0)
    );
    assert!(shared.lock().unwrap().writes.is_empty());

    // A VF goes unhealthy: the next generation, on every slice.
    pools[0].members[200].healthy = false;
    let changes = publish(&publisher, &pools).await;
    assert_eq!((changes.replaced, changes.generation), (3, 6));
    let unhealthy = shared.lock().unwrap().slices[&slice(1)]
        .spec
        .devices
        .as_ref()
        .unwrap()[72]
        .attributes
        .as_ref()
        .unwrap()[&format!("{DRIVER}/healthy")]
        .bool;
    assert_eq!(unhealthy, Some(false));

    // 150 VFs go: two slices left.
    pools[0].members.truncate(150);
    let changes = publish(&publisher, &pools).await;
    assert_eq!(
        (changes.replaced, changes.deleted, changes.generation),
        (2, 1, 7)
    );
    let counts: Vec<i64> = pool_of(&shared).iter().skip(1).map(|p| p.2).collect();
    assert_eq!(counts, [2, 2]);

    assert_eq!(publisher.remove_all().await.unwrap(), 2);
    assert_eq!(
        pool_of(&shared).len(),
        1,
        "only the other node's slice is left"
    );
}

/// A 409 (someone wrote first), then 500s: retried, never a crash.
#[tokio::test]
async fn conflicts_and_server_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut pools = pools(dir.path());
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let publisher = Publisher::connect(client(address), DRIVER, NODE)
        .await
        .unwrap();
    publish(&publisher, &pools).await;

    pools[0].members[0].healthy = false;
    shared.lock().unwrap().conflicts = 1;
    let changes = publish(&publisher, &pools).await;
    assert_eq!(changes.generation, 2);
    shared.lock().unwrap().failures = 3;
    pools[0].members[0].healthy = true;
    let changes = publish(&publisher, &pools).await;
    assert_eq!(changes.generation, 3);
    assert!(pool_of(&shared).iter().all(|p| p.1 == 3));
}

/// The API server is not there when the daemon starts: connecting fails
/// with a reason, and publishing waits for it.
#[tokio::test]
async fn an_api_server_that_comes_up_late() {
    let dir = tempfile::tempdir().unwrap();
    let pools = pools(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let error = Publisher::connect(client(address), DRIVER, NODE)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().starts_with("node worker-1: "), "{error}");

    let shared = Shared::default();
    shared.lock().unwrap().failures = 1;
    let publisher = loop {
        if let Ok(listener) = tokio::net::TcpListener::bind(address).await {
            serve_on(listener, shared.clone()).await;
        }
        match Publisher::connect(client(address), DRIVER, NODE).await {
            Ok(publisher) => break publisher,
            Err(e) => assert!(e.to_string().contains("etcd is down"), "{e}"),
        }
    };
    let changes = publish(&publisher, &pools).await;
    assert_eq!(changes.created, 3);
}

#[test]
fn three_hundred_vfs_are_three_slices_of_one_pool() {
    let dir = tempfile::tempdir().unwrap();
    let pools = pools(dir.path());
    let published = slices(DRIVER, &worker(), 7, &pools);
    let sizes: Vec<usize> = published
        .iter()
        .map(|s| s.spec.devices.as_ref().unwrap().len())
        .collect();
    assert_eq!(sizes, [128, 128, 44]);
    for slice in &published {
        assert_eq!(slice.spec.pool.name, "worker-1");
        assert_eq!(slice.spec.pool.generation, 7);
        assert_eq!(slice.spec.pool.resource_slice_count, 3);
        assert_eq!(slice.spec.node_name.as_deref(), Some("worker-1"));
    }
    let mut names: Vec<&str> = published
        .iter()
        .flat_map(|s| s.spec.devices.as_ref().unwrap())
        .map(|d| d.name.as_str())
        .collect();
    names.dedup();
    assert_eq!(names.len(), 300, "every device once");
    assert!(slices(DRIVER, &worker(), 1, &[]).is_empty());
}

/// The JSON the API server gets, for one VF: kind, owner, the pool and
/// the attributes dra-driver-sriov's selectors use.
#[test]
fn a_vf_as_the_api_server_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let pools = pools(dir.path());
    let slice = &slices(DRIVER, &worker(), 1, &pools)[0];
    let value = serde_json::to_value(slice).unwrap();
    assert_eq!(value["apiVersion"], "resource.k8s.io/v1");
    assert_eq!(value["kind"], "ResourceSlice");
    assert_eq!(
        value["metadata"]["name"],
        "worker-1-sriovnetwork.k8snetworkplumbingwg.io-0"
    );
    assert_eq!(
        value["metadata"]["ownerReferences"][0],
        json!({"apiVersion": "v1", "kind": "Node", "name": "worker-1",
               "uid": NODE_UID, "controller": true})
    );
    assert_eq!(
        value["spec"]["pool"],
        json!({"name": "worker-1", "generation": 1, "resourceSliceCount": 3})
    );
    let first = &value["spec"]["devices"][0];
    assert_eq!(first["name"], "0000-3b-01-0");
    let sriov = "sriovnetwork.k8snetworkplumbingwg.io";
    assert_eq!(
        first["attributes"],
        json!({
            format!("{sriov}/vendor"): {"string": "8086"},
            format!("{sriov}/deviceID"): {"string": "1889"},
            format!("{sriov}/pciAddress"): {"string": "0000:3b:01.0"},
            format!("{sriov}/PFName"): {"string": "ens2f0"},
            format!("{sriov}/pfPciAddress"): {"string": "0000:3b:00.0"},
            format!("{sriov}/pfDeviceID"): {"string": "159b"},
            format!("{sriov}/vfID"): {"int": 0},
            format!("{sriov}/linkType"): {"string": "ethernet"},
            format!("{sriov}/rdmaCapable"): {"bool": false},
            format!("{sriov}/driver"): {"string": "iavf"},
            format!("{sriov}/healthy"): {"bool": true},
            "resource.kubernetes.io/pciBusID": {"string": "0000:3b:01.0"},
            "dra.net/numaNode": {"int": 1},
            "k8s.cni.cncf.io/deviceID": {"string": "0000:3b:01.0"},
            "k8s.cni.cncf.io/resourceName": {"string": "intel.com/e810"},
        })
    );
}

fn worker() -> Node {
    Node {
        name: NODE.into(),
        uid: NODE_UID.into(),
    }
}

/// The devices the fake API server's slices of this node hold, sorted.
fn published(shared: &Shared) -> Vec<String> {
    let mut names: Vec<String> = shared
        .lock()
        .unwrap()
        .slices
        .values()
        .filter(|s| s.spec.node_name.as_deref() == Some(NODE))
        .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
        .map(|d| d.name)
        .collect();
    names.sort();
    names
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One daemon, two APIs: the igb pool through kubelet's device-plugin API,
/// the E810 pool through DRA, never both; a reload moves the igb pool to
/// DRA; SIGTERM leaves the slices (an upgrade must not empty the node).
#[tokio::test]
async fn the_daemon_serves_each_pool_through_its_api() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&sriovnet::fake::INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 3, 0)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut registrations = common::start_kubelet(&plugins);
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(dir.path(), address);
    let config = |igb_api: &str| {
        format!(
            r#"{{"resourceList":[
                {{"resourceName":"igb","api":"{igb_api}","selectors":{{"drivers":["igbvf"]}}}},
                {{"resourceName":"e810","api":"dra","selectors":{{"drivers":["iavf"]}}}}]}}"#
        )
    };
    let daemon = common::start_daemon_with(
        None,
        dir.path(),
        &plugins,
        &config("devicePlugin"),
        &[
            "--node-name",
            NODE,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );

    let registered = common::registered(&mut registrations, 1).await;
    assert_eq!(registered[0].resource_name, "intel.com/igb");
    until("the E810 VFs published", || {
        published(&shared) == ["0000-3b-01-0", "0000-3b-01-1", "0000-3b-01-2"]
    })
    .await;
    let e810 = published(&shared);
    assert!(
        plugins.read_dir().unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("e810")),
        "the DRA pool has no device-plugin socket"
    );

    // The igb pool moves to DRA (no pod holds its devices).
    std::fs::write(dir.path().join("config.json"), config("dra")).unwrap();
    let socket = plugins.join("intel.com_igb.sock");
    until("the igb pool's socket gone", || !socket.exists()).await;
    until("both pools published", || published(&shared).len() == 5).await;
    assert!(published(&shared)
        .iter()
        .any(|n| n.starts_with("0000-01-10-")));
    assert!(e810.iter().all(|n| published(&shared).contains(n)));
    assert!(registrations.try_recv().is_err(), "nothing else registers");

    drop(daemon);
    assert_eq!(published(&shared).len(), 5, "SIGTERM leaves the slices");
}

/// A node name that is not one stops the daemon at start, naming the flag
/// and the value (`timeout`: a daemon that accepted it would run on).
#[test]
fn bad_dra_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"resourceList":[]}"#).unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = std::process::Command::new("timeout")
            .arg("10")
            .arg(env!("CARGO_BIN_EXE_sriov-device-plugin"))
            .arg("--config-file")
            .arg(&config)
            .arg("--device-plugin-dir")
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for (env, args, value) in [
        (vec![("NODE_NAME", "")], vec![], ""),
        (vec![], vec!["--node-name", "Worker_1"], "Worker_1"),
    ] {
        let stderr = run(&env, &args);
        assert!(
            stderr.contains(&format!(
                "--node-name (or NODE_NAME) \"{value}\" is not a node name"
            )),
            "{stderr}"
        );
    }
}

/// The DRA examples in `deploy/examples/dra/` select what we publish: the
/// driver's name, attributes every device carries, and the pool of the
/// ConfigMap that the example NAD names.
#[test]
fn the_dra_examples_select_what_we_publish() {
    let deploy = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"));
    let read = |name: &str| std::fs::read_to_string(deploy.join(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slice = serde_json::to_value(&slices(DRIVER, &worker(), 1, &pools(dir.path()))[0]).unwrap();
    let attributes = slice["spec"]["devices"][0]["attributes"]
        .as_object()
        .unwrap()
        .clone();
    let expressions =
        read("examples/dra/deviceclass.yaml") + &read("examples/dra/resourceclaimtemplate.yaml");
    let mut named = 0;
    for part in expressions.split("device.attributes[\"").skip(1) {
        let (domain, rest) = part.split_once("\"].").unwrap();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let key = format!("{domain}/{name}");
        assert!(attributes.contains_key(&key), "{key} is not published");
        named += 1;
    }
    assert_eq!(named, 2);
    assert!(expressions.contains(&format!("device.driver == \"{DRIVER}\"")));
    // The pool the class selects is the ConfigMap's, and the NAD's.
    let pool = "intel.com/intel_sriov_netdevice";
    assert!(expressions.contains(&format!("resourceName == \"{pool}\"")));
    assert!(read("base/configmap.yaml").contains("\"resourceName\": \"intel_sriov_netdevice\""));
    assert!(read("examples/nad-vlan.yaml")
        .contains(&format!("k8s.v1.cni.cncf.io/resourceName: {pool}")));
    assert!(read("examples/dra/pod.yaml").contains("k8s.v1.cni.cncf.io/networks: sriov-vlan100"));
}
