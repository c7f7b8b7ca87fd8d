//! The SR-IOV model of a host: Physical Functions and their Virtual Functions,
//! read from `bus/pci/devices`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::sysfs::{
    list_dir, parse, read_link_name, read_numa_node, read_number, read_optional_string,
    read_pci_id, read_pci_link,
};
use crate::{Error, PciAddress, Result, Sysfs};

/// Drivers that take a VF away from the kernel network stack: such a VF has
/// no netdev and is used from userspace (DPDK).
pub const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalFunction {
    pub address: PciAddress,
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    pub netdevs: Vec<Netdev>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    pub numa_node: Option<u32>,
    pub vfs: Vec<VirtualFunction>,
}

impl PhysicalFunction {
    /// Whether any of its netdevs carries the host's default route.
    pub fn carries_default_route(&self) -> bool {
        self.netdevs.iter().any(|n| n.default_route)
    }
}

/// A PF's kernel network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netdev {
    pub name: String,
    pub link_type: LinkType,
    pub phys_port_name: Option<String>,
    pub phys_switch_id: Option<String>,
    pub default_route: bool,
}

/// `net/<if>/type`, an ARPHRD number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    Infiniband,
    Other(u32),
}

impl LinkType {
    fn from_arphrd(value: u32) -> Self {
        match value {
            1 => LinkType::Ethernet,
            32 => LinkType::Infiniband,
            other => LinkType::Other(other),
        }
    }

