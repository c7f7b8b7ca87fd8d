//! The daemon against a fake kubelet speaking the real device-plugin gRPC
//! protocol over unix sockets: registration, dial-back, ListAndWatch,
//! Allocate, GetPreferredAllocation, and sockets removed on SIGTERM.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use kubelet_api::deviceplugin::v1beta1::{self as dp, device_plugin_client::DevicePluginClient};
use serde_json::Value;
use sriovnet::fake::{FakeSysfs, INTEL_82576, INTEL_E810};
use tokio::sync::mpsc;
use tonic::transport::Channel;
#[tokio::test]
async fn registers_again_when_kubelet_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 2, 1)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut first = start_kubelet(&plugins);
    let _daemon = start_daemon(dir.path(), &plugins);
    let before = registered(&mut first, 2).await;

    // Kubelet restarts: it deletes every plugin socket, then serves
    // kubelet.sock anew.
    for entry in std::fs::read_dir(&plugins).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let mut second = start_kubelet(&plugins);
    let after = registered(&mut second, 2).await;
    assert_eq!(after, before);
    for request in &after {
        let socket = plugins.join(&request.endpoint);
        assert!(socket.exists(), "{} is served again", socket.display());
        let mut pool = DevicePluginClient::new(connect(socket).await);
        let mut lists = pool
            .list_and_watch(dp::Empty {})
            .await
            .unwrap()
            .into_inner();
        assert!(!lists.message().await.unwrap().unwrap().devices.is_empty());
    }
}

/// The daemon in a private network namespace (as root, so that link events
/// about its links are real ones), on a tree with an 82576 PF `enp1s0`
/// with `vfs` VFs, registered with a fake kubelet; the igb pool's client
/// and its ListAndWatch stream.
struct InNetns {
    dir: tempfile::TempDir,
    fake: FakeSysfs,
    plugins: PathBuf,
    ns: Namespace,
    registrations: mpsc::Receiver<dp::RegisterRequest>,
    _daemon: Daemon,
    pool: DevicePluginClient<Channel>,
    lists: tonic::Streaming<dp::ListAndWatchResponse>,
}

async fn daemon_in_netns(vfs: u32, links: &[&str]) -> InNetns {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", vfs, 0)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let ns = Namespace::new();
    for link in links {
        ip(&[
            "-n",
            &ns.0,
            "link",
            "add",
            link,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{link}p"),
        ]);
    }
    let mut registrations = start_kubelet(&plugins);
    let daemon = start_daemon_in(Some(&ns), dir.path(), &plugins, &[]);
    let request = registered(&mut registrations, 1).await.remove(0);
    assert_eq!(request.resource_name, "intel.com/igb");
    let mut pool = DevicePluginClient::new(connect(plugins.join(&request.endpoint)).await);
    let lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    InNetns {
        dir,
        fake,
        plugins,
        ns,
        registrations,
        _daemon: daemon,
        pool,
        lists,
    }
}

