use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

use super::address::family;
use super::socket::Netlink;
use crate::{IpNetwork, Result};

const RT_TABLE_MAIN: u8 = 254;

/// A unicast route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNetwork,
    /// None for a route to a directly attached network.
    pub gateway: Option<IpAddr>,
    /// The output link's index in the socket's namespace.
    pub link_index: u32,
}

fn route_address(address: IpAddr) -> RouteAddress {
    match address {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

impl Netlink {
    /// The unicast routes of the main table that leave through `link_index`,
    /// both families.
    pub fn routes(&mut self, link_index: u32) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let replies = self
                .dump(RouteNetlinkMessage::GetRoute(request))
                .map_err(|f| f.into_error("list routes of link", link_index))?;
            for reply in replies {
                let RouteNetlinkMessage::NewRoute(message) = reply else {
                    continue;
                };
                if message.header.kind != RouteType::Unicast {
                    continue;
                }
                let (mut destination, mut gateway, mut oif, mut table) =
                    (None, None, None, u32::from(message.header.table));
                for attribute in &message.attributes {
                    match attribute {
                        RouteAttribute::Destination(a) => destination = ip_of(a),
                        RouteAttribute::Gateway(a) => gateway = ip_of(a),
                        RouteAttribute::Oif(index) => oif = Some(*index),
                        RouteAttribute::Table(t) => table = *t,
                        _ => {}
                    }
                }
                if oif != Some(link_index) || table != u32::from(RT_TABLE_MAIN) {
                    continue;
                }
                let unspecified = match family {
                    AddressFamily::Inet6 => IpAddr::from([0u16; 8]),
                    _ => IpAddr::from([0u8; 4]),
                };
                routes.push(Route {
                    destination: IpNetwork {
                        address: destination.unwrap_or(unspecified),
                        prefix: message.header.destination_prefix_length,
                    },
                    gateway,
                    link_index,
                });
            }
        }
        Ok(routes)
    }

    /// Adds a route, as `ip route add` does.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = family(route.destination.address);
        message.header.destination_prefix_length = route.destination.prefix;
        message.header.table = RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.kind = RouteType::Unicast;
        message.header.scope = match route.gateway {
            Some(_) => RouteScope::Universe,
            None => RouteScope::Link,
        };
        if route.destination.prefix > 0 {
            message
                .attributes
                .push(RouteAttribute::Destination(route_address(
                    route.destination.address,
                )));
        }
        if let Some(gateway) = route.gateway {
            message
                .attributes
                .push(RouteAttribute::Gateway(route_address(gateway)));
        }
        message
            .attributes
            .push(RouteAttribute::Oif(route.link_index));
        self.change(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| {
            let via = route
                .gateway
                .map(|g| format!(" via {g}"))
                .unwrap_or_default();
            f.into_error("add route", format!("{}{via}", route.destination))
        })
    }
}
