//! The generated servers and clients over a unix socket, as kubelet and a
//! plugin use them. Calls are made on upstream's method paths spelled out
//! here, so a wrong package or service name fails.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use kubelet_api::deviceplugin::v1beta1 as dp;
use kubelet_api::pluginregistration::v1 as reg;
use kubelet_api::podresources::v1 as pr;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

async fn connect(socket: PathBuf) -> Channel {
    kubelet_api::connect_unix(socket).await.unwrap()
}

/// Calls `path` with `request` through a generic client, as another
/// implementation of the protocol would.
async fn call<Req, Resp>(channel: Channel, path: &'static str, request: Req) -> Result<Resp, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(Request::new(request), path.parse().unwrap(), codec)
        .await
        .map(Response::into_inner)
}

fn serve(socket: &Path, router: tonic::transport::server::Router) {
    let incoming = UnixListenerStream::new(UnixListener::bind(socket).unwrap());
    tokio::spawn(router.serve_with_incoming(incoming));
}

struct Kubelet(tokio::sync::mpsc::Sender<dp::RegisterRequest>);

#[tonic::async_trait]
impl dp::registration_server::Registration for Kubelet {
    async fn register(
        &self,
        request: Request<dp::RegisterRequest>,
    ) -> Result<Response<dp::Empty>, Status> {
        self.0.send(request.into_inner()).await.unwrap();
        Ok(Response::new(dp::Empty {}))
    }
}

struct Plugin;

