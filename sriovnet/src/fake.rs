//! Fake sysfs trees laid out as the kernel lays them out, for tests and
//! benchmarks. Only built with the `fake-sysfs` feature.

use std::cell::Cell;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::{PciAddress, Sysfs};

/// A NIC model: ids, drivers and where its VFs land in PCI space.
#[derive(Debug, Clone, Copy)]
pub struct FakeNic {
    pub vendor: u16,
    pub pf_device: u16,
    pub vf_device: u16,
    pub pf_driver: &'static str,
    pub vf_driver: &'static str,
    pub total_vfs: u32,
    /// First VF's routing id minus the PF's, and the step between VFs.
    pub vf_offset: u32,
    pub vf_stride: u32,
}

/// The Intel 82576 (QEMU's `igb`): 7 VFs, offset 128, stride 2.
pub const INTEL_82576: FakeNic = FakeNic {
    vendor: 0x8086,
    pf_device: 0x10c9,
    vf_device: 0x10ca,
    pf_driver: "igb",
    vf_driver: "igbvf",
    total_vfs: 7,
    vf_offset: 128,
    vf_stride: 2,
};

/// A Mellanox ConnectX-5: up to 127 VFs right after the PF.
pub const MELLANOX_CX5: FakeNic = FakeNic {
    vendor: 0x15b3,
    pf_device: 0x1017,
    vf_device: 0x1018,
    pf_driver: "mlx5_core",
    vf_driver: "mlx5_core",
    total_vfs: 127,
    vf_offset: 2,
    vf_stride: 1,
};

/// An Intel E810: up to 256 VFs.
pub const INTEL_E810: FakeNic = FakeNic {
    vendor: 0x8086,
    pf_device: 0x159b,
    vf_device: 0x1889,
    pf_driver: "ice",
    vf_driver: "iavf",
    total_vfs: 256,
    vf_offset: 8,
    vf_stride: 1,
};

/// A fake tree under `root`.
#[derive(Debug)]
pub struct FakeSysfs {
    root: PathBuf,
    next_iommu_group: Cell<u32>,
}

fn routing_id(a: PciAddress) -> u32 {
    (a.bus as u32) << 8 | (a.device as u32) << 3 | a.function as u32
}

fn from_routing_id(domain: u32, rid: u32) -> PciAddress {
    PciAddress {
        domain,
        bus: (rid >> 8) as u8,
        device: ((rid >> 3) & 0x1f) as u8,
        function: (rid & 7) as u8,
    }
}

impl FakeSysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FakeSysfs {
            root: root.into(),
            next_iommu_group: Cell::new(0),
        }
    }

    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.root)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn device_dir(&self, address: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(address)
    }

    /// Writes a file, creating its directory.
    pub fn write(&self, relative: &str, content: &str) -> io::Result<()> {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        fs::write(path, content)
    }

    /// Makes `relative` a symlink to `target`, replacing what was there.
    pub fn link(&self, relative: &str, target: &str) -> io::Result<()> {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        symlink(target, path)
    }

    pub fn remove(&self, relative: &str) -> io::Result<()> {
        let path = self.root.join(relative);
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        }
    }

    /// A PCI function with its ids, NUMA node and, if given, a driver.
    pub fn add_device(
        &self,
        address: &str,
        vendor: u16,
        device: u16,
        driver: Option<&str>,
        numa_node: i32,
    ) -> io::Result<()> {
        let dir = format!("bus/pci/devices/{address}");
        self.write(&format!("{dir}/vendor"), &format!("0x{vendor:04x}\n"))?;
        self.write(&format!("{dir}/device"), &format!("0x{device:04x}\n"))?;
        self.write(&format!("{dir}/numa_node"), &format!("{numa_node}\n"))?;
        if let Some(driver) = driver {
            fs::create_dir_all(self.path(&format!("bus/pci/drivers/{driver}")))?;
            self.link(
                &format!("{dir}/driver"),
                &format!("../../../bus/pci/drivers/{driver}"),
            )?;
        }
        Ok(())
    }

    /// A netdev of a PCI function: `net/<name>/` with an up Ethernet link,
    /// and its `class/net/<name>` link.
    pub fn add_netdev(&self, address: &str, name: &str) -> io::Result<()> {
        let dir = format!("bus/pci/devices/{address}/net/{name}");
        self.write(&format!("{dir}/type"), "1\n")?;
        self.write(&format!("{dir}/operstate"), "up\n")?;
        self.write(&format!("{dir}/carrier"), "1\n")?;
        self.link(&format!("class/net/{name}"), &format!("../../{dir}"))
    }

    /// A PF of `nic` with `num_vfs` VFs, each bound to the NIC's VF driver
    /// with a netdev `<netdev>v<index>` and an IOMMU group of its own.
    /// Returns the VF addresses by index.
    pub fn add_pf(
        &self,
        nic: &FakeNic,
        address: &str,
        netdev: &str,
        num_vfs: u32,
        numa_node: i32,
    ) -> io::Result<Vec<String>> {
        let pf: PciAddress = address
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.add_device(
            address,
            nic.vendor,
            nic.pf_device,
            Some(nic.pf_driver),
            numa_node,
        )?;
        self.add_netdev(address, netdev)?;
        let dir = format!("bus/pci/devices/{address}");
        self.write(
            &format!("{dir}/sriov_totalvfs"),
            &format!("{}\n", nic.total_vfs),
        )?;
        self.write(&format!("{dir}/sriov_numvfs"), &format!("{num_vfs}\n"))?;
        self.write(
            &format!("{dir}/sriov_vf_device"),
            &format!("{:x}\n", nic.vf_device),
        )?;
        let mut vfs = Vec::new();
        for index in 0..num_vfs {
            let rid = routing_id(pf) + nic.vf_offset + nic.vf_stride * index;
            let vf = from_routing_id(pf.domain, rid).to_string();
            self.add_device(
                &vf,
                nic.vendor,
                nic.vf_device,
                Some(nic.vf_driver),
                numa_node,
            )?;
            self.add_netdev(&vf, &format!("{netdev}v{index}"))?;
            self.link(&format!("{dir}/virtfn{index}"), &format!("../{vf}"))?;
            self.link(
                &format!("bus/pci/devices/{vf}/physfn"),
                &format!("../{address}"),
            )?;
            let group = self.next_iommu_group.get();
            self.next_iommu_group.set(group + 1);
            fs::create_dir_all(self.path(&format!("kernel/iommu_groups/{group}")))?;
            self.link(
                &format!("bus/pci/devices/{vf}/iommu_group"),
                &format!("../../../kernel/iommu_groups/{group}"),
            )?;
            vfs.push(vf);
        }
        Ok(vfs)
    }

    /// Rebinds a device to `driver`, as `driver_override` + `bind` would;
    /// a userspace driver takes the netdev away.
    pub fn bind(&self, address: &str, driver: &str) -> io::Result<()> {
        let dir = self.device_dir(address);
        if crate::discovery::USERSPACE_DRIVERS.contains(&driver) {
            for name in crate::sysfs::list_dir(&dir.join("net")).map_err(io::Error::other)? {
                fs::remove_file(self.path(&format!("class/net/{name}")))?;
            }
            remove_if_present(&dir.join("net"))?;
        }
        fs::create_dir_all(self.path(&format!("bus/pci/drivers/{driver}")))?;
        self.link(
            &format!("bus/pci/devices/{address}/driver"),
            &format!("../../../bus/pci/drivers/{driver}"),
        )
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
