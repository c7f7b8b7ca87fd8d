//! The daemon's sockets called by grpcio (gRPC C-core, from PyPI), a client
//! that is not ours: it sends `:authority` as the socket path, percent-
//! encoded and without its leading slash, unless told otherwise. Every
//! socket the daemon serves must answer it, with grpcio's default
//! authority, the literal socket path (as kubelets before 1.26 send), and
//! `localhost` (as newer Go kubelets do).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use sriovnet::fake::{FakeSysfs, INTEL_82576};

/// One call with grpcio's client; the response's bytes in hex.
fn grpcio_call(socket: &Path, method: &str, authority: &str) -> Result<String, String> {
    let output = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpcio/call.py"))
        .arg(socket)
        .arg(method)
        .arg(authority)
        .output()
        .expect("python3");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

#[tokio::test]
async fn grpcio_clients_reach_every_socket() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    let registry = dir.path().join("plugins_registry");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::create_dir(&registry).unwrap();
    let dra_plugins = dir.path().join("plugins");
    // DRA on (its API server unreachable: slices are retried meanwhile).
    let _daemon = start_daemon_in(
        None,
        dir.path(),
        &plugins,
        &[
            "--plugins-registry-dir",
            registry.to_str().unwrap(),
            "--node-name",
            "worker-1",
            "--dra-plugins-dir",
            dra_plugins.to_str().unwrap(),
        ],
    );
    let pool = plugins.join("intel.com_igb.sock");
    let registration = registry.join("intel.com_igb-reg.sock");
    let driver = "sriovnetwork.k8snetworkplumbingwg.io";
    let dra = dra_plugins.join(driver).join("dra.sock");
    let dra_registration = registry.join(format!("{driver}-reg.sock"));
    for socket in [&pool, &registration, &dra, &dra_registration] {
        appears(socket).await;
    }
    // An empty request to Unprepare is answered with an empty message.
    for (socket, method, empty) in [
        (&pool, "/v1beta1.DevicePlugin/GetDevicePluginOptions", false),
        (
            &registration,
            "/pluginregistration.Registration/GetInfo",
            false,
        ),
        (
            &dra_registration,
            "/pluginregistration.Registration/GetInfo",
            false,
        ),
        (
            &dra,
            "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources",
            true,
        ),
        (
            &dra,
            "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources",
            true,
        ),
    ] {
        let path = socket.to_str().unwrap();
        for authority in ["default", path, "localhost"] {
            let answer = grpcio_call(socket, method, authority);
            assert!(
                answer.as_ref().is_ok_and(|hex| hex.is_empty() == empty),
                "{method} on {path} with authority {authority}: {answer:?}"
            );
        }
    }
}
