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
    let plan = Plan::new(pools);
    (0..plan.count())
        .map(|index| plan.slice(driver, node, generation, index))
        .collect()
}

/// Which device goes in which slice, without building any: a slice is
/// built when it is written (2048 VFs make some 7 MB of slices, which the
/// daemon never holds at once).
pub struct Plan<'a> {
    /// Each pool's resource name, by pool.
    resources: Vec<String>,
    /// Every device by name, with its pool's index: slice order.
    devices: Vec<(String, usize, &'a Member)>,
}

impl<'a> Plan<'a> {
    pub fn new(pools: &'a [PoolView]) -> Self {
        let mut devices: Vec<(String, usize, &Member)> = pools
            .iter()
            .enumerate()
            .flat_map(|(pool, view)| {
                view.members
                    .iter()
                    .map(move |m| (device_name(m.device.address), pool, m))
            })
            .collect();
        devices.sort_by(|a, b| a.0.cmp(&b.0));
        Plan {
            resources: pools.iter().map(|p| p.config.resource_name()).collect(),
            devices,
        }
    }

    /// How many slices the pool takes.
    pub fn count(&self) -> usize {
        self.devices.len().div_ceil(MAX_DEVICES)
    }

    /// Slice `index` of [`Plan::count`], as pool generation `generation`.
    pub fn slice(&self, driver: &str, node: &Node, generation: i64, index: usize) -> ResourceSlice {
        let chunk = self
            .devices
            .chunks(MAX_DEVICES)
            .nth(index)
            .unwrap_or_default();
        let devices = chunk
            .iter()
            .map(|(_, pool, member)| device(driver, &self.resources[*pool], member))
            .collect();
        ResourceSlice {
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
                    resource_slice_count: self.count() as i64,
                },
                devices: Some(devices),
                ..ResourceSliceSpec::default()
            },
        }
    }
}

/// A digest of a slice's spec as published, its generation aside: the
/// publisher compares slices by it, and keeps it in an annotation, so that
/// it reads back names and annotations only, never every device.
/// FNV-1a (64 bits) of the spec's JSON: stable across builds and releases.
pub fn digest(spec: &ResourceSliceSpec) -> String {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut spec_only = Fnv(0xcbf2_9ce4_8422_2325);
    let pool = ResourcePool {
        generation: 0,
        ..spec.pool.clone()
    };
    let _ = serde_json::to_writer(&mut spec_only, &pool);
    let _ = serde_json::to_writer(&mut spec_only, &spec.driver);
    let _ = serde_json::to_writer(&mut spec_only, &spec.node_name);
    let _ = serde_json::to_writer(&mut spec_only, &spec.devices);
    format!("{:016x}", spec_only.0)
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
    if let Some(pf) = d.pf_device {
        put(driver, "pfDeviceID", string(format!("{pf:04x}")));
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
    if let Some(root) = &d.pcie_root {
        put("resource.kubernetes.io", "pcieRoot", string(root.clone()));
    }
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
