//! Allocate's answer for one container, in kubelet's types: the
//! environment and device nodes of `core::container`, or CDI names.

use std::collections::BTreeMap;
use std::path::Path;

use kubelet_api::deviceplugin::v1beta1::{CdiDevice, ContainerAllocateResponse, DeviceSpec};

use crate::core::container;
use crate::core::pool::Member;

/// The response for one container's devices, all already known and
/// healthy. With CDI (`cdi_kind`), the devices are named for the runtime
/// to resolve instead of listed as device nodes.
pub fn container_response(
    resource_name: &str,
    members: &[&Member],
    additional_info: &BTreeMap<String, BTreeMap<String, String>>,
    dev: &Path,
    cdi_kind: Option<&str>,
) -> ContainerAllocateResponse {
    let mut response = ContainerAllocateResponse {
        envs: container::env(resource_name, members, additional_info, dev).into(),
        ..Default::default()
    };
    match cdi_kind {
        Some(kind) => {
            response.cdi_devices = members
                .iter()
                .map(|m| CdiDevice {
                    name: format!("{kind}={}", m.device.address),
                })
                .collect();
        }
        None => {
            let mut seen = std::collections::HashSet::new();
            response.devices = members
                .iter()
                .flat_map(|m| container::device_nodes(m, dev))
                .filter(|path| seen.insert(path.clone()))
                .map(|path| DeviceSpec {
                    container_path: path.clone(),
                    host_path: path,
                    permissions: "rw".to_string(),
                })
                .collect();
        }
    }
    response
}
