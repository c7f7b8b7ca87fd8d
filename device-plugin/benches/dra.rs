//! DRA with 8 PFs x 256 VFs (2048 VFs) on a fake tree, every pool through
//! DRA, against the tests' fake API server and a fake kubelet:
//! - start until the API server holds all 2048 devices, in every slice of
//!   one generation (16 slices), and the daemon's peak RSS then;
//! - NodePrepareResources + NodeUnprepareResources round trips of one
//!   claim of one VF each, as kubelet makes them (gRPC over the unix
//!   socket, the claim read from the API server over loopback HTTP);
//! - our own work per claim, in process: `Preparer::prepare` (checks, CDI
//!   spec, device-info file, checkpoint written and synced) and
//!   `unprepare`, without gRPC or the API server.
//!
//! Run with `cargo bench -p sriov-device-plugin --bench dra`.

mod common;

#[path = "../tests/common/apiserver.rs"]
mod apiserver;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::{allocated_claim, kubeconfig, start, Shared, NODE};
use kubelet_api::dra::v1;
use sriov_device_plugin::core::config::Config;
use sriov_device_plugin::core::view::PoolView;
use sriov_device_plugin::core::{health, inventory, pool};
use sriov_device_plugin::frontends::dra::claims::Allocated;
use sriov_device_plugin::frontends::dra::prepare::{Paths, Preparer};
use sriov_device_plugin::frontends::dra::slices::device_name;
use sriov_device_plugin::frontends::dra::DRIVER;

const CLAIMS: usize = 200;

/// (devices, slices, generations) the API server holds for the node.
fn published(shared: &Shared) -> (usize, usize, usize) {
    let server = shared.lock().expect("server");
    let slices: Vec<_> = server
        .slices
        .values()
        .filter(|s| s.spec.node_name.as_deref() == Some(NODE))
        .collect();
    let mut generations: Vec<i64> = slices.iter().map(|s| s.spec.pool.generation).collect();
    generations.dedup();
    let complete = slices
        .iter()
        .all(|s| s.spec.pool.resource_slice_count as usize == slices.len());
    let devices = slices
        .iter()
        .map(|s| s.spec.devices.as_ref().map_or(0, Vec::len))
        .sum();
    (
        devices,
        if complete { slices.len() } else { 0 },
        generations.len(),
    )
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1])
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (dir, config) = common::host_with_2048_vfs();
    // The pools as the daemon will make them: the devices claims name.
    let parsed = Config::load(&config, "intel.com").expect("config");
    let sysfs = sriovnet::Sysfs::new(dir.path());
    let (found, routes) = inventory::scan(&sysfs, &dir.path().join("no-proc-net")).expect("scan");
    let devices = inventory::candidates(&sysfs, &found, &routes);
    let views: Vec<PoolView> = pool::assign(&parsed.resources, &devices, &pool::Pins::new())
        .into_iter()
        .map(|mut p| {
            health::mark(&sysfs, &mut p.members);
            PoolView {
                config: p.config,
                members: p.members,
            }
        })
        .collect();
    let names: Vec<String> = views
        .iter()
        .flat_map(|v| &v.members)
        .map(|m| device_name(m.device.address))
        .collect();
    let shared = Shared::default();
    let address = start(shared.clone()).await;
    let kubeconfig = kubeconfig(dir.path(), address);
    let registry = dir.path().join("plugins_registry");
    let plugins = dir.path().join("plugins");
    let device_plugins = dir.path().join("device-plugins");
    for d in [&registry, &plugins, &device_plugins] {
        std::fs::create_dir(d).expect("dir");
    }

    let started = Instant::now();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("--config-file")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--device-plugin-dir")
        .arg(&device_plugins)
        .arg("--device-info-dir")
        .arg(dir.path().join("devinfo"))
        .args(["--default-api", "dra", "--node-name", NODE, "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--plugins-registry-dir")
        .arg(&registry)
        .arg("--dra-plugins-dir")
        .arg(&plugins)
        .arg("--cdi-dir")
        .arg(dir.path().join("cdi"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let published_after = loop {
        if published(&shared) == (2048, 16, 1) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not published");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).expect("status");
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .trim_start_matches("VmHWM:")
        .trim()
        .to_string();

    // Round trips, as kubelet makes them.
    let socket = plugins.join(DRIVER).join("dra.sock");
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let channel = kubelet_api::connect_unix(&socket).await.expect("dial");
    let mut driver = v1::dra_plugin_client::DraPluginClient::new(channel);
    let (mut prepares, mut unprepares) = (Vec::new(), Vec::new());
    for (n, device) in names.iter().take(CLAIMS).enumerate() {
        let (name, uid) = (format!("c{n}"), format!("00000000-0000-4000-8000-{n:012}"));
        let claim = allocated_claim("default", &name, &uid, DRIVER, NODE, &[("vf", device)]);
        shared
            .lock()
            .expect("server")
            .claims
            .insert(("default".into(), name.clone()), claim);
        let claim = v1::Claim {
            namespace: "default".into(),
            uid: uid.clone(),
            name,
        };
        let begun = Instant::now();
        let answer = driver
            .node_prepare_resources(v1::NodePrepareResourcesRequest {
                claims: vec![claim.clone()],
            })
            .await
            .expect("prepare")
            .into_inner();
        prepares.push(begun.elapsed());
        assert_eq!(answer.claims[&uid].error, "", "{device}");
        let begun = Instant::now();
        driver
            .node_unprepare_resources(v1::NodeUnprepareResourcesRequest {
                claims: vec![claim],
            })
            .await
            .expect("unprepare");
        unprepares.push(begun.elapsed());
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();

    // Our own work, in process, on the same tree and disk.
    let (_pools, receiver) = tokio::sync::watch::channel(Some(views));
    let work = dir.path().join("in-process");
    let mut preparer = Preparer::new(
        NODE.into(),
        Paths {
            cdi_dir: work.join("cdi"),
            device_info_dir: work.join("devinfo"),
            dev: "/dev".into(),
            checkpoint: work.join("checkpoint.json"),
        },
        receiver,
    )
    .expect("checkpoint");
    let (mut ours, mut ours_unprepare) = (Vec::new(), Vec::new());
    for (n, device) in names.iter().take(CLAIMS).enumerate() {
        let uid = format!("10000000-0000-4000-8000-{n:012}");
        let allocated = [Allocated {
            request: "vf".into(),
            pool: NODE.into(),
            device: device.clone(),
            admin_access: false,
        }];
        let begun = Instant::now();
        preparer
            .prepare(&uid, "default", "c", &allocated)
            .expect("prepare");
        ours.push(begun.elapsed());
        let begun = Instant::now();
        preparer.unprepare(&uid).expect("unprepare");
        ours_unprepare.push(begun.elapsed());
    }

    println!(
        "DRA, 8 PFs x 256 VFs: 2048 devices in 16 ResourceSlices {:.1} ms after start; peak RSS {peak}",
        published_after.as_secs_f64() * 1000.0
    );
    println!(
        "NodePrepareResources round trip ({CLAIMS} claims of 1 VF): {}",
        summary(prepares)
    );
    println!("NodeUnprepareResources round trip: {}", summary(unprepares));
    println!("prepare, our own work: {}", summary(ours));
    println!("unprepare, our own work: {}", summary(ours_unprepare));
}
