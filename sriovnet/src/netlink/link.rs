use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, Prop};
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd};

use super::socket::{Failure, Netlink};
use crate::{Error, MacAddress, Netns, Result};

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddress>,
    pub mtu: u32,
    pub up: bool,
    pub altnames: Vec<String>,
    /// The bus address of the device behind the link (`0000:01:10.0` for a
    /// PCI function), in any namespace: how a VF netdev is found after it
    /// was renamed or moved.
    pub parent_device: Option<String>,
    /// The link this one is stacked on (a macvlan's, VLAN's or ipvlan's
    /// lower device), by index in `lower_netns` or, if that is None, in
    /// this link's own namespace.
    pub lower: Option<u32>,
    /// The namespace of `lower` (its netnsid as this namespace knows it)
    /// when the lower device is in another namespace.
    pub lower_netns: Option<i32>,
    /// The bridge or bond this link is a port of.
    pub master: Option<u32>,
    /// Promiscuous and all-multicast modes as set by userspace (not the
    /// counts bridges and sockets add).
    pub promisc: bool,
    pub allmulti: bool,
}

impl Link {
    pub(crate) fn from_message(message: &LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: message.header.flags.contains(LinkFlags::Up),
            altnames: Vec::new(),
            parent_device: None,
            lower: None,
            lower_netns: None,
            master: None,
            promisc: message.header.flags.contains(LinkFlags::Promisc),
            allmulti: message.header.flags.contains(LinkFlags::Allmulti),
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Address(bytes) => link.mac = MacAddress::from_bytes(bytes),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::ParentDevName(name) => link.parent_device = Some(name.clone()),
                // A link that is its own lower device (a plain netdev) says nothing.
                LinkAttribute::Link(index) if *index != message.header.index => {
                    link.lower = Some(*index)
                }
                LinkAttribute::LinkNetNsId(id) => link.lower_netns = Some(*id),
                LinkAttribute::Controller(index) if *index != 0 => link.master = Some(*index),
                LinkAttribute::PropList(props) => {
                    for prop in props {
                        if let Prop::AltIfName(name) = prop {
                            link.altnames.push(name.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A GETLINK request for one link by name, with `mask` as its extension
/// filter (stats are always skipped: nothing here reads them).
pub(crate) fn get_link_by_name(name: &str, mask: &[LinkExtentMask]) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let mut mask = mask.to_vec();
    mask.push(LinkExtentMask::SkipStats);
    message.attributes.push(LinkAttribute::ExtMask(mask));
    RouteNetlinkMessage::GetLink(message)
}

/// The one LinkMessage of a GETLINK reply.
pub(crate) fn single_link(
    replies: Vec<RouteNetlinkMessage>,
    op: &'static str,
    target: &str,
) -> Result<LinkMessage> {
    replies
        .into_iter()
        .find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => Some(message),
            _ => None,
        })
        .ok_or_else(|| Failure::Decode("no link in the reply".into()).into_error(op, target))
}

fn not_found_as(name: &str) -> impl Fn(Failure) -> Error + '_ {
    move |failure| match failure {
        Failure::Kernel(Errno::ENODEV) => Error::NoSuchLink(name.to_string()),
        other => other.into_error("get link", name),
    }
}

impl Netlink {
    /// A link by name (the kernel also matches altnames).
    pub fn link(&mut self, name: &str) -> Result<Link> {
        let replies = self
            .get(get_link_by_name(name, &[]))
            .map_err(not_found_as(name))?;
        Ok(Link::from_message(&single_link(replies, "get link", name)?))
    }

    /// Every link in this socket's namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(request))
            .map_err(|f| f.into_error("list links", "in this namespace"))?;
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(message) => Some(Link::from_message(message)),
                _ => None,
            })
            .collect())
    }

    fn set_link(
        &mut self,
        link: &Link,
        op: &'static str,
        fill: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = link.index;
        fill(&mut message);
        self.change(RouteNetlinkMessage::SetLink(message), 0)
            .map_err(|f| f.into_error(op, &link.name))
    }

    /// Renames a link; the kernel refuses (EBUSY) while it is up.
    pub fn rename_link(&mut self, link: &Link, new_name: &str) -> Result<()> {
        self.set_link(link, "rename link", |m| {
            m.attributes
                .push(LinkAttribute::IfName(new_name.to_string()))
        })
    }

    /// Moves a link into another network namespace and names it `name`
    /// there, in one request: the kernel renames it after the move, so a
    /// name taken on either side never collides and only one rename is
    /// paid for (each costs an RCU grace period). If its current name is
    /// taken in the target, the kernel moves it as `name` directly. If
    /// `name` is taken there, the rename fails after the move: the link is
    /// then in the target under its old name. It gets a new index there.
    pub fn move_link_to_netns(&mut self, link: &Link, netns: &Netns, name: &str) -> Result<()> {
        let fd = netns.as_fd().as_raw_fd();
        self.set_link(link, "move link to netns", |m| {
            m.attributes.push(LinkAttribute::NetNsFd(fd));
            m.attributes.push(LinkAttribute::IfName(name.to_string()));
        })
    }

    pub fn set_link_mtu(&mut self, link: &Link, mtu: u32) -> Result<()> {
        self.set_link(link, "set mtu", |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    pub fn set_link_mac(&mut self, link: &Link, mac: MacAddress) -> Result<()> {
        self.set_link(link, "set mac", |m| {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()))
        })
    }

    pub fn set_link_up(&mut self, link: &Link) -> Result<()> {
        self.set_link_flags(link, "set link up", LinkFlags::Up)
    }

    pub fn set_link_down(&mut self, link: &Link) -> Result<()> {
        self.set_link_flags(link, "set link down", LinkFlags::empty())
    }

    pub fn set_link_promisc(&mut self, link: &Link, on: bool) -> Result<()> {
        let op = if on {
            "set promisc on"
        } else {
            "set promisc off"
        };
        self.change_flag(link, op, LinkFlags::Promisc, on)
    }

    pub fn set_link_allmulti(&mut self, link: &Link, on: bool) -> Result<()> {
        let op = if on {
            "set allmulticast on"
        } else {
            "set allmulticast off"
        };
        self.change_flag(link, op, LinkFlags::Allmulti, on)
    }

    fn set_link_flags(&mut self, link: &Link, op: &'static str, flags: LinkFlags) -> Result<()> {
        self.change_flag(link, op, LinkFlags::Up, flags.contains(LinkFlags::Up))
    }

    /// Sets or clears one flag, leaving the others as they are.
    fn change_flag(
        &mut self,
        link: &Link,
        op: &'static str,
        flag: LinkFlags,
        on: bool,
    ) -> Result<()> {
        self.set_link(link, op, |m| {
            m.header.flags = if on { flag } else { LinkFlags::empty() };
            m.header.change_mask = flag;
        })
    }

    /// Takes a link out of its bridge or bond.
    pub fn set_link_nomaster(&mut self, link: &Link) -> Result<()> {
        self.set_link(link, "release from master", |m| {
            m.attributes.push(LinkAttribute::Controller(0))
        })
    }

    /// Deletes a software link (a macvlan, VLAN, ipvlan, ...).
    pub fn delete_link(&mut self, link: &Link) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = link.index;
        self.change(RouteNetlinkMessage::DelLink(message), 0)
            .map_err(|f| f.into_error("delete link", &link.name))
    }

    /// Adds an alternative name (to give a VF back the ones it had).
    pub fn add_altname(&mut self, link: &Link, altname: &str) -> Result<()> {
        self.change(
            RouteNetlinkMessage::NewLinkProp(altname_message(link, altname)),
            0,
        )
        .map_err(|f| f.into_error("add altname", format!("{altname} to {}", link.name)))
    }

    /// Removes one alternative name. A VF keeps the altnames it was given in
    /// the host (udev often adds one), and a stale altname in a pod can
    /// collide with a name the pod needs.
    pub fn delete_altname(&mut self, link: &Link, altname: &str) -> Result<()> {
        self.change(
            RouteNetlinkMessage::DelLinkProp(altname_message(link, altname)),
            0,
        )
        .map_err(|f| f.into_error("delete altname", format!("{altname} of {}", link.name)))
    }
}

fn altname_message(link: &Link, altname: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = link.index;
    message
        .attributes
        .push(LinkAttribute::PropList(vec![Prop::AltIfName(
            altname.to_string(),
        )]));
    message
}
