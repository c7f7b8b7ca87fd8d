//! A node's pools as ResourceSlices: one DRA pool per node (named after the
//! node), split into slices of at most 128 devices, the most the API
//! accepts in one. Devices and attributes are named as dra-driver-sriov
//! names them, so that selectors written for it work unchanged.

use std::collections::BTreeMap;

use k8s_openapi::api::resource::v1::{
    Device as SliceDevice, DeviceAttribute, ResourcePool, ResourceSlice, ResourceSliceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sriovnet::{LinkType, PciAddress};

use crate::core::pool::Member;
use crate::core::view::PoolView;

/// The most devices one ResourceSlice may hold.
pub const MAX_DEVICES: usize = 128;

/// The node the slices describe, their owner: deleting the Node deletes
/// them.
pub struct Node {
    pub name: String,
    pub uid: String,
}

/// A device's name in its slice: its PCI address with `:` and `.` as `-`
/// (a device name must be a DNS label).
pub fn device_name(address: PciAddress) -> String {
    address.to_string().replace([':', '.'], "-")
}

/// The slices publishing `pools` for `node` as pool generation
/// `generation`; none when the pools have no device. Every slice names the
/// count, so a reader knows when it has seen the whole pool.
pub fn slices(
    driver: &str,
    node: &Node,
    generation: i64,
    pools: &[PoolView],
) -> Vec<ResourceSlice> {
    let mut devices: Vec<SliceDevice> = pools
        .iter()
        .flat_map(|pool| {
            let resource = pool.config.resource_name();
            pool.members
                .iter()
                .map(move |member| device(driver, &resource, member))
        })
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    let chunks: Vec<Vec<SliceDevice>> = devices
        .chunks(MAX_DEVICES)
        .map(<[SliceDevice]>::to_vec)
        .collect();
    let count = chunks.len() as i64;
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, devices)| ResourceSlice {
            metadata: ObjectMeta {
                name: Some(slice_name(&node.name, driver, index)),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.name.clone(),
                    uid: node.uid.clone(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: ResourceSliceSpec {
                driver: driver.into(),
                node_name: Some(node.name.clone()),
                pool: ResourcePool {
                    name: node.name.clone(),
                    generation,
                    resource_slice_count: count,
                },
                devices: Some(devices),
                ..ResourceSliceSpec::default()
            },
        })
        .collect()
}

/// `<node>-<driver>-<n>`: stable, so a restarted daemon finds and updates
/// its slices instead of adding more.
pub fn slice_name(node: &str, driver: &str, index: usize) -> String {
    format!("{node}-{driver}-{index}")
}

fn device(driver: &str, resource: &str, member: &Member) -> SliceDevice {
    let d = &member.device;
    let mut attributes = BTreeMap::new();
    let mut put = |domain: &str, name: &str, value: DeviceAttribute| {
        attributes.insert(format!("{domain}/{name}"), value);
    };
    let address = d.address.to_string();
    put(driver, "vendor", string(format!("{:04x}", d.vendor)));
    put(driver, "deviceID", string(format!("{:04x}", d.device)));
    put(driver, "pciAddress", string(address.clone()));
    if let Some(pf) = &d.pf_name {
        put(driver, "PFName", string(pf.clone()));
    }
    if let Some(pf) = d.pf_address {
        put(driver, "pfPciAddress", string(pf.to_string()));
    }
    if let Some(index) = d.vf_index {
        put(driver, "vfID", int(index.into()));
    }
    let link_type = match d.link_type {
        Some(LinkType::Ethernet) => "ethernet",
        Some(LinkType::Infiniband) => "infiniband",
        _ => "unknown",
    };
    put(driver, "linkType", string(link_type.into()));
    put(driver, "rdmaCapable", boolean(d.rdma));
    // Ours: the kernel driver (vfio-pci for DPDK) and health.
    if let Some(kernel_driver) = &d.driver {
        put(driver, "driver", string(kernel_driver.clone()));
    }
    put(driver, "healthy", boolean(member.healthy));
    put(
        "resource.kubernetes.io",
        "pciBusID",
        string(address.clone()),
    );
    // -1 when unknown, as dra-driver-sriov has it.
    put(
        "dra.net",
        "numaNode",
        int(d.numa_node.map_or(-1, i64::from)),
    );
    // What Multus matches to a NAD's resourceName, and passes to the CNI.
    put("k8s.cni.cncf.io", "deviceID", string(address));
    put("k8s.cni.cncf.io", "resourceName", string(resource.into()));
    SliceDevice {
        name: device_name(d.address),
        attributes: Some(attributes),
        ..SliceDevice::default()
    }
}

fn string(value: String) -> DeviceAttribute {
    DeviceAttribute {
        string: Some(value),
        ..DeviceAttribute::default()
    }
}

fn int(value: i64) -> DeviceAttribute {
    DeviceAttribute {
        int: Some(value),
        ..DeviceAttribute::default()
    }
}

fn boolean(value: bool) -> DeviceAttribute {
    DeviceAttribute {
        bool: Some(value),
        ..DeviceAttribute::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::{inventory, pool};
    use serde_json::json;
    use sriovnet::fake::{FakeSysfs, INTEL_E810};

    /// Two E810 PFs with 150 VFs each, in one pool.
    fn pools(dir: &std::path::Path) -> Vec<PoolView> {
        let fake = FakeSysfs::new(dir);
        fake.add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 150, 1)
            .unwrap();
        fake.add_pf(&INTEL_E810, "0000:5e:00.0", "ens3f0", 150, 0)
            .unwrap();
        let config = Config::parse(
            r#"{"resourceList":[{"resourceName":"e810","selectors":{"drivers":["iavf"]}}]}"#,
            "intel.com",
        )
        .unwrap();
        let sysfs = fake.sysfs();
        let (inventory, routes) = inventory::scan(&sysfs, &dir.join("no-proc-net")).unwrap();
        let devices = inventory::candidates(&sysfs, &inventory, &routes);
        pool::assign(&config.resources, &devices, &pool::Pins::new())
            .into_iter()
            .map(|pool| PoolView {
                config: pool.config,
                members: pool.members,
            })
            .collect()
    }

    fn node() -> Node {
        Node {
            name: "worker-1".into(),
            uid: "5b4c8a4e-0000-4000-8000-000000000001".into(),
        }
    }

    #[test]
    fn three_hundred_vfs_are_three_slices_of_one_pool() {
        let dir = tempfile::tempdir().unwrap();
        let pools = pools(dir.path());
        let published = slices(super::super::DRIVER, &node(), 7, &pools);
        let sizes: Vec<usize> = published
            .iter()
            .map(|s| s.spec.devices.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, [128, 128, 44]);
        for slice in &published {
            assert_eq!(slice.spec.pool.name, "worker-1");
            assert_eq!(slice.spec.pool.generation, 7);
            assert_eq!(slice.spec.pool.resource_slice_count, 3);
            assert_eq!(slice.spec.node_name.as_deref(), Some("worker-1"));
        }
        let mut names: Vec<&str> = published
            .iter()
            .flat_map(|s| s.spec.devices.as_ref().unwrap())
            .map(|d| d.name.as_str())
            .collect();
        names.dedup();
        assert_eq!(names.len(), 300, "every device once");
        assert!(slices(super::super::DRIVER, &node(), 1, &[]).is_empty());
    }

    /// The JSON the API server gets, for one VF: kind, owner, the pool and
    /// the attributes dra-driver-sriov's selectors use.
    #[test]
    fn a_vf_as_the_api_server_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let pools = pools(dir.path());
        let slice = &slices(super::super::DRIVER, &node(), 1, &pools)[0];
        let value = serde_json::to_value(slice).unwrap();
        assert_eq!(value["apiVersion"], "resource.k8s.io/v1");
        assert_eq!(value["kind"], "ResourceSlice");
        assert_eq!(
            value["metadata"]["name"],
            "worker-1-sriovnetwork.k8snetworkplumbingwg.io-0"
        );
        assert_eq!(
            value["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "v1", "kind": "Node", "name": "worker-1",
                   "uid": "5b4c8a4e-0000-4000-8000-000000000001", "controller": true})
        );
        assert_eq!(
            value["spec"]["pool"],
            json!({"name": "worker-1", "generation": 1, "resourceSliceCount": 3})
        );
        let first = &value["spec"]["devices"][0];
        assert_eq!(first["name"], "0000-3b-01-0");
        let sriov = "sriovnetwork.k8snetworkplumbingwg.io";
        assert_eq!(
            first["attributes"],
            json!({
                format!("{sriov}/vendor"): {"string": "8086"},
                format!("{sriov}/deviceID"): {"string": "1889"},
                format!("{sriov}/pciAddress"): {"string": "0000:3b:01.0"},
                format!("{sriov}/PFName"): {"string": "ens2f0"},
                format!("{sriov}/pfPciAddress"): {"string": "0000:3b:00.0"},
                format!("{sriov}/vfID"): {"int": 0},
                format!("{sriov}/linkType"): {"string": "ethernet"},
                format!("{sriov}/rdmaCapable"): {"bool": false},
                format!("{sriov}/driver"): {"string": "iavf"},
                format!("{sriov}/healthy"): {"bool": true},
                "resource.kubernetes.io/pciBusID": {"string": "0000:3b:01.0"},
                "dra.net/numaNode": {"int": 1},
                "k8s.cni.cncf.io/deviceID": {"string": "0000:3b:01.0"},
                "k8s.cni.cncf.io/resourceName": {"string": "intel.com/e810"},
            })
        );
    }
}