/// As root: the daemon runs in a private namespace where a veth carries the
/// fake PF's name, so that link events about it are real ones.
#[tokio::test]
async fn health_follows_the_pf_link_on_link_events() {
    // Every field bound: a dropped one would stop the daemon or delete the tree.
    let InNetns {
        dir: _dir,
        fake,
        plugins: _plugins,
        ns,
        registrations: _registrations,
        _daemon,
        pool: _pool,
        mut lists,
    } = daemon_in_netns(3, &["enp1s0"]).await;
    let health = |list: dp::ListAndWatchResponse| {
        list.devices
            .iter()
            .map(|d| d.health.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        health(lists.message().await.unwrap().unwrap()),
        ["Healthy"; 3]
    );

    // The tree says the PF is down; a link event makes the daemon look.
    fake.write("class/net/enp1s0/operstate", "down\n").unwrap();
    ip(&["-n", &ns.0, "link", "set", "enp1s0", "up"]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(health(next.unwrap().unwrap()), ["Unhealthy"; 3]);

    fake.write("class/net/enp1s0/operstate", "up\n").unwrap();
    ip(&["-n", &ns.0, "link", "set", "enp1s0", "down"]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(health(next.unwrap().unwrap()), ["Healthy"; 3]);
}

/// As root, like the health test: VFs that come and go while the daemon
/// runs join and leave ListAndWatch, and a pool that had no devices is
/// advertised once it has.
#[tokio::test]
async fn vfs_created_or_removed_while_running() {
    let InNetns {
        dir,
        fake,
        plugins,
        ns,
        mut registrations,
        _daemon,
        mut pool,
        mut lists,
    } = daemon_in_netns(2, &[]).await;
    let ids = |list: dp::ListAndWatchResponse| {
        list.devices
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(lists.message().await.unwrap().unwrap()),
        ["0000:01:10.0", "0000:01:10.2"]
    );

    // sriov_numvfs 2 -> 4: new VFs in the tree, their netdevs' link events.
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 4, 0)
        .unwrap();
    ip(&[
        "-n", &ns.0, "link", "add", "enp1s0v2", "type", "veth", "peer", "name", "enp1s0v3",
    ]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(
        ids(next.unwrap().unwrap()),
        [
            "0000:01:10.0",
            "0000:01:10.2",
            "0000:01:10.4",
            "0000:01:10.6"
        ]
    );

    // One goes away, with the device info written when it was allocated.
    pool.allocate(dp::AllocateRequest {
        container_requests: vec![dp::ContainerAllocateRequest {
            devices_ids: vec!["0000:01:10.6".into()],
        }],
    })
    .await
    .unwrap();
    let info = dir
        .path()
        .join("devinfo/intel.com-igb-0000:01:10.6-device.json");
    assert!(info.exists());
    fake.remove("bus/pci/devices/0000:01:00.0/virtfn3").unwrap();
    fake.remove("bus/pci/devices/0000:01:10.6").unwrap();
    ip(&["-n", &ns.0, "link", "del", "enp1s0v2"]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(
        ids(next.unwrap().unwrap()),
        ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]
    );

    // A pool empty at start (vendor 1af4) is advertised once it has a device.
    fake.add_pf(&INTEL_82576, "0000:07:00.0", "enp7s0", 0, 0)
        .unwrap();
    fake.write("bus/pci/devices/0000:07:00.0/vendor", "0x1af4\n")
        .unwrap();
    ip(&[
        "-n", &ns.0, "link", "add", "enp7s0", "type", "veth", "peer", "name", "enp7s0p",
    ]);
    let late = registered(&mut registrations, 1).await.remove(0);
    assert_eq!(late.resource_name, "intel.com/none");
    let mut late_pool = DevicePluginClient::new(connect(plugins.join(&late.endpoint)).await);
    let mut late_lists = late_pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(late_lists.message().await.unwrap().unwrap()),
        ["0000:07:00.0"]
    );
}

#[tokio::test]
async fn cdi_specs_and_cdi_devices() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.bind(&vfs[2], "vfio-pci").unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let cdi = dir.path().join("cdi");
    std::fs::create_dir(&cdi).unwrap();
    std::fs::write(cdi.join("sriov-dp-old.json"), "{}").unwrap();
    std::fs::write(cdi.join("vendor-gpu.json"), "{}").unwrap();
    let mut registrations = start_kubelet(&plugins);
    let _daemon = start_daemon_in(
        None,
        dir.path(),
        &plugins,
        &["--cdi", "--cdi-dir", cdi.to_str().unwrap()],
    );
    let request = registered(&mut registrations, 1).await.remove(0);
    assert!(
        !cdi.join("sriov-dp-old.json").exists(),
        "an earlier run's spec is removed"
    );
    assert!(
        cdi.join("vendor-gpu.json").exists(),
        "another vendor's spec stays"
    );

    let spec: Value =
        serde_json::from_slice(&std::fs::read(cdi.join("sriov-dp-intel.com-igb.json")).unwrap())
            .unwrap();
    assert_eq!(spec["kind"], "intel.com/net-pci");
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]);
    assert_eq!(
        spec["devices"][0]["containerEdits"]["deviceNodes"],
        serde_json::json!([])
    );
    let group = std::fs::read_link(fake.device_dir(&vfs[2]).join("iommu_group")).unwrap();
    let group = group.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        spec["devices"][2]["containerEdits"]["deviceNodes"],
        serde_json::json!([
            {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio", "permissions": "rw"},
            {"path": format!("/dev/vfio/{group}"), "hostPath": format!("/dev/vfio/{group}"), "permissions": "rw"}
        ])
    );

    let mut pool = DevicePluginClient::new(connect(plugins.join(&request.endpoint)).await);
    let response = pool
        .allocate(dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.0".into(), "0000:01:10.4".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let container = &response.container_responses[0];
    let cdi_names: Vec<&str> = container
        .cdi_devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        cdi_names,
        [
            "intel.com/net-pci=0000:01:10.0",
            "intel.com/net-pci=0000:01:10.4"
        ]
    );
    assert!(
        container.devices.is_empty(),
        "the runtime takes device nodes from the CDI spec"
    );
    assert_eq!(
        container.envs["PCIDEVICE_INTEL_COM_IGB"],
        "0000:01:10.0,0000:01:10.4"
    );
}

