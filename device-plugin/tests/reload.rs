//! A config change on disk applied by the running daemon: pools added,
//! removed and changed, and a device a pod holds never moving to another
//! pool. Kubelet's pod resources API is a fake serving the real protocol.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kubelet_api::deviceplugin::v1beta1::{self as dp, device_plugin_client::DevicePluginClient};
use kubelet_api::podresources::v1::{
    self as pr, pod_resources_lister_server::PodResourcesLister,
    pod_resources_lister_server::PodResourcesListerServer,
};
use sriovnet::fake::{FakeSysfs, INTEL_82576, INTEL_E810};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// Kubelet's pod resources API: one pod holding these devices, by resource.
#[derive(Clone, Default)]
struct FakePodResources(Arc<Mutex<BTreeMap<String, Vec<String>>>>);

#[tonic::async_trait]
impl PodResourcesLister for FakePodResources {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<pr::ListPodResourcesResponse>, Status> {
        let devices = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(resource, ids)| pr::ContainerDevices {
                resource_name: resource.clone(),
                device_ids: ids.clone(),
                topology: None,
            })
            .collect();
        Ok(Response::new(pr::ListPodResourcesResponse {
            pod_resources: vec![pr::PodResources {
                name: "dpdk".into(),
                namespace: "default".into(),
                containers: vec![pr::ContainerResources {
                    name: "app".into(),
                    devices,
                    ..Default::default()
                }],
            }],
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<pr::AllocatableResourcesRequest>,
    ) -> Result<Response<pr::AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }

    async fn get(
        &self,
        _: Request<pr::GetPodResourcesRequest>,
    ) -> Result<Response<pr::GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }
}

fn serve_pod_resources(socket: &Path) -> FakePodResources {
    let fake = FakePodResources::default();
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(fake.clone()))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    fake
}

/// A ConfigMap volume's update: the new files in a fresh directory, then
/// `..data` swapped to it by rename. `config.json` links through `..data`.
fn configmap_update(dir: &Path, version: &str, text: &str) {
    let data = format!("..{version}");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("config.json"), text).unwrap();
    std::os::unix::fs::symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let link = dir.join("config.json");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/config.json", link).unwrap();
    }
}

/// The next device list of a ListAndWatch stream: (id, has topology).
async fn next_list(lists: &mut tonic::Streaming<dp::ListAndWatchResponse>) -> Vec<(String, bool)> {
    tokio::time::timeout(Duration::from_secs(10), lists.message())
        .await
        .expect("a fresh list")
        .unwrap()
        .expect("the stream goes on")
        .devices
        .into_iter()
        .map(|d| (d.id, d.topology.is_some()))
        .collect()
}

fn ids(list: &[(String, bool)]) -> Vec<&str> {
    list.iter().map(|(id, _)| id.as_str()).collect()
}

async fn watch(
    plugins: &Path,
    endpoint: &str,
) -> (
    DevicePluginClient<tonic::transport::Channel>,
    tonic::Streaming<dp::ListAndWatchResponse>,
) {
    let mut pool = DevicePluginClient::new(connect(plugins.join(endpoint)).await);
    let lists = pool
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    (pool, lists)
}

fn allocate(id: &str) -> dp::AllocateRequest {
    dp::AllocateRequest {
        container_requests: vec![dp::ContainerAllocateRequest {
            devices_ids: vec![id.to_string()],
        }],
    }
}

/// A tree with an 82576 PF enp1s0 (VFs 0000:01:10.0, .2, .4, .6) and an
/// E810 PF ens2f0 (2 VFs).
fn host() -> (tempfile::TempDir, FakeSysfs, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 4, 0)
        .unwrap();
    fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 2, 1)
        .unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    (dir, fake, plugins)
}

const IGB: [&str; 4] = [
    "0000:01:10.0",
    "0000:01:10.2",
    "0000:01:10.4",
    "0000:01:10.6",
];

