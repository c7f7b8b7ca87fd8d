//! Kubelet's side of DRA: the `DRAPlugin` service (`v1`, and `v1beta1` for
//! 1.32 and 1.33 kubelets, the same messages in another package) and the
//! optional `DRAResourceHealth` stream, served together on the driver's
//! socket.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::Client;
use kubelet_api::dra::{v1, v1beta1};
use kubelet_api::drahealth::v1alpha1 as health;
use prost::Message;
use tokio::sync::{watch, OnceCell};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::checkpoint::PreparedClaim;
use super::prepare::{check_uid, Preparer};
use super::slices::device_name;
use super::{claims, client, DRIVER};
use crate::core::config::valid_prefix;
use crate::core::view::PoolView;

/// What kubelet calls; cheap to clone (every clone shares the state).
#[derive(Clone)]
pub struct DraService {
    node: String,
    kubeconfig: Option<PathBuf>,
    /// Made at the first claim, and again after a failure.
    client: Arc<OnceCell<Client>>,
    preparer: Arc<Mutex<Preparer>>,
    pools: watch::Receiver<Option<Vec<PoolView>>>,
    /// A turn per claim being prepared or unprepared: an Unprepare that
    /// overtook a Prepare waiting on the API server would otherwise be
    /// undone by it, leaving the claim's devices held for good.
    turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl DraService {
    pub fn new(
        node: String,
        kubeconfig: Option<PathBuf>,
        preparer: Preparer,
        pools: watch::Receiver<Option<Vec<PoolView>>>,
    ) -> Self {
        DraService {
            node,
            kubeconfig,
            client: Arc::default(),
            preparer: Arc::new(Mutex::new(preparer)),
            pools,
            turns: Arc::default(),
        }
    }

    fn preparer(&self) -> std::sync::MutexGuard<'_, Preparer> {
        // A panic while preparing is a bug; the state it left is still the
        // best there is.
        self.preparer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claim's turn: calls for one claim run one after the other.
    fn turn(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        // Turns nobody waits for or holds go.
        turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        turns.entry(uid.to_string()).or_default().clone()
    }

    async fn prepare(&self, claim: &v1::Claim) -> v1::NodePrepareResourceResponse {
        let turn = self.turn(&claim.uid);
        let _turn = turn.lock().await;
        let done = self.preparer().already(&claim.uid);
        let prepared = match done {
            Some(claim) => Ok(claim),
            None => self.prepare_anew(claim).await,
        };
        match prepared {
            Ok(prepared) => {
                info!(
                    "prepared claim {}/{} ({})",
                    claim.namespace, claim.name, claim.uid
                );
                response(&prepared)
            }
            Err(error) => {
                warn!(
                    "claim {}/{} ({}): {error}",
                    claim.namespace, claim.name, claim.uid
                );
                v1::NodePrepareResourceResponse {
                    devices: Vec::new(),
                    error,
                }
            }
        }
    }

    /// Reads the claim's allocation, then prepares it.
    async fn prepare_anew(&self, claim: &v1::Claim) -> Result<PreparedClaim, String> {
        // The uid names files, namespace and name a URL: checked first.
        check_uid(&claim.uid)?;
        for (what, value) in [("namespace", &claim.namespace), ("name", &claim.name)] {
            if !valid_prefix(value) {
                return Err(format!(
                    "claim {what} \"{}\" is not a Kubernetes object name",
                    value.escape_default()
                ));
            }
        }
        let allocated = self.allocated(claim).await?;
        self.preparer()
            .prepare(&claim.uid, &claim.namespace, &claim.name, &allocated)
    }

    /// The claim's devices from our driver, from the API server.
    async fn allocated(&self, claim: &v1::Claim) -> Result<Vec<claims::Allocated>, String> {
        let client = self
            .client
            .get_or_try_init(|| client::connect(self.kubeconfig.as_deref()))
            .await?;
        let read = claims::allocated(client, DRIVER, &claim.namespace, &claim.name, &claim.uid);
        match tokio::time::timeout(client::TIMEOUT, read).await {
            Ok(allocated) => allocated.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "read ResourceClaim {}/{}: no answer within {} s",
                claim.namespace,
                claim.name,
                client::TIMEOUT.as_secs()
            )),
        }
    }

    async fn prepare_all(
        &self,
        request: v1::NodePrepareResourcesRequest,
    ) -> v1::NodePrepareResourcesResponse {
        let mut claims = HashMap::new();
        for claim in &request.claims {
            claims.insert(claim.uid.clone(), self.prepare(claim).await);
        }
        v1::NodePrepareResourcesResponse { claims }
    }

    async fn unprepare_all(
        &self,
        request: v1::NodeUnprepareResourcesRequest,
    ) -> v1::NodeUnprepareResourcesResponse {
        let mut claims = HashMap::new();
        for claim in request.claims {
            let turn = self.turn(&claim.uid);
            let _turn = turn.lock().await;
            let unprepared = self.preparer().unprepare(&claim.uid);
            let error = match unprepared {
                Ok(()) => {
                    info!(
                        "unprepared claim {}/{} ({})",
                        claim.namespace, claim.name, claim.uid
                    );
                    String::new()
                }
                Err(e) => {
                    warn!("unprepare claim {}: {e}", claim.uid);
                    e
                }
            };
            claims.insert(claim.uid, v1::NodeUnprepareResourceResponse { error });
        }
        v1::NodeUnprepareResourcesResponse { claims }
    }
}