type DeviceStream = Pin<Box<dyn Stream<Item = Result<dp::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl dp::device_plugin_server::DevicePlugin for Plugin {
    type ListAndWatchStream = DeviceStream;

    async fn get_device_plugin_options(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<dp::DevicePluginOptions>, Status> {
        Ok(Response::new(dp::DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    async fn list_and_watch(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<DeviceStream>, Status> {
        let lists = ["Healthy", "Unhealthy"].map(|health| {
            Ok(dp::ListAndWatchResponse {
                devices: vec![dp::Device {
                    id: "0000:01:10.0".into(),
                    health: health.into(),
                    topology: None,
                }],
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(lists))))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<dp::PreferredAllocationRequest>,
    ) -> Result<Response<dp::PreferredAllocationResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| dp::ContainerPreferredAllocationResponse {
                device_i_ds: r
                    .available_device_i_ds
                    .into_iter()
                    .take(r.allocation_size as usize)
                    .collect(),
            })
            .collect();
        Ok(Response::new(dp::PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<dp::AllocateRequest>,
    ) -> Result<Response<dp::AllocateResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| dp::ContainerAllocateResponse {
                envs: [(
                    "PCIDEVICE_INTEL_COM_SRIOV".to_string(),
                    r.devices_ids.join(","),
                )]
                .into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(dp::AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<dp::PreStartContainerRequest>,
    ) -> Result<Response<dp::PreStartContainerResponse>, Status> {
        Ok(Response::new(dp::PreStartContainerResponse {}))
    }
}

#[tokio::test]
async fn device_plugin_registers_and_kubelet_calls_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (kubelet_socket, plugin_socket) = (
        dir.path().join("kubelet.sock"),
        dir.path().join("sriov.sock"),
    );
    let (registered, mut registrations) = tokio::sync::mpsc::channel(1);
    serve(
        &kubelet_socket,
        Server::builder().add_service(dp::registration_server::RegistrationServer::new(Kubelet(
            registered,
        ))),
    );
    serve(
        &plugin_socket,
        Server::builder().add_service(dp::device_plugin_server::DevicePluginServer::new(Plugin)),
    );

    // The plugin registers through the generated client...
    let mut client =
        dp::registration_client::RegistrationClient::new(connect(kubelet_socket.clone()).await);
    let request = dp::RegisterRequest {
        version: dp::VERSION.into(),
        endpoint: "sriov.sock".into(),
        resource_name: "intel.com/sriov".into(),
        options: None,
    };
    client.register(request.clone()).await.unwrap();
    assert_eq!(registrations.recv().await.unwrap(), request);
    // ...and the same service answers upstream's path.
    let _: dp::Empty = call(
        connect(kubelet_socket).await,
        "/v1beta1.Registration/Register",
        request,
    )
    .await
    .unwrap();

    // Kubelet dials the plugin back.
    let channel = connect(plugin_socket).await;
    let mut plugin = dp::device_plugin_client::DevicePluginClient::new(channel.clone());
    let lists: Vec<_> = plugin
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner()
        .map(|list| list.unwrap().devices[0].health.clone())
        .collect()
        .await;
    assert_eq!(lists, [dp::HEALTHY, dp::UNHEALTHY]);

    let options: dp::DevicePluginOptions = call(
        channel.clone(),
        "/v1beta1.DevicePlugin/GetDevicePluginOptions",
        dp::Empty {},
    )
    .await
    .unwrap();
    assert!(options.get_preferred_allocation_available);

    let allocated: dp::AllocateResponse = call(
        channel.clone(),
        "/v1beta1.DevicePlugin/Allocate",
        dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.0".into(), "0000:01:10.2".into()],
            }],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        allocated.container_responses[0].envs["PCIDEVICE_INTEL_COM_SRIOV"],
        "0000:01:10.0,0000:01:10.2"
    );

    let preferred: dp::PreferredAllocationResponse = call(
        channel.clone(),
        "/v1beta1.DevicePlugin/GetPreferredAllocation",
        dp::PreferredAllocationRequest {
            container_requests: vec![dp::ContainerPreferredAllocationRequest {
                available_device_i_ds: vec!["a".into(), "b".into(), "c".into()],
                must_include_device_i_ds: vec![],
                allocation_size: 2,
            }],
        },
    )
    .await
    .unwrap();
    assert_eq!(preferred.container_responses[0].device_i_ds, ["a", "b"]);

    let _: dp::PreStartContainerResponse = call(
        channel.clone(),
        "/v1beta1.DevicePlugin/PreStartContainer",
        dp::PreStartContainerRequest::default(),
    )
    .await
    .unwrap();

    let status = call::<_, dp::Empty>(channel, "/v1beta1.DevicePlugin/NoSuchMethod", dp::Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

struct Watcher;

#[tonic::async_trait]
impl reg::registration_server::Registration for Watcher {
    async fn get_info(
        &self,
        _: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        Ok(Response::new(reg::PluginInfo {
            r#type: reg::DEVICE_PLUGIN.into(),
            name: "intel.com/sriov".into(),
            endpoint: "/var/lib/kubelet/device-plugins/sriov.sock".into(),
            supported_versions: vec![dp::VERSION.into()],
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        match request.into_inner().plugin_registered {
            true => Ok(Response::new(reg::RegistrationStatusResponse {})),
            false => Err(Status::failed_precondition("not registered")),
        }
    }
}

#[tokio::test]
async fn plugin_watcher_registration() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sriov-reg.sock");
    serve(
        &socket,
        Server::builder().add_service(reg::registration_server::RegistrationServer::new(Watcher)),
    );
    let channel = connect(socket).await;

    let info: reg::PluginInfo = call(
        channel.clone(),
        "/pluginregistration.Registration/GetInfo",
        reg::InfoRequest {},
    )
    .await
    .unwrap();
    assert_eq!(
        (info.r#type.as_str(), info.supported_versions[0].as_str()),
        ("DevicePlugin", "v1beta1")
    );

    let mut client = reg::registration_client::RegistrationClient::new(channel.clone());
    let refused = client
        .notify_registration_status(reg::RegistrationStatus {
            plugin_registered: false,
            error: "resource taken".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let _: reg::RegistrationStatusResponse = call(
        channel,
        "/pluginregistration.Registration/NotifyRegistrationStatus",
        reg::RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        },
    )
    .await
    .unwrap();
}

struct PodResources;

#[tonic::async_trait]
impl pr::pod_resources_lister_server::PodResourcesLister for PodResources {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<pr::ListPodResourcesResponse>, Status> {
        Ok(Response::new(pr::ListPodResourcesResponse {
            pod_resources: vec![pr::PodResources {
                name: "pod".into(),
                namespace: "default".into(),
                containers: vec![],
            }],
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<pr::AllocatableResourcesRequest>,
    ) -> Result<Response<pr::AllocatableResourcesResponse>, Status> {
        Ok(Response::new(pr::AllocatableResourcesResponse {
            cpu_ids: vec![0, 1],
            ..Default::default()
        }))
    }

    async fn get(
        &self,
        request: Request<pr::GetPodResourcesRequest>,
    ) -> Result<Response<pr::GetPodResourcesResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pr::GetPodResourcesResponse {
            pod_resources: Some(pr::PodResources {
                name: request.pod_name,
                namespace: request.pod_namespace,
                containers: vec![],
            }),
        }))
    }
}

#[tokio::test]
async fn pod_resources_lister() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    serve(
        &socket,
        Server::builder().add_service(
            pr::pod_resources_lister_server::PodResourcesListerServer::new(PodResources),
        ),
    );
    let channel = connect(socket).await;
    let listed: pr::ListPodResourcesResponse = call(
        channel.clone(),
        "/v1.PodResourcesLister/List",
        pr::ListPodResourcesRequest {},
    )
    .await
    .unwrap();
    assert_eq!(listed.pod_resources[0].name, "pod");
    let allocatable: pr::AllocatableResourcesResponse = call(
        channel.clone(),
        "/v1.PodResourcesLister/GetAllocatableResources",
        pr::AllocatableResourcesRequest {},
    )
    .await
    .unwrap();
    assert_eq!(allocatable.cpu_ids, [0, 1]);
    let mut client = pr::pod_resources_lister_client::PodResourcesListerClient::new(channel);
    let got = client
        .get(pr::GetPodResourcesRequest {
            pod_name: "p".into(),
            pod_namespace: "n".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.pod_resources.unwrap().namespace, "n");
}