#[tokio::test]
async fn metrics_report_each_pool() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.write("class/net/enp1s0/carrier", "0\n").unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 2, 1)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let address = free_address();
    let mut registrations = start_kubelet(&plugins);
    let _daemon = start_daemon_in(None, dir.path(), &plugins, &["--metrics-addr", &address]);
    let requests = registered(&mut registrations, 2).await;
    let mut e810 = DevicePluginClient::new(connect(plugins.join(&requests[0].endpoint)).await);
    let allocate = |ids: &[&str]| dp::AllocateRequest {
        container_requests: vec![dp::ContainerAllocateRequest {
            devices_ids: ids.iter().map(|s| s.to_string()).collect(),
        }],
    };
    e810.allocate(allocate(&["0000:3b:01.0"])).await.unwrap();
    e810.allocate(allocate(&["0000:99:00.0"]))
        .await
        .unwrap_err();

    let response = metrics(&address).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    for line in [
        r#"sriov_dp_devices{resource="intel.com/igb"} 3"#,
        r#"sriov_dp_healthy_devices{resource="intel.com/igb"} 0"#,
        r#"sriov_dp_devices{resource="example.org/e810"} 2"#,
        r#"sriov_dp_healthy_devices{resource="example.org/e810"} 2"#,
        r#"sriov_dp_allocated_devices{resource="example.org/e810"} 1"#,
        r#"sriov_dp_registrations_total{resource="example.org/e810"} 1"#,
        r#"sriov_dp_allocate_calls_total{resource="example.org/e810"} 2"#,
        r#"sriov_dp_errors_total{resource="example.org/e810"} 1"#,
        r#"sriov_dp_devices{resource="intel.com/none"} 0"#,
        r#"sriov_dp_registration_failures_total{resource="example.org/e810"} 0"#,
        "# TYPE sriov_dp_allocate_calls counter",
        "sriov_dp_rescans_total 0",
        "# EOF",
    ] {
        assert!(
            response.lines().any(|l| l == line),
            "missing {line:?} in:\n{response}"
        );
    }
    let healthz = get(&address, "/healthz").await;
    assert!(
        healthz.starts_with("HTTP/1.1 200 OK") && healthz.ends_with("ok\n"),
        "{healthz}"
    );
    let readyz = get(&address, "/readyz").await;
    assert!(
        readyz.starts_with("HTTP/1.1 200 OK") && readyz.ends_with("ready\n"),
        "{readyz}"
    );
}