fn response(prepared: &PreparedClaim) -> v1::NodePrepareResourceResponse {
    v1::NodePrepareResourceResponse {
        devices: prepared
            .devices
            .iter()
            .map(|d| v1::Device {
                request_names: d.requests.clone(),
                pool_name: d.pool.clone(),
                device_name: d.device.clone(),
                cdi_device_ids: vec![d.cdi_device_id.clone()],
            })
            .collect(),
        error: String::new(),
    }
}

#[tonic::async_trait]
impl v1::dra_plugin_server::DraPlugin for DraService {
    async fn node_prepare_resources(
        &self,
        request: Request<v1::NodePrepareResourcesRequest>,
    ) -> Result<Response<v1::NodePrepareResourcesResponse>, Status> {
        Ok(Response::new(self.prepare_all(request.into_inner()).await))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<v1::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<v1::NodeUnprepareResourcesResponse>, Status> {
        Ok(Response::new(
            self.unprepare_all(request.into_inner()).await,
        ))
    }
}

/// A message of one package as the same message of the other: their
/// fields and numbers are the same, so the bytes are.
fn convert<A: Message, B: Message + Default>(message: &A) -> Result<B, Status> {
    B::decode(message.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(format!("v1beta1 message: {e}")))
}

#[tonic::async_trait]
impl v1beta1::dra_plugin_server::DraPlugin for DraService {
    async fn node_prepare_resources(
        &self,
        request: Request<v1beta1::NodePrepareResourcesRequest>,
    ) -> Result<Response<v1beta1::NodePrepareResourcesResponse>, Status> {
        let request = convert(request.get_ref())?;
        Ok(Response::new(convert(&self.prepare_all(request).await)?))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<v1beta1::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<v1beta1::NodeUnprepareResourcesResponse>, Status> {
        let request = convert(request.get_ref())?;
        Ok(Response::new(convert(&self.unprepare_all(request).await)?))
    }
}

type HealthStream =
    Pin<Box<dyn Stream<Item = Result<health::NodeWatchResourcesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health::dra_resource_health_server::DraResourceHealth for DraService {
    type NodeWatchResourcesStream = HealthStream;

    /// Every DRA device's health: all at once, then all again whenever any
    /// device's health, or the set of devices, changes, and every
    /// [`HEALTH_REFRESH`] in between, so that kubelet, which takes a report
    /// it has not heard again for a while as stale, keeps it current.
    async fn node_watch_resources(
        &self,
        _: Request<health::NodeWatchResourcesRequest>,
    ) -> Result<Response<HealthStream>, Status> {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let (node, mut pools) = (self.node.clone(), self.pools.clone());
        tokio::spawn(async move {
            loop {
                let devices = pools.borrow_and_update().as_deref().map(health_of);
                let Some(devices) = devices else {
                    // Not routed yet, or shutting down: no news to give
                    // (an empty report would say every device is gone).
                    if pools.changed().await.is_err() {
                        return;
                    }
                    continue;
                };
                if sender.send(Ok(report(&node, &devices))).await.is_err() {
                    return; // kubelet hung up
                }
                tokio::select! {
                    _ = tokio::time::sleep(HEALTH_REFRESH) => {}
                    changed = wait_for_change(&mut pools, &devices) => if !changed { return },
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// How often the health stream repeats itself when nothing changes.
pub const HEALTH_REFRESH: Duration = Duration::from_secs(10);

/// Waits until some device's health, or the set of devices, differs from
/// what was `sent` (a change elsewhere in the pools is not one); false when
/// the daemon is shutting down.
async fn wait_for_change(
    pools: &mut watch::Receiver<Option<Vec<PoolView>>>,
    sent: &[(String, bool)],
) -> bool {
    loop {
        if pools.changed().await.is_err() {
            return false;
        }
        match pools.borrow().as_deref().map(health_of) {
            Some(now) if now == sent => {}
            _ => return true,
        }
    }
}

/// Every DRA device's name and health, sorted.
fn health_of(pools: &[PoolView]) -> Vec<(String, bool)> {
    let mut devices: Vec<(String, bool)> = pools
        .iter()
        .flat_map(|p| &p.members)
        .map(|m| (device_name(m.device.address), m.healthy))
        .collect();
    devices.sort();
    devices
}

fn report(node: &str, devices: &[(String, bool)]) -> health::NodeWatchResourcesResponse {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let devices = devices
        .iter()
        .map(|(device_name, healthy)| health::DeviceHealth {
            device: Some(health::DeviceIdentifier {
                pool_name: node.to_string(),
                device_name: device_name.clone(),
            }),
            health: if *healthy {
                health::HealthStatus::Healthy
            } else {
                health::HealthStatus::Unhealthy
            } as i32,
            last_updated_time: now,
        })
        .collect();
    health::NodeWatchResourcesResponse { devices }
}