#[tokio::test]
async fn a_configmap_update_adds_removes_and_changes_pools() {
    let (dir, _fake, plugins) = host();
    let configmap = dir.path().join("pcidp");
    std::fs::create_dir(&configmap).unwrap();
    configmap_update(
        &configmap,
        "v1",
        r#"{"resourceList":[
            {"resourceName":"a","selectors":{"drivers":["igbvf"]}},
            {"resourceName":"gone","selectors":{"drivers":["iavf"]}}]}"#,
    );
    let pod_resources = dir.path().join("pod-resources.sock");
    let pods = serve_pod_resources(&pod_resources);
    let mut registrations = start_kubelet(&plugins);
    let config_file = configmap.join("config.json");
    let _daemon = spawn_daemon(
        None,
        dir.path(),
        &plugins,
        &[
            "--config-file",
            config_file.to_str().unwrap(),
            "--pod-resources-socket",
            pod_resources.to_str().unwrap(),
        ],
    );
    registered(&mut registrations, 2).await;
    let (mut a, mut a_lists) = watch(&plugins, "intel.com_a.sock").await;
    assert_eq!(ids(&next_list(&mut a_lists).await), IGB);
    let (_gone, mut gone_lists) = watch(&plugins, "intel.com_gone.sock").await;
    assert_eq!(next_list(&mut gone_lists).await.len(), 2);

    // A pod gets VF 1 from pool a.
    a.allocate(allocate(IGB[1])).await.unwrap();
    pods.0
        .lock()
        .unwrap()
        .insert("intel.com/a".into(), vec![IGB[1].into()]);

    // New config: pool b, first, takes VFs 0-1; a stops reporting
    // topology; gone is gone.
    configmap_update(
        &configmap,
        "v2",
        r#"{"resourceList":[
            {"resourceName":"b","selectors":{"pfNames":["enp1s0#0-1"]}},
            {"resourceName":"a","excludeTopology":true,"selectors":{"drivers":["igbvf"]}}]}"#,
    );
    let b = registered(&mut registrations, 1).await.remove(0);
    assert_eq!(b.resource_name, "intel.com/b");
    let (_b, mut b_lists) = watch(&plugins, &b.endpoint).await;
    assert_eq!(
        ids(&next_list(&mut b_lists).await),
        [IGB[0]],
        "VF 1 is held by a pod of pool a: it stays there"
    );
    let a_now = next_list(&mut a_lists).await;
    assert_eq!(ids(&a_now), [IGB[1], IGB[2], IGB[3]]);
    assert!(a_now.iter().all(|(_, topology)| !topology));
    assert!(
        next_list(&mut gone_lists).await.is_empty(),
        "a removed pool tells kubelet it has nothing"
    );
    assert!(!plugins.join("intel.com_gone.sock").exists());

    // The pod ends; the next change puts VF 1 where the config says.
    pods.0.lock().unwrap().clear();
    configmap_update(
        &configmap,
        "v3",
        r#"{"resourceList":[
            {"resourceName":"b","selectors":{"pfNames":["enp1s0#0-1"]}},
            {"resourceName":"a","excludeTopology":true,"selectors":{"drivers":["igbvf"]},
             "additionalInfo":{"*":{"site":"lab"}}}]}"#,
    );
    assert_eq!(ids(&next_list(&mut b_lists).await), [IGB[0], IGB[1]]);
    assert_eq!(ids(&next_list(&mut a_lists).await), [IGB[2], IGB[3]]);
}

/// Without kubelet's pod resources API, the devices the daemon handed out
/// since start are the ones held. A config that cannot be read changes
/// nothing; the next good one applies.
#[tokio::test]
async fn without_pod_resources_handed_out_devices_stay() {
    let (dir, _fake, plugins) = host();
    let mut registrations = start_kubelet(&plugins);
    let _daemon = start_daemon_with(
        None,
        dir.path(),
        &plugins,
        r#"{"resourceList":[{"resourceName":"a","selectors":{"drivers":["igbvf"]}}]}"#,
        &["--pod-resources-socket", "/nonexistent/kubelet.sock"],
    );
    registered(&mut registrations, 1).await;
    let (mut a, mut a_lists) = watch(&plugins, "intel.com_a.sock").await;
    assert_eq!(ids(&next_list(&mut a_lists).await), IGB);
    a.allocate(allocate(IGB[1])).await.unwrap();

    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"resourceList":[{"resourceName":"bad name"}]}"#).unwrap();
    std::fs::write(
        &config,
        r#"{"resourceList":[
            {"resourceName":"b","selectors":{"pfNames":["enp1s0#0-1"]}},
            {"resourceName":"a","selectors":{"drivers":["igbvf"]}}]}"#,
    )
    .unwrap();
    let b = registered(&mut registrations, 1).await.remove(0);
    let (_b, mut b_lists) = watch(&plugins, &b.endpoint).await;
    assert_eq!(ids(&next_list(&mut b_lists).await), [IGB[0]]);
    assert_eq!(
        ids(&next_list(&mut a_lists).await),
        [IGB[1], IGB[2], IGB[3]],
        "the first list after the bad config is the good one's"
    );
}