#[tokio::test]
async fn registers_serves_and_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    let igb = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 7, 0)
        .unwrap();
    fake.bind(&igb[6], "vfio-pci").unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 4, 1)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:5e:00.0", "ens3f0", 4, 1)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();

    let devinfo = dir.path().join("devinfo");
    std::fs::create_dir(&devinfo).unwrap();
    let stale = devinfo.join("intel.com-igb-0000:01:10.4-device.json");
    let unrelated = devinfo.join("other.io-net-0000:01:10.4-device.json");
    std::fs::write(&stale, "{}").unwrap();
    std::fs::write(&unrelated, "{}").unwrap();
    let mut registrations = start_kubelet(&plugins);
    let daemon = start_daemon(dir.path(), &plugins);
    let requests = registered(&mut registrations, 2).await;
    assert!(!stale.exists(), "an earlier run's device info is removed");
    assert!(unrelated.exists(), "another resource's device info stays");
    assert_eq!(requests[0].resource_name, "example.org/e810");
    assert_eq!(requests[0].endpoint, "example.org_e810.sock");
    assert_eq!(requests[1].resource_name, "intel.com/igb");
    assert_eq!(requests[1].version, "v1beta1");
    assert!(
        requests[1]
            .options
            .as_ref()
            .unwrap()
            .get_preferred_allocation_available
    );
    let igb_socket = plugins.join(&requests[1].endpoint);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&igb_socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !plugins.join("intel.com_none.sock").exists(),
        "an empty pool is not served"
    );

    // Kubelet dials the pool back.
    let mut igb_pool = DevicePluginClient::new(connect(igb_socket.clone()).await);
    let options = igb_pool
        .get_device_plugin_options(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(options.get_preferred_allocation_available);
    let mut lists = igb_pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    let first = lists.message().await.unwrap().unwrap();
    let ids: Vec<&str> = first.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0000:01:10.0",
            "0000:01:10.2",
            "0000:01:10.4",
            "0000:01:10.6",
            "0000:01:11.0",
            "0000:01:11.2",
            "0000:01:11.4"
        ]
    );
    assert!(first.devices.iter().all(|d| d.health == "Healthy"));
    assert_eq!(first.devices[0].topology.as_ref().unwrap().nodes[0].id, 0);

    let response = igb_pool
        .allocate(dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.0".into(), "0000:01:11.4".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let container = &response.container_responses[0];
    assert_eq!(
        container.envs["PCIDEVICE_INTEL_COM_IGB"],
        "0000:01:10.0,0000:01:11.4"
    );
    let info: Value =
        serde_json::from_str(&container.envs["PCIDEVICE_INTEL_COM_IGB_INFO"]).unwrap();
    assert_eq!(info["0000:01:10.0"]["generic"]["deviceID"], "0000:01:10.0");
    assert_eq!(info["0000:01:10.0"]["extra"]["site"], "rack1");
    assert_eq!(info["0000:01:11.4"]["extra"]["site"], "lab");
    assert_eq!(info["0000:01:11.4"]["vfio"]["mount"], "/dev/vfio/vfio");
    assert_eq!(info["0000:01:11.4"]["vfio"]["dev-mount"], "/dev/vfio/6");
    assert!(info["0000:01:10.0"].get("vfio").is_none());
    let specs: Vec<(&str, &str)> = container
        .devices
        .iter()
        .map(|d| (d.host_path.as_str(), d.permissions.as_str()))
        .collect();
    assert_eq!(specs, [("/dev/vfio/vfio", "rw"), ("/dev/vfio/6", "rw")]);

    let unknown = igb_pool
        .allocate(dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec!["0000:09:00.0".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown.message().contains("0000:09:00.0"),
        "{}",
        unknown.message()
    );

    // Spread across the E810 pool's two PFs.
    let mut e810_pool =
        DevicePluginClient::new(connect(plugins.join("example.org_e810.sock")).await);
    let available: Vec<String> = [
        "0000:3b:01.0",
        "0000:3b:01.1",
        "0000:3b:01.2",
        "0000:3b:01.3",
        "0000:5e:01.0",
        "0000:5e:01.1",
        "0000:5e:01.2",
        "0000:5e:01.3",
    ]
    .map(String::from)
    .to_vec();
    let preferred = e810_pool
        .get_preferred_allocation(dp::PreferredAllocationRequest {
            container_requests: vec![dp::ContainerPreferredAllocationRequest {
                available_device_i_ds: available,
                must_include_device_i_ds: vec!["0000:3b:01.1".into()],
                allocation_size: 3,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        preferred.container_responses[0].device_i_ds,
        ["0000:3b:01.1", "0000:5e:01.0", "0000:3b:01.0"]
    );

    drop(daemon);
    assert!(!igb_socket.exists(), "the socket is removed on SIGTERM");
}

/// A tree with the two pools of `CONFIG` that have devices.
fn two_pool_tree(dir: &std::path::Path) -> PathBuf {
    let fake = FakeSysfs::new(dir);
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 2, 1)
        .unwrap();
    let plugins = dir.join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    plugins
}

#[tokio::test]
async fn registers_once_kubelet_listens_on_a_socket_it_bound_earlier() {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    let dir = tempfile::tempdir().unwrap();
    let plugins = two_pool_tree(dir.path());
    // kubelet.sock exists, but nothing listens yet: connects are refused,
    // as they are while kubelet sets up its registration server.
    let path = plugins.join(dp::KUBELET_SOCKET);
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &UnixAddr::new(&path).unwrap(),
    )
    .unwrap();
    let _daemon = start_daemon(dir.path(), &plugins);
    tokio::time::sleep(Duration::from_secs(1)).await;

    listen(&fd, Backlog::new(16).unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true).unwrap();
    let listening = std::time::Instant::now();
    let mut registrations =
        kubelet_api::fake_kubelet::serve_on(tokio::net::UnixListener::from_std(listener).unwrap());
    // Retries back off from 100 ms: the next attempt comes well within a
    // second of the listen. The bound only keeps a broken daemon from
    // hanging the test.
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(3), registrations.recv())
            .await
            .expect("every pool registers soon after kubelet listens")
            .unwrap();
    }
    eprintln!(
        "both pools registered {:?} after the listen",
        listening.elapsed()
    );
}

