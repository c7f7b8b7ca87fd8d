//! The devices a pool can hold: every VF, and every SR-IOV PF that has no
//! VFs enabled, less what must never be given away.

use std::collections::HashSet;
use std::path::Path;
use tracing::warn;

use sriovnet::{
    default_route_interfaces, Inventory, LinkType, PciAddress, PhysicalFunction, Sysfs,
    VirtualFunction,
};

/// One advertisable PCI function with what the selectors look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub address: PciAddress,
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    pub netdev: Option<String>,
    /// The PF's netdev and address, and this VF's index; None for a PF.
    pub pf_name: Option<String>,
    pub pf_address: Option<PciAddress>,
    /// The PF's PCI device id; None for a PF.
    pub pf_device: Option<u16>,
    pub vf_index: Option<u32>,
    pub numa_node: Option<u32>,
    pub iommu_group: Option<u32>,
    pub link_type: Option<LinkType>,
    pub acpi_index: Option<String>,
    /// The function has RDMA resources (an `infiniband` directory).
    pub rdma: bool,
    /// The PCIe root complex it hangs off (`pci0000:00`), if the tree says.
    pub pcie_root: Option<String>,
}

impl Device {
    /// A VF's link type and PCIe root are its PF's, and a VF has no ACPI
    /// index (ACPI describes slots, and VFs are not in them): none is read
    /// per VF.
    fn from_vf(
        sysfs: &Sysfs,
        pf: &PhysicalFunction,
        pcie_root: &Option<String>,
        vf: &VirtualFunction,
    ) -> Self {
        let primary = pf.netdevs.first();
        Device {
            address: vf.address,
            vendor: vf.vendor,
            device: vf.device,
            driver: vf.driver.clone(),
            netdev: vf.netdev.clone(),
            pf_name: primary.map(|n| n.name.clone()),
            pf_address: Some(pf.address),
            pf_device: Some(pf.device),
            vf_index: Some(vf.index),
            numa_node: vf.numa_node,
            iommu_group: vf.iommu_group,
            link_type: primary.map(|n| n.link_type),
            acpi_index: None,
            rdma: sysfs.has_rdma(vf.address),
            pcie_root: pcie_root.clone(),
        }
    }

    fn from_pf(sysfs: &Sysfs, pf: &PhysicalFunction) -> Self {
        Device {
            address: pf.address,
            vendor: pf.vendor,
            device: pf.device,
            driver: pf.driver.clone(),
            netdev: pf.netdevs.first().map(|n| n.name.clone()),
            pf_name: None,
            pf_address: None,
            pf_device: None,
            vf_index: None,
            numa_node: pf.numa_node,
            iommu_group: None,
            link_type: pf.netdevs.first().map(|n| n.link_type),
            acpi_index: sysfs.acpi_index(pf.address),
            rdma: sysfs.has_rdma(pf.address),
            pcie_root: sysfs.pcie_root(pf.address),
        }
    }
}

/// The tree's SR-IOV inventory and the default-route netdevs, printing
/// what had to be skipped.
pub fn scan(
    sysfs: &Sysfs,
    proc_net: &Path,
) -> Result<(Inventory, HashSet<String>), sriovnet::Error> {
    let routes = default_route_interfaces(proc_net)?;
    let inventory = sysfs.scan(&routes)?;
    for problem in &inventory.problems {
        warn!("skipped: {problem}");
    }
    Ok((inventory, routes))
}

/// Every device a pool may hold, by address. Left out, as upstream does:
/// a PF with VFs enabled (its VFs are the devices) and any function whose
/// netdev carries a default route. The VFs of the host's uplink PF stay.
pub fn candidates(
    sysfs: &Sysfs,
    inventory: &Inventory,
    default_routes: &HashSet<String>,
) -> Vec<Device> {
    let mut devices = Vec::new();
    for pf in &inventory.pfs {
        let pcie_root = sysfs.pcie_root(pf.address);
        if pf.num_vfs == 0 && !pf.carries_default_route() {
            devices.push(Device::from_pf(sysfs, pf));
        }
        for vf in &pf.vfs {
            if vf
                .netdev
                .as_ref()
                .is_some_and(|n| default_routes.contains(n))
            {
                continue;
            }
            devices.push(Device::from_vf(sysfs, pf, &pcie_root, vf));
        }
    }
    devices.sort_by_key(|d| d.address);
    devices
}

#[cfg(test)]
mod tests {
    use super::*;
    use sriovnet::fake::{FakeSysfs, INTEL_82576};

    #[test]
    fn default_route_netdevs_are_left_out_but_the_uplinks_vfs_stay() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::new(dir.path());
        fake.add_pf(&INTEL_82576, "0000:01:00.0", "uplink0", 2, 0)
            .unwrap();
        fake.add_pf(&INTEL_82576, "0000:02:00.0", "uplink1", 0, 0)
            .unwrap();
        fake.add_pf(&INTEL_82576, "0000:03:00.0", "spare0", 0, 0)
            .unwrap();
        let routes = HashSet::from([
            "uplink0".to_string(),
            "uplink1".to_string(),
            "uplink0v1".to_string(),
        ]);
        let sysfs = fake.sysfs();
        let inventory = sysfs.scan(&routes).unwrap();
        let kept: Vec<String> = candidates(&sysfs, &inventory, &routes)
            .iter()
            .map(|d| d.address.to_string())
            .collect();
        // uplink0's VF 0 stays; its VF 1 (default route), uplink1 (default
        // route, no VFs) and uplink0 itself (has VFs) do not.
        assert_eq!(kept, ["0000:01:10.0", "0000:03:00.0"]);
    }
}
