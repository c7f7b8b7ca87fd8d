//! Blocking rtnetlink, in two levels: [`socket`] sends a request and collects
//! the replies; the other modules are typed operations on links, addresses,
//! routes and VFs. `netlink-packet-route` is pinned and never leaves this
//! module, so a version bump touches only these files.

mod address;
mod link;
mod monitor;
mod route;
mod socket;
mod vf;

pub use link::Link;
pub use monitor::{LinkEvents, LinkMonitor};
pub use route::Route;
pub use socket::Netlink;
pub use vf::{VfLinkState, VfSetting, VfState, VlanProto};