#[tokio::test]
async fn a_kubelet_that_never_answers_stalls_no_pool_and_no_signal() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = two_pool_tree(dir.path());
    // Accepts connections (the kernel queues them) and never answers.
    let _mute = std::os::unix::net::UnixListener::bind(plugins.join(dp::KUBELET_SOCKET)).unwrap();
    let address = free_address();
    let mut daemon = start_daemon_in(None, dir.path(), &plugins, &["--metrics-addr", &address]);
    let sockets = [
        plugins.join("intel.com_igb.sock"),
        plugins.join("example.org_e810.sock"),
    ];
    // Both served, though kubelet is mute.
    for socket in &sockets {
        appears(socket).await;
    }
    // SIGTERM in the middle of an unanswered Register: the daemon stops
    // at once, cleanly, and takes its sockets with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    for _ in 0..50 {
        status = daemon.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("the daemon exits on SIGTERM while kubelet is mute");
    assert!(status.success(), "{status}");
    for socket in &sockets {
        assert!(!socket.exists(), "{} is left behind", socket.display());
    }
}

/// As root: links that are not SR-IOV (a primary CNI's veths, one per pod)
/// come and go in the daemon's namespace without a rescan; the PF's own
/// link event still makes one.
#[tokio::test]
async fn link_events_that_are_not_ours_cost_no_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let ns = Namespace::new();
    ip(&[
        "-n", &ns.0, "link", "add", "enp1s0", "type", "veth", "peer", "name", "enp1s0p",
    ]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let address = free_address();
    let mut registrations = start_kubelet(&plugins);
    let _daemon = start_daemon_in(
        Some(&ns),
        dir.path(),
        &plugins,
        &["--metrics-addr", &address],
    );
    registered(&mut registrations, 1).await;
    let before = series(&metrics_in(&ns, &address).await, "sriov_dp_rescans_total");

    for n in 0..10 {
        let (a, b) = (format!("cni{n}a"), format!("cni{n}b"));
        ip(&[
            "-n", &ns.0, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ]);
        ip(&["-n", &ns.0, "link", "set", &a, "up"]);
        ip(&["-n", &ns.0, "link", "del", &a]);
    }
    // The PF's link: ours. Once its rescan is counted, every earlier event
    // has been handled too (they come in order on one socket).
    ip(&["-n", &ns.0, "link", "set", "enp1s0", "up"]);
    let mut after = before;
    for _ in 0..100 {
        after = series(&metrics_in(&ns, &address).await, "sriov_dp_rescans_total");
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after, before + 1.0, "one rescan, for the PF's event alone");
}

/// The daemon run to its end with `args` (a config of `CONFIG`): its exit
/// status and what it said.
fn run_daemon_to_end(root: &std::path::Path, plugins: &std::path::Path) -> (bool, String) {
    let config = root.join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("--config-file")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(root)
        .arg("--device-plugin-dir")
        .arg(plugins)
        .arg("--plugins-registry-dir")
        .arg(root.join("no-plugins-registry"))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_second_daemon_on_the_same_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = two_pool_tree(dir.path());
    let mut registrations = start_kubelet(&plugins);
    let first = start_daemon(dir.path(), &plugins);
    registered(&mut registrations, 2).await;

    let (ok, said) = run_daemon_to_end(dir.path(), &plugins);
    assert!(!ok, "a second daemon ran: {said}");
    assert!(
        said.contains("another sriov-device-plugin serves")
            && said.contains(&format!("pid {}", first.0.id())),
        "{said}"
    );
    // The first one's sockets are untouched, and still served.
    let socket = plugins.join("intel.com_igb.sock");
    let mut pool = DevicePluginClient::new(connect(socket).await);
    let mut lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lists.message().await.unwrap().unwrap().devices.len(), 3);
}

