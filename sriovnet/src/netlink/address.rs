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
    /// The addresses on a link.
    pub fn addresses(&mut self, link: &Link) -> Result<Vec<IpNetwork>> {
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(|f| f.into_error("list addresses of", &link.name))?;
        let mut networks = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(message) = reply else {
                continue;
            };
            if message.header.index != link.index {
                continue;
            }
            // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on
            // point-to-point links and the same address otherwise.
            let local = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = local.or_else(|| {
                message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(address) = address {
                networks.push(IpNetwork {
                    address,
                    prefix: message.header.prefix_len,
                });
            }
        }
        Ok(networks)
    }

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
