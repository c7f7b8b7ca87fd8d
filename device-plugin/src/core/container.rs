//! What a container gets for its pool devices, whichever API hands them
//! out: the `PCIDEVICE_*` variables in upstream's format, with their
//! `_INFO` JSON, and the device nodes a userspace VF needs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::core::pool::Member;

/// `PCIDEVICE_<PREFIX>_<NAME>`: upper-cased, with `.`, `/` and `-` as `_`.
pub fn env_name(resource_name: &str) -> String {
    format!("PCIDEVICE_{resource_name}")
        .chars()
        .map(|c| {
            if matches!(c, '.' | '/' | '-') {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// The IOMMU group of a VF on vfio-pci.
fn vfio_group(member: &Member) -> Option<u32> {
    match member.device.driver.as_deref() {
        Some("vfio-pci") => member.device.iommu_group,
        _ => None,
    }
}

/// vhost-net and tun, when the pool asks for them and the host has both
/// (upstream leaves them out otherwise).
fn wants_vhost(member: &Member, dev: &Path) -> bool {
    member.need_vhost_net && dev.join("vhost-net").exists() && dev.join("net/tun").exists()
}

/// The device nodes a device needs in a container, by path (the same in
/// the host and the container).
pub fn device_nodes(member: &Member, dev: &Path) -> Vec<String> {
    let mut nodes = Vec::new();
    if let Some(group) = vfio_group(member) {
        nodes.extend(["/dev/vfio/vfio".to_string(), format!("/dev/vfio/{group}")]);
    }
    if wants_vhost(member, dev) {
        nodes.extend(["/dev/vhost-net".to_string(), "/dev/net/tun".to_string()]);
    }
    nodes
}

/// The environment of a container with `members`: `PCIDEVICE_<NAME>` with
/// their addresses, and `PCIDEVICE_<NAME>_INFO` with, per device, its
/// `generic` id, its `vfio` and `vhost` mounts, and the pool's
/// `additionalInfo` as `extra`.
pub fn env(
    resource_name: &str,
    members: &[&Member],
    additional_info: &BTreeMap<String, BTreeMap<String, String>>,
    dev: &Path,
) -> [(String, String); 2] {
    let name = env_name(resource_name);
    let ids: Vec<String> = members
        .iter()
        .map(|m| m.device.address.to_string())
        .collect();
    let mut info = Map::new();
    for (member, id) in members.iter().zip(&ids) {
        let mut providers = Map::new();
        providers.insert("generic".into(), json!({ "deviceID": id }));
        if let Some(group) = vfio_group(member) {
            providers.insert(
                "vfio".into(),
                json!({ "mount": "/dev/vfio/vfio", "dev-mount": format!("/dev/vfio/{group}") }),
            );
        }
        if wants_vhost(member, dev) {
            providers.insert(
                "vhost".into(),
                json!({ "net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun" }),
            );
        }
        let mut extra = additional_info.get("*").cloned().unwrap_or_default();
        extra.extend(additional_info.get(id).cloned().unwrap_or_default());
        if !extra.is_empty() {
            providers.insert("extra".into(), json!(extra));
        }
        info.insert(id.clone(), Value::Object(providers));
    }
    [
        (name.clone(), ids.join(",")),
        (format!("{name}_INFO"), Value::Object(info).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_upstream_plus_slashes_and_hyphens() {
        assert_eq!(
            env_name("intel.com/sriov_net"),
            "PCIDEVICE_INTEL_COM_SRIOV_NET"
        );
        assert_eq!(
            env_name("example-corp.io/fast-vfs"),
            "PCIDEVICE_EXAMPLE_CORP_IO_FAST_VFS"
        );
    }
}