#[test]
fn a_daemon_that_can_serve_nothing_says_so_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    two_pool_tree(dir.path());
    // Not a directory.
    let file = dir.path().join("plugins-file");
    std::fs::write(&file, "").unwrap();
    let (ok, said) = run_daemon_to_end(dir.path(), &file);
    assert!(!ok && said.contains("is not a directory"), "{said}");
    // Missing.
    let (ok, said) = run_daemon_to_end(dir.path(), &dir.path().join("missing"));
    assert!(!ok && said.contains("is not a directory"), "{said}");
    // A directory where no socket can be bound: a path too long for a unix
    // socket address (108 bytes) fails every pool, as a read-only one does.
    let deep = dir.path().join("d".repeat(100));
    std::fs::create_dir(&deep).unwrap();
    let (ok, said) = run_daemon_to_end(dir.path(), &deep);
    assert!(!ok && said.contains("no pool could be served"), "{said}");
}

/// As root: a VF's netdev leaving the host (moved into a pod) changes
/// nothing kubelet sees, so ListAndWatch sends nothing; the next list is the
/// next real change.
#[tokio::test]
async fn listandwatch_sends_only_real_changes() {
    let InNetns {
        dir: _dir,
        fake,
        plugins: _plugins,
        ns,
        registrations: _registrations,
        _daemon,
        pool: _pool,
        mut lists,
    } = daemon_in_netns(3, &["enp1s0", "enp1s0v0"]).await;
    let health = |list: dp::ListAndWatchResponse| {
        list.devices
            .iter()
            .map(|d| d.health.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        health(lists.message().await.unwrap().unwrap()),
        ["Healthy"; 3]
    );

    // VF 0's netdev goes into a pod: the tree no longer has it here.
    fake.remove("class/net/enp1s0v0").unwrap();
    fake.remove("bus/pci/devices/0000:01:10.0/net").unwrap();
    ip(&["-n", &ns.0, "link", "del", "enp1s0v0"]);
    // Then a real change: the PF goes down. The next list is that one.
    fake.write("class/net/enp1s0/operstate", "down\n").unwrap();
    ip(&["-n", &ns.0, "link", "set", "enp1s0", "up"]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(health(next.unwrap().unwrap()), ["Unhealthy"; 3]);
}

/// As root: /proc/net that cannot be read at a rescan leaves the default
/// routes as they were read before, so the host's uplink VF stays out.
#[tokio::test]
async fn an_unreadable_proc_net_keeps_the_uplink_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    let proc_net = dir.path().join("proc-net");
    std::fs::create_dir(&proc_net).unwrap();
    // VF 1 (enp1s0v1) carries the default route.
    std::fs::write(
        proc_net.join("route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         enp1s0v1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    )
    .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let ns = Namespace::new();
    ip(&[
        "-n", &ns.0, "link", "add", "enp1s0", "type", "veth", "peer", "name", "enp1s0p",
    ]);
    let mut registrations = start_kubelet(&plugins);
    let _daemon = start_daemon_in(
        Some(&ns),
        dir.path(),
        &plugins,
        &["--proc-net", proc_net.to_str().unwrap()],
    );
    let request = registered(&mut registrations, 1).await.remove(0);
    let mut pool = DevicePluginClient::new(connect(plugins.join(&request.endpoint)).await);
    let mut lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    let ids = |list: dp::ListAndWatchResponse| {
        list.devices
            .iter()
            .map(|d| (d.id.clone(), d.health.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(lists.message().await.unwrap().unwrap()),
        [
            ("0000:01:10.0".to_string(), "Healthy".to_string()),
            ("0000:01:10.4".to_string(), "Healthy".to_string())
        ]
    );
    // /proc/net/route cannot be read (here: it is a directory); the PF goes
    // down, a rescan follows.
    std::fs::remove_file(proc_net.join("route")).unwrap();
    std::fs::create_dir(proc_net.join("route")).unwrap();
    fake.write("class/net/enp1s0/operstate", "down\n").unwrap();
    ip(&["-n", &ns.0, "link", "set", "enp1s0", "up"]);
    let next = tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list");
    assert_eq!(
        ids(next.unwrap().unwrap()),
        [
            ("0000:01:10.0".to_string(), "Unhealthy".to_string()),
            ("0000:01:10.4".to_string(), "Unhealthy".to_string())
        ],
        "the uplink VF stays out"
    );
}
