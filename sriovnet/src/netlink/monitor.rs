//! Link notifications: the kernel tells subscribers of RTNLGRP_LINK about
//! every link that appears, changes or goes away.

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use nix::errno::Errno;

use super::socket::{errno, receive, Failure};
use crate::{Error, Result};

const RTNLGRP_LINK: u32 = 1;

/// A blocking subscription to link events in the namespace it was opened
/// in; meant for a thread of its own.
pub struct LinkMonitor {
    socket: Socket,
}

/// What a wait for link events saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvents {
    /// These links appeared, changed or went away.
    Links(Vec<String>),
    /// The kernel dropped events (the socket overflowed): anything may have
    /// changed.
    Lost,
}

impl LinkMonitor {
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::Socket(errno(e)))?;
        socket.bind_auto().map_err(|e| Error::Socket(errno(e)))?;
        socket
            .add_membership(RTNLGRP_LINK)
            .map_err(|e| Error::Socket(errno(e)))?;
        Ok(LinkMonitor { socket })
    }

    /// Blocks until the kernel reports link events.
    pub fn wait(&mut self) -> Result<LinkEvents> {
        let datagram = match receive(&self.socket) {
            Ok(datagram) => datagram,
            Err(Failure::Kernel(Errno::ENOBUFS)) => return Ok(LinkEvents::Lost),
            Err(failure) => return Err(failure.into_error("wait for link events", "")),
        };
        let mut names = Vec::new();
        let mut rest = &datagram[..];
        while !rest.is_empty() {
            let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else {
                // An event this crate cannot parse still says a link changed.
                return Ok(LinkEvents::Lost);
            };
            let length = (message.header.length as usize).next_multiple_of(4).max(16);
            rest = rest.get(length..).unwrap_or_default();
            if let NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link),
            ) = message.payload
            {
                names.extend(link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                }));
            }
        }
        Ok(LinkEvents::Links(names))
    }
}
