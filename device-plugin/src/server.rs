//! The DevicePlugin service of one pool, as kubelet calls it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;

use kubelet_api::deviceplugin::v1beta1::{
    self as dp, device_plugin_server::DevicePlugin, AllocateRequest, AllocateResponse,
    DevicePluginOptions, Empty, ListAndWatchResponse, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
};
use tokio::sync::watch;
use tokio_stream::{wrappers::WatchStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::health::HEALTHY;
use crate::pool::{Member, Pool};
use crate::{allocate, preferred};

/// What kubelet sees of a pool: its devices and their health, sent again on
/// every change.
pub struct PoolService {
    pool: Pool,
    health: watch::Receiver<Vec<&'static str>>,
    /// Where device nodes are looked up (`/dev`).
    pub dev: PathBuf,
}

impl PoolService {
    pub fn new(pool: Pool, health: watch::Receiver<Vec<&'static str>>) -> Self {
        PoolService {
            pool,
            health,
            dev: PathBuf::from("/dev"),
        }
    }

    fn device_list(pool: &Pool, health: &[&'static str]) -> ListAndWatchResponse {
        let devices = pool
            .members
            .iter()
            .zip(health)
            .map(|(m, health)| dp::Device {
                id: m.device.address.to_string(),
                health: health.to_string(),
                topology: match (pool.config.exclude_topology, m.device.numa_node) {
                    (false, Some(node)) => Some(dp::TopologyInfo {
                        nodes: vec![dp::NumaNode { id: node.into() }],
                    }),
                    _ => None,
                },
            })
            .collect();
        ListAndWatchResponse { devices }
    }

    fn members(&self) -> HashMap<String, &Member> {
        self.pool
            .members
            .iter()
            .map(|m| (m.device.address.to_string(), m))
            .collect()
    }
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
        let pool = self.pool.clone();
        let lists = WatchStream::new(self.health.clone())
            .map(move |health: Vec<&'static str>| Ok(PoolService::device_list(&pool, &health)));
        Ok(Response::new(Box::pin(lists)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let members = self.members();
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| dp::ContainerPreferredAllocationResponse {
                device_i_ds: preferred::preferred(
                    &r.available_device_i_ds,
                    &r.must_include_device_i_ds,
                    r.allocation_size.max(0) as usize,
                    &members,
                    self.pool.config.policy,
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
        let members = self.members();
        let health = self.health.borrow().clone();
        let healthy: HashMap<String, bool> = self
            .pool
            .members
            .iter()
            .zip(&health)
            .map(|(m, h)| (m.device.address.to_string(), *h == HEALTHY))
            .collect();
        let resource = self.pool.config.resource_name();
        let mut container_responses = Vec::new();
        for container in request.into_inner().container_requests {
            let mut chosen = Vec::new();
            for id in &container.devices_ids {
                let member = members.get(id).ok_or_else(|| {
                    Status::invalid_argument(format!("{resource}: unknown device {id}"))
                })?;
                if !healthy.get(id).copied().unwrap_or(false) {
                    return Err(Status::failed_precondition(format!(
                        "{resource}: device {id} is unhealthy"
                    )));
                }
                chosen.push(*member);
            }
            container_responses.push(allocate::container_response(
                &resource,
                &chosen,
                &self.pool.config.additional_info,
                &self.dev,
            ));
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