    /// The ARPHRD number, as `/sys/class/net/<netdev>/type` holds it.
    pub fn arphrd(&self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Infiniband => 32,
            LinkType::Other(n) => *n,
        }
    }

    /// The name the upstream device plugin's `linkTypes` selector uses.
    pub fn name(&self) -> String {
        match self {
            LinkType::Ethernet => "ether".to_string(),
            LinkType::Infiniband => "infiniband".to_string(),
            LinkType::Other(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualFunction {
    pub address: PciAddress,
    pub pf: PciAddress,
    /// N of the PF's `virtfnN` link: the index netlink uses for this VF.
    pub index: u32,
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    /// Present when a kernel net driver is bound.
    pub netdev: Option<String>,
    pub iommu_group: Option<u32>,
    pub numa_node: Option<u32>,
}

impl VirtualFunction {
    /// Bound to a userspace I/O driver (vfio-pci, uio): no netdev to move.
    pub fn is_userspace(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| USERSPACE_DRIVERS.contains(&d))
    }

    /// `/dev/vfio/<group>`, for a VF bound to vfio-pci.
    pub fn vfio_device(&self) -> Option<PathBuf> {
        match (self.driver.as_deref(), self.iommu_group) {
            (Some("vfio-pci"), Some(group)) => Some(PathBuf::from(format!("/dev/vfio/{group}"))),
            _ => None,
        }
    }
}

/// What all VFs of one PF have in common.
struct Shared {
    vendor: u16,
    device: u16,
    numa_node: Option<u32>,
}

/// The result of a scan: every PF that could be read, and what could not.
#[derive(Debug, Default)]
pub struct Inventory {
    pub pfs: Vec<PhysicalFunction>,
    /// Devices skipped because their sysfs entries are broken; one broken
    /// device never hides the others.
    pub problems: Vec<Error>,
}

impl Sysfs {
    /// Every SR-IOV capable PF with its VFs. `default_routes` names the
    /// netdevs that carry a default route (see [`crate::default_route_interfaces`]).
    pub fn scan(&self, default_routes: &HashSet<String>) -> Result<Inventory> {
        let devices = self.pci_devices();
        if !devices.is_dir() {
            return Err(Error::Read {
                path: devices,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let names = list_dir(&devices)?;
        // Thousands of small sysfs reads on a big host: each core takes a
        // share of the devices.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = names.len().div_ceil(cores).max(1);
        let parts: Vec<Inventory> = std::thread::scope(|scope| {
            let workers: Vec<_> = names
                .chunks(share)
                .map(|names| scope.spawn(|| self.scan_devices(&devices, names, default_routes)))
                .collect();
            workers
                .into_iter()
                // A worker that panicked would silently drop its share of
                // the devices: the panic goes on here instead.
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut inventory = Inventory::default();
        for part in parts {
            inventory.pfs.extend(part.pfs);
            inventory.problems.extend(part.problems);
        }
        Ok(inventory)
    }

    /// The PFs among `names`, in order.
    fn scan_devices(
        &self,
        devices: &Path,
        names: &[String],
        default_routes: &HashSet<String>,
    ) -> Inventory {
        let mut inventory = Inventory::default();
        // A VF sorts after its PF (its routing id is the PF's plus an
        // offset), so the VFs already read need no second look.
        let mut seen_vfs = HashSet::new();
        for name in names {
            if seen_vfs.contains(name) {
                continue;
            }
            let path = devices.join(name);
            let pf = parse(&path, name, "a PCI address")
                .and_then(|address| self.read_pf(address, default_routes, &mut inventory.problems));
            match pf {
                Ok(Some(pf)) => {
                    seen_vfs.extend(pf.vfs.iter().map(|vf| vf.address.to_string()));
                    inventory.pfs.push(pf);
                }
                Ok(None) => {}
                Err(e) => inventory.problems.push(e),
            }
        }
        inventory
    }

    /// One VF, found from its own directory through `physfn`. This reads only
    /// the VF and its PF's `virtfn` links, for callers on a hot path (the CNI).
    pub fn virtual_function(&self, address: PciAddress) -> Result<VirtualFunction> {
        let dir = self.pci_device(address);
        if !dir.exists() {
            return Err(Error::NoSuchDevice(address));
        }
        let pf =
            read_pci_link(self, &dir.join("physfn"))?.ok_or(Error::NotAVirtualFunction(address))?;
        // A broken link of another VF does not matter here.
        for (index, vf) in self.virtfn_links(pf, &mut Vec::new())? {
            if vf == address {
                return self.read_vf(address, pf, index, None);
            }
        }
        Err(Error::VfIndexNotFound { vf: address, pf })
    }

    /// The driver bound to a PCI function, if any.
    pub fn driver(&self, address: PciAddress) -> Result<Option<String>> {
        read_link_name(&self.pci_device(address).join("driver"))
    }

    /// The netdev names of a PCI function (`<device>/net/*`).
    pub fn netdev_names(&self, address: PciAddress) -> Result<Vec<String>> {
        list_dir(&self.pci_device(address).join("net"))
    }

    fn read_pf(
        &self,
        address: PciAddress,
        default_routes: &HashSet<String>,
        problems: &mut Vec<Error>,
    ) -> Result<Option<PhysicalFunction>> {
        let dir = self.pci_device(address);
        let total_vfs_path = dir.join("sriov_totalvfs");
        if !total_vfs_path.exists() {
            return Ok(None);
        }
        let mut netdevs = Vec::new();
        for name in self.netdev_names(address)? {
            let net = dir.join("net").join(&name);
            netdevs.push(Netdev {
                link_type: LinkType::from_arphrd(read_number(&net.join("type"))?),
                phys_port_name: read_optional_string(&net.join("phys_port_name"))?,
                phys_switch_id: read_optional_string(&net.join("phys_switch_id"))?,
                default_route: default_routes.contains(&name),
                name,
            });
        }
        let vendor = read_pci_id(&dir.join("vendor"))?;
        let numa_node = read_numa_node(&dir.join("numa_node"))?;
        // Every VF of a PF has the PF's vendor, the VF device id of its
        // SR-IOV capability and the PF's NUMA node: read them once, not
        // 256 times. Without `sriov_vf_device`, each VF is read.
        let vf_device_path = dir.join("sriov_vf_device");
        let shared = match read_optional_string(&vf_device_path)? {
            Some(hex) => Some(Shared {
                vendor,
                device: u16::from_str_radix(&hex, 16).map_err(|_| Error::Parse {
                    path: vf_device_path.clone(),
                    value: hex.clone(),
                    expected: "a PCI device id in hex",
                })?,
                numa_node,
            }),
            None => None,
        };
        let mut vfs = Vec::new();
        for (index, vf) in self.virtfn_links(address, problems)? {
            match self.read_vf(vf, address, index, shared.as_ref()) {
                Ok(vf) => vfs.push(vf),
                Err(e) => problems.push(e),
            }
        }
        Ok(Some(PhysicalFunction {
            address,
            vendor,
            device: read_pci_id(&dir.join("device"))?,
            driver: read_link_name(&dir.join("driver"))?,
            netdevs,
            total_vfs: read_number(&total_vfs_path)?,
            num_vfs: read_number(&dir.join("sriov_numvfs"))?,
            numa_node,
            vfs,
        }))
    }

    /// The PF's `virtfnN` links as (N, VF address), by N. A broken link is
    /// reported in `problems` and the others are kept.
    fn virtfn_links(
        &self,
        pf: PciAddress,
        problems: &mut Vec<Error>,
    ) -> Result<Vec<(u32, PciAddress)>> {
        let dir = self.pci_device(pf);
        let mut links = Vec::new();
        for name in list_dir(&dir)? {
            let Some(index) = name.strip_prefix("virtfn") else {
                continue;
            };
            let path = dir.join(&name);
            let link = parse(&path, index, "virtfn followed by a VF index")
                .and_then(|index| Ok((index, read_pci_link(self, &path)?)));
            match link {
                Ok((index, Some(vf))) => links.push((index, vf)),
                Ok((_, None)) => {}
                Err(e) => problems.push(e),
            }
        }
        links.sort();
        // A VF is listed once: a second link to it (a broken tree) is a
        // problem, and the lower index stands.
        let mut seen = std::collections::HashSet::new();
        links.retain(|(index, vf)| {
            let first = seen.insert(*vf);
            if !first {
                problems.push(Error::DuplicateVf {
                    path: dir.join(format!("virtfn{index}")),
                    vf: *vf,
                });
            }
            first
        });
        Ok(links)
    }

    fn read_vf(
        &self,
        address: PciAddress,
        pf: PciAddress,
        index: u32,
        shared: Option<&Shared>,
    ) -> Result<VirtualFunction> {
        let dir = self.pci_device(address);
        let iommu_group = match read_link_name(&dir.join("iommu_group"))? {
            Some(name) => Some(parse(
                &dir.join("iommu_group"),
                &name,
                "an IOMMU group number",
            )?),
            None => None,
        };
        let (vendor, device, numa_node) = match shared {
            Some(s) => (s.vendor, s.device, s.numa_node),
            None => (
                read_pci_id(&dir.join("vendor"))?,
                read_pci_id(&dir.join("device"))?,
                read_numa_node(&dir.join("numa_node"))?,
            ),
        };
        Ok(VirtualFunction {
            address,
            pf,
            index,
            vendor,
            device,
            driver: read_link_name(&dir.join("driver"))?,
            netdev: self.netdev_names(address)?.into_iter().next(),
            iommu_group,
            numa_node,
        })
    }
}
