use std::path::PathBuf;

use nix::errno::Errno;

use crate::PciAddress;

/// Everything that can go wrong in this crate; each variant names what was
/// being done and to what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {value:?} is not {expected}")]
    Parse {
        path: PathBuf,
        value: String,
        expected: &'static str,
    },
    #[error("{path} points to {target}, which does not exist")]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("{0:?} is not a PCI address (expected DDDD:BB:DD.F)")]
    InvalidPciAddress(String),
    #[error("{0:?} is not a MAC address (expected six hex bytes: aa:bb:cc:dd:ee:ff)")]
    InvalidMac(String),
    #[error("{0:?} is not an IP network (expected ADDRESS/PREFIX)")]
    InvalidIpNetwork(String),
    #[error("PCI device {0} does not exist")]
    NoSuchDevice(PciAddress),
    #[error("PCI device {0} is not an SR-IOV virtual function (it has no physfn)")]
    NotAVirtualFunction(PciAddress),
    #[error("{path} points to VF {vf}, which a lower virtfn link already names")]
    DuplicateVf { path: PathBuf, vf: PciAddress },
    #[error("PCI device {vf} is not listed as a VF of its PF {pf}")]
    VfIndexNotFound { vf: PciAddress, pf: PciAddress },
    #[error("open network namespace {path}: {errno:?}")]
    OpenNetns { path: PathBuf, errno: Errno },
    #[error("enter network namespace: {0:?}")]
    EnterNetns(Errno),
    #[error("open netlink socket: {0:?}")]
    Socket(Errno),
    #[error("{op} {target}: {errno:?}")]
    Netlink {
        op: &'static str,
        target: String,
        errno: Errno,
    },
    #[error("{op} on {pf} vf {vf}: {errno:?}")]
    Vf {
        op: &'static str,
        pf: String,
        vf: u32,
        errno: Errno,
    },
    #[error("link {0:?} not found")]
    NoSuchLink(String),
    #[error("{pf} has no vf {vf}")]
    NoSuchVf { pf: String, vf: u32 },
    #[error("netlink reply to {op} {target}: {reason}")]
    Protocol {
        op: &'static str,
        target: String,
        reason: String,
    },
}

impl Error {
    /// The kernel's errno, when the error came from a netlink request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Netlink { errno, .. } | Error::Vf { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
