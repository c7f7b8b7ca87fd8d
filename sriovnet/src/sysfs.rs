//! Reading sysfs files and links under an injectable root.
//!
//! Links are read with `read_link` and reduced to their file name, never
//! canonicalized, so a fake tree in a temp dir reads exactly like `/sys`.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::errno::Errno;

use crate::{Error, PciAddress, Result};

/// A sysfs tree: `/sys` on a host, a temp dir in tests.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bus/pci/devices`, where every PCI function has a directory.
    pub fn pci_devices(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    pub fn pci_device(&self, address: PciAddress) -> PathBuf {
        self.pci_devices().join(address.to_string())
    }

    /// `class/net/<name>`: a netdev's directory, by name.
    pub fn netdev(&self, name: &str) -> PathBuf {
        self.root.join("class/net").join(name)
    }

    /// Whether a PCI function has RDMA resources (an `infiniband`
    /// directory).
    pub fn has_rdma(&self, address: PciAddress) -> bool {
        self.pci_device(address).join("infiniband").is_dir()
    }

    /// The PCIe root complex a function hangs off, as the kernel names it in
    /// the function's path under `/sys/devices` (`pci0000:00`, from
    /// `bus/pci/devices/<address>`, a link there); None when the tree does
    /// not say (a fake tree that lays functions out flat).
    pub fn pcie_root(&self, address: PciAddress) -> Option<String> {
        let target = std::fs::read_link(self.pci_device(address)).ok()?;
        target.components().find_map(|c| {
            let name = c.as_os_str().to_str()?;
            (name.len() > 3 && name.starts_with("pci")).then(|| name.to_string())
        })
    }

    /// A PCI function's `acpi_index` (firmware's slot index), if it has one.
    pub fn acpi_index(&self, address: PciAddress) -> Option<String> {
        let text = std::fs::read_to_string(self.pci_device(address).join("acpi_index")).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// Whether a netdev's link is up. `unknown` (virtual and some NIC
    /// drivers report it) counts as up; only a link known to be down is
    /// down: `operstate` down, lowerlayerdown or notpresent, or no carrier.
    pub fn link_up(&self, netdev: &str) -> bool {
        let dir = self.netdev(netdev);
        let read =
            |file: &str| std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_string());
        let operstate_down = read("operstate")
            .is_ok_and(|s| matches!(s.as_str(), "down" | "lowerlayerdown" | "notpresent"));
        let no_carrier = read("carrier").is_ok_and(|c| c == "0");
        !(operstate_down || no_carrier)
    }

    /// Whether the netdev `name` belongs to an SR-IOV function: a PF (it
    /// has `sriov_totalvfs`) or a VF (it has `physfn`). Two `stat`s, for
    /// telling a link event that concerns SR-IOV from the many that do not
    /// (veths, bridges, tunnels: their device directory has neither). A
    /// name that is gone, or not in this tree, is not.
    pub fn is_sriov_netdev(&self, name: &str) -> bool {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return false;
        }
        // class/net/<name> points at .../<device>/net/<name>: two levels up
        // is the device, as the kernel resolves `..` after the link.
        let device = self.netdev(name).join("../..");
        device.join("physfn").exists() || device.join("sriov_totalvfs").exists()
    }
}

fn read_error(path: &Path, source: std::io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// A file's content without the trailing newline.
pub(crate) fn read_string(path: &Path) -> Result<String> {
    read_attribute(path).map_err(|e| read_error(path, e))
}

/// Reads a sysfs attribute in one `read`: an attribute hands over all of
/// its (page-sized at most) value at once, as a small regular file in a
/// fake tree does, so open, read, close is enough.
/// `fs::read_to_string` would also stat the file and read again for EOF,
/// which is most of discovery's cost with thousands of VFs.
fn read_attribute(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = [0u8; 4096];
    let n = file.read(&mut buffer)?;
    let mut bytes = buffer[..n].to_vec();
    if n == buffer.len() {
        file.read_to_end(&mut bytes)?;
    }
    let text =
        String::from_utf8(bytes).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
    Ok(text.trim_end().to_string())
}

/// Like [`read_string`], but a file that is absent, or whose driver refuses
/// to answer (`phys_port_name` gives EOPNOTSUPP on many NICs), is `None`.
pub(crate) fn read_optional_string(path: &Path) -> Result<Option<String>> {
    match read_attribute(path) {
        Ok(s) => Ok(Some(s).filter(|s| !s.is_empty())),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(read_error(path, e)),
    }
}

fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
        || [Errno::EOPNOTSUPP, Errno::EINVAL, Errno::ENODEV]
            .into_iter()
            .any(|errno| e.raw_os_error() == Some(errno as i32))
}

pub(crate) fn parse<T: FromStr>(path: &Path, text: &str, expected: &'static str) -> Result<T> {
    text.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        value: text.to_string(),
        expected,
    })
}

pub(crate) fn read_number<T: FromStr>(path: &Path) -> Result<T> {
    parse(path, &read_string(path)?, "a decimal number")
}

/// A PCI id file (`vendor`, `device`): `0x8086`.
pub(crate) fn read_pci_id(path: &Path) -> Result<u16> {
    let text = read_string(path)?;
    text.strip_prefix("0x")
        .filter(|hex| hex.len() == 4)
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        .ok_or_else(|| Error::Parse {
            path: path.to_path_buf(),
            value: text.clone(),
            expected: "a PCI id (0x followed by 4 hex digits)",
        })
}

/// `numa_node`: `-1` (no affinity) and an absent file are both `None`.
pub(crate) fn read_numa_node(path: &Path) -> Result<Option<u32>> {
    match read_optional_string(path)? {
        None => Ok(None),
        Some(text) if text == "-1" => Ok(None),
        Some(text) => parse(path, &text, "a NUMA node number or -1").map(Some),
    }
}

/// The file name a symlink points to (`driver -> ../../../bus/pci/drivers/igbvf`
/// gives `igbvf`); `None` if there is no such link.
pub(crate) fn read_link_name(path: &Path) -> Result<Option<String>> {
    match std::fs::read_link(path) {
        Ok(target) => match target.file_name().and_then(OsStr::to_str) {
            Some(name) => Ok(Some(name.to_string())),
            None => Err(Error::Parse {
                path: path.to_path_buf(),
                value: target.display().to_string(),
                expected: "a link to a named file",
            }),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(path, e)),
    }
}

/// A link to a sibling PCI device (`virtfn0`, `physfn`), checked to exist so
/// that a dangling link is an error and not a phantom device.
pub(crate) fn read_pci_link(sysfs: &Sysfs, path: &Path) -> Result<Option<PciAddress>> {
    let Some(name) = read_link_name(path)? else {
        return Ok(None);
    };
    let address = parse(path, &name, "a link to a PCI device")?;
    let target = sysfs.pci_device(address);
    if !target.exists() {
        return Err(Error::DanglingLink {
            path: path.to_path_buf(),
            target,
        });
    }
    Ok(Some(address))
}

/// The names in a directory, sorted; an absent directory is empty.
pub(crate) fn list_dir(path: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_error(path, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_error(path, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}
