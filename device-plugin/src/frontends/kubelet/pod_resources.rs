//! Which devices pods hold, as kubelet's pod resources API lists them. A
//! config change must not move such a device to another pool, or kubelet
//! could hand it to a second pod.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use kubelet_api::podresources::v1::{
    pod_resources_lister_client::PodResourcesListerClient, ListPodResourcesRequest,
};
use sriovnet::PciAddress;

use crate::core::pool::Pins;

/// Every device a pod holds, by the resource it was allocated from; device
/// IDs that are not PCI addresses (other plugins') are left out.
/// Kubelet's pod resources API did not say which devices pods hold.
#[derive(Debug, thiserror::Error)]
#[error("pod resources on {}: {reason}", socket.display())]
pub struct PodResourcesError {
    pub socket: std::path::PathBuf,
    pub reason: String,
}

pub async fn in_use(socket: &Path) -> Result<Pins, PodResourcesError> {
    let list = async {
        let channel = kubelet_api::connect_unix(socket)
            .await
            .map_err(|e| e.to_string())?;
        PodResourcesListerClient::new(channel)
            .list(ListPodResourcesRequest {})
            .await
            .map_err(|e| e.message().to_string())
    };
    let list = tokio::time::timeout(Duration::from_secs(2), list)
        .await
        .map_err(|_| "no answer in 2 s".to_string())
        .and_then(|r| r)
        .map_err(|reason| PodResourcesError {
            socket: socket.to_path_buf(),
            reason,
        })?;
    let mut pins = HashMap::new();
    for pod in list.into_inner().pod_resources {
        for container in pod.containers {
            for devices in container.devices {
                for id in devices.device_ids {
                    if let Ok(address) = id.parse::<PciAddress>() {
                        pins.insert(address, devices.resource_name.clone());
                    }
                }
            }
        }
    }
    Ok(pins)
}
