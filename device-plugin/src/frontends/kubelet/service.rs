//! The DevicePlugin service of one pool, as kubelet calls it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use kubelet_api::deviceplugin::v1beta1::{
    self as dp, device_plugin_server::DevicePlugin, AllocateRequest, AllocateResponse,
    DevicePluginOptions, Empty, ListAndWatchResponse, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
};
use tokio::sync::watch;
use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::core::allocation;
use crate::core::pool::Member;
use crate::core::view::PoolView;
use crate::frontends::kubelet::allocate;
use crate::frontends::metrics::PoolCounters;
use crate::frontends::{cdi, device_info};

/// Where device nodes are looked up.
pub const DEV: &str = "/dev";

/// What kubelet sees of a pool; every ListAndWatch stream sends a fresh
/// list whenever the view changes.
pub struct PoolService {
    view: watch::Receiver<Arc<PoolView>>,
    /// Where device nodes are looked up (`/dev`).
    dev: PathBuf,
    device_info_dir: PathBuf,
    counters: Arc<PoolCounters>,
    /// Allocate names devices for CDI instead of listing device nodes.
    cdi: bool,
}

impl PoolService {
    pub fn new(
        view: watch::Receiver<Arc<PoolView>>,
        device_info_dir: PathBuf,
        counters: Arc<PoolCounters>,
        cdi: bool,
    ) -> Self {
        PoolService {
            view,
            dev: PathBuf::from(DEV),
            device_info_dir,
            counters,
            cdi,
        }
    }

    fn device_list(view: &PoolView) -> ListAndWatchResponse {
        let devices = view
            .members
            .iter()
            .map(|m| dp::Device {
                id: m.device.address.to_string(),
                health: if m.healthy {
                    dp::HEALTHY
                } else {
                    dp::UNHEALTHY
                }
                .to_string(),
                topology: match (view.config.exclude_topology, m.device.numa_node) {
                    (false, Some(node)) => Some(dp::TopologyInfo {
                        nodes: vec![dp::NumaNode { id: node.into() }],
                    }),
                    _ => None,
                },
            })
            .collect();
        ListAndWatchResponse { devices }
    }
}

fn by_id(view: &PoolView) -> HashMap<String, &Member> {
    view.members
        .iter()
        .map(|m| (m.device.address.to_string(), m))
        .collect()
}

type DeviceLists = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PoolService {
    type ListAndWatchStream = DeviceLists;

    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    async fn list_and_watch(&self, _: Request<Empty>) -> Result<Response<DeviceLists>, Status> {
        // The view also changes when only what kubelet does not see changes
        // (a VF's netdev moving into a pod): send a list only when it is
        // new to this stream.
        let mut last = None;
        let lists = WatchStream::new(self.view.clone()).filter_map(move |view: Arc<PoolView>| {
            let list = PoolService::device_list(&view);
            (last.as_ref() != Some(&list)).then(|| {
                last = Some(list.clone());
                Ok(list)
            })
        });
        Ok(Response::new(Box::pin(lists)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let view = self.view.borrow().clone();
        let members = by_id(&view);
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| dp::ContainerPreferredAllocationResponse {
                device_i_ds: allocation::preferred(
                    &r.available_device_i_ds,
                    &r.must_include_device_i_ds,
                    r.allocation_size.max(0) as usize,
                    &members,
                    view.config.policy,
                ),
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        PoolCounters::count(&self.counters.allocate_calls);
        let (response, ids) = match self.allocate_devices(request.into_inner()) {
            Ok(allocated) => allocated,
            Err(status) => {
                PoolCounters::count(&self.counters.errors);
                return Err(status);
            }
        };
        if let Ok(mut allocated) = self.counters.allocated.lock() {
            allocated.extend(ids);
        }
        Ok(Response::new(response))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

impl PoolService {
    /// The response, and the devices it hands out.
    fn allocate_devices(
        &self,
        request: AllocateRequest,
    ) -> Result<(AllocateResponse, Vec<String>), Status> {
        let view = self.view.borrow().clone();
        let members = by_id(&view);
        let config = &view.config;
        let resource = config.resource_name();
        let mut container_responses = Vec::new();
        let mut ids = Vec::new();
        for container in request.container_requests {
            let mut chosen = Vec::new();
            for id in &container.devices_ids {
                let member = members.get(id).ok_or_else(|| {
                    Status::invalid_argument(format!("{resource}: unknown device {id}"))
                })?;
                if !member.healthy {
                    return Err(Status::failed_precondition(format!(
                        "{resource}: device {id} is unhealthy"
                    )));
                }
                chosen.push(*member);
            }
            ids.extend(container.devices_ids);
            device_info::write(&self.device_info_dir, &resource, &chosen);
            container_responses.push(allocate::container_response(
                &resource,
                &chosen,
                &config.additional_info,
                &self.dev,
                self.cdi.then(|| cdi::kind(config)).as_deref(),
            ));
        }
        Ok((
            AllocateResponse {
                container_responses,
            },
            ids,
        ))
    }
}
