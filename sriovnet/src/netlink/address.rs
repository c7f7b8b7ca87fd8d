use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

use super::socket::Netlink;
use super::Link;
use crate::{IpNetwork, Result};

pub(crate) fn family(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// Adds an address to a link, as `ip address add` does.
    pub fn add_address(&mut self, link: &Link, network: IpNetwork) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = family(network.address);
        message.header.prefix_len = network.prefix;
        message.header.index = link.index;
        message
            .attributes
            .push(AddressAttribute::Local(network.address));
        message
            .attributes
            .push(AddressAttribute::Address(network.address));
        self.change(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| f.into_error("add address", format!("{network} to {}", link.name)))
    }
}
