//! Registration through kubelet's plugin watcher (whenever its directory
//! exists, or with `--plugin-watcher`): each pool serves a registration socket in kubelet's
//! plugins_registry directory; the test plays kubelet's plugin watcher
//! (GetInfo, dial the endpoint, NotifyRegistrationStatus) over the real
//! protocol. No `Register` call reaches kubelet.sock.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use kubelet_api::deviceplugin::v1beta1::{self as dp, device_plugin_client::DevicePluginClient};
use kubelet_api::pluginregistration::v1::{
    registration_client::RegistrationClient, InfoRequest, RegistrationStatus,
};
use sriovnet::fake::{FakeSysfs, INTEL_82576};

#[tokio::test]
async fn registers_through_the_plugin_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    let registry = dir.path().join("plugins_registry");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::create_dir(&registry).unwrap();
    let mut registrations = start_kubelet(&plugins);
    // No --plugin-watcher: as upstream, the watcher is used because its
    // directory exists.
    let daemon = start_daemon_in(
        None,
        dir.path(),
        &plugins,
        &["--plugins-registry-dir", registry.to_str().unwrap()],
    );

    let socket = registry.join("intel.com_igb-reg.sock");
    appears(&socket).await;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut watcher = RegistrationClient::new(connect(socket.clone()).await);
    let info = watcher.get_info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.r#type, "DevicePlugin");
    assert_eq!(info.name, "intel.com/igb");
    assert_eq!(info.supported_versions, ["v1beta1"]);
    let endpoint = plugins.join("intel.com_igb.sock");
    assert_eq!(
        Path::new(&info.endpoint),
        endpoint,
        "kubelet dials the endpoint as given: an absolute path"
    );

    let mut pool = DevicePluginClient::new(connect(endpoint).await);
    let mut lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lists.message().await.unwrap().unwrap().devices.len(), 3);
    watcher
        .notify_registration_status(RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        })
        .await
        .unwrap();
    assert!(
        registrations.try_recv().is_err(),
        "nothing registers on kubelet.sock"
    );
    assert!(
        !registry.join("example.org_e810-reg.sock").exists(),
        "a pool without devices does not ask to be registered"
    );

    drop(daemon);
    assert!(!socket.exists(), "the registration socket goes on SIGTERM");
}
