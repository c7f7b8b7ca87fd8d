//! What both binaries must know about SR-IOV on a Linux host.
//!
//! - [`Sysfs`] and [`discovery`]: Physical and Virtual Functions read from a
//!   sysfs tree whose root can be moved (a temp dir in tests).
//! - [`default_route_interfaces`]: the netdevs a pod must never get.
//! - [`Netlink`]: blocking rtnetlink for links, addresses, routes and
//!   per-VF settings through the PF; no async runtime.
//! - [`Netns`]: namespaces, entered only from fresh threads.
//! - [`write_device_info`]: NPWG device-info files.

mod default_route;
mod device_info;
pub mod discovery;
mod error;
#[cfg(feature = "fake-sysfs")]
pub mod fake;
mod ip;
mod mac;
pub mod netlink;
mod netns;
mod pci;
mod sysfs;

pub use default_route::default_route_interfaces;
pub use device_info::{pci_device_info, write_device_info};
pub use discovery::{Inventory, LinkType, Netdev, PhysicalFunction, VirtualFunction};
pub use error::{Error, Result};
pub use ip::IpNetwork;
pub use mac::MacAddress;
pub use netlink::{
    Link, LinkEvents, LinkMonitor, Netlink, Route, VfLinkState, VfSetting, VfState, VlanProto,
};
pub use netns::Netns;
pub use nix::errno::Errno;
pub use pci::PciAddress;
pub use sysfs::Sysfs;
