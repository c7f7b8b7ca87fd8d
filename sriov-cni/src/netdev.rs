//! Moving a kernel VF netdev into a pod's namespace and bringing it home.

use sriovnet::{Errno, Link, MacAddress, Netlink, Netns, PciAddress};

use crate::host::Host;
use crate::log::Log;
use crate::state::NetdevState;
use crate::Result;

/// A name no other link has: the VF carries it while it crosses between
/// namespaces, so neither side's names can collide with it.
pub fn transit_name(device: PciAddress) -> String {
    format!(
        "vf{:04x}{:02x}{:02x}{:x}",
        device.domain, device.bus, device.device, device.function
    )
}

/// Down, renamed to its transit name, stripped of altnames (they would
/// collide in the pod as names do) and moved into `pod`. Returns a socket
/// inside the pod and the link there.
pub fn move_to_pod(
    host: &mut Netlink,
    name: &str,
    device: PciAddress,
    pod: &Netns,
) -> Result<(Netlink, Link)> {
    let mut link = host.link(name)?;
    if link.up {
        // igbvf refuses a rename while up.
        host.set_link_down(&link)?;
    }
    let transit = transit_name(device);
    if link.name != transit {
        host.rename_link(&link, &transit)?;
        link.name = transit.clone();
    }
    for altname in &link.altnames {
        host.delete_altname(&link, altname)?;
    }
    host.move_link_to_netns(&link, pod)?;
    let mut in_pod = Netlink::open_in(pod)?;
    let link = in_pod.link(&transit)?;
    Ok((in_pod, link))
}

/// Finds the VF in a namespace: by its PCI address; else by its transit
/// name, which only it carries; else, where the kernel does not report the
/// parent device, by `name` if the link has one of the MACs the VF can have.
/// A pod's own interfaces are never taken for the VF.
pub fn find(
    netlink: &mut Netlink,
    device: PciAddress,
    name: &str,
    macs: &[MacAddress],
) -> Result<Option<Link>> {
    let pci = device.to_string();
    let transit = transit_name(device);
    let links = netlink.links()?;
    let by_parent = links
        .iter()
        .find(|l| l.parent_device.as_deref() == Some(pci.as_str()));
    let by_transit = links.iter().find(|l| l.name == transit);
    let by_name = links.iter().find(|l| {
        l.name == name && l.parent_device.is_none() && l.mac.is_some_and(|m| macs.contains(&m))
    });
    Ok(by_parent.or(by_transit).or(by_name).cloned())
}

/// Brings the VF netdev back to the host namespace, down, and returns it
/// (None if the VF has no netdev any more). It may be in the pod, or already
/// back in the host
/// under a kernel-given name when the pod's namespace was deleted first.
pub fn bring_to_host(
    host: &Host,
    device: PciAddress,
    pod_ifname: &str,
    netns: &str,
    original: &NetdevState,
    pod_mac: Option<MacAddress>,
    log: &Log,
) -> Result<Option<Link>> {
    let mut netlink = Netlink::open()?;
    let transit = transit_name(device);
    let original_mac: Option<MacAddress> = original.mac.as_deref().and_then(|m| m.parse().ok());
    if let Ok(pod) = Netns::open(netns) {
        let mut in_pod = Netlink::open_in(&pod)?;
        let macs: Vec<MacAddress> = pod_mac.into_iter().chain(original_mac).collect();
        if let Some(link) = find(&mut in_pod, device, pod_ifname, &macs)? {
            in_pod.set_link_down(&link)?;
            if link.name != transit {
                in_pod.rename_link(&link, &transit)?;
            }
            let link = in_pod.link(&transit)?;
            in_pod.move_link_to_netns(&link, &Netns::current()?)?;
        }
    }
    // In the host now, under the transit name, its original name, or the
    // name the kernel gave it when the namespace went away.
    let mut candidates = host.sysfs.netdev_names(device).unwrap_or_default();
    candidates.extend([transit, original.name.clone()]);
    let mut found = None;
    for name in &candidates {
        match netlink.link(name) {
            Ok(link)
                if link
                    .parent_device
                    .as_deref()
                    .is_none_or(|p| p == device.to_string()) =>
            {
                found = Some(link);
                break;
            }
            Ok(_) | Err(sriovnet::Error::NoSuchLink(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(link) = found else {
        log.warning(&format!(
            "VF {device} has no netdev any more; nothing to bring back"
        ));
        return Ok(None);
    };
    if link.up {
        netlink.set_link_down(&link)?;
    }
    Ok(Some(link))
}

/// Gives a VF netdev in the host its original name, MAC, MTU, altnames and
/// admin state. Runs after the PF side is restored: igb refuses a VF's own
/// MAC change while the PF still holds an administrative MAC for it.
pub fn restore(mut link: Link, original: &NetdevState, log: &Log) -> Result<()> {
    let mut netlink = Netlink::open()?;
    let original_mac: Option<MacAddress> = original.mac.as_deref().and_then(|m| m.parse().ok());
    if link.name != original.name {
        match netlink.rename_link(&link, &original.name) {
            Ok(()) => link.name = original.name.clone(),
            Err(e) if e.errno() == Some(Errno::EEXIST) => log.warning(&format!(
                "{} is taken in the host; the VF stays {}",
                original.name, link.name
            )),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(mac) = original_mac.filter(|m| link.mac != Some(*m)) {
        netlink.set_link_mac(&link, mac)?;
    }
    if link.mtu != original.mtu {
        netlink.set_link_mtu(&link, original.mtu)?;
    }
    for altname in original
        .altnames
        .iter()
        .filter(|a| !link.altnames.contains(a))
    {
        netlink.add_altname(&link, altname)?;
    }
    if original.up {
        netlink.set_link_up(&link)?;
    }
    Ok(())
}

/// Opens and closes a VF's netdev in the host namespace (see the igb MAC
/// quirk in `release`).
pub fn toggle_in_host(host: &Host, device: PciAddress) -> Result<()> {
    let mut netlink = Netlink::open()?;
    for name in host.sysfs.netdev_names(device)? {
        let link = netlink.link(&name)?;
        netlink.set_link_up(&link)?;
        netlink.set_link_down(&link)?;
    }
    Ok(())
}
