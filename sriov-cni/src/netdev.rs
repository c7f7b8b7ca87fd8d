//! Moving a kernel VF netdev into a pod's namespace and bringing it home.

use sriovnet::{Errno, Link, MacAddress, Netlink, Netns, PciAddress};

use crate::host::Host;
use crate::log::Log;
use crate::state::NetdevState;
use crate::{Error, Result};

/// A name no other link has, for a VF whose host name is unknown (DEL
/// without a record).
pub fn transit_name(device: PciAddress) -> String {
    format!(
        "vf{:04x}{:02x}{:02x}{:x}",
        device.domain, device.bus, device.device, device.function
    )
}

/// Down, stripped of altnames (they would collide in the pod as names do)
/// and moved into `pod` as `ifname` in one request. Returns a socket inside
/// the pod and the link there.
pub fn move_to_pod(
    host: &mut Netlink,
    name: &str,
    pod: &Netns,
    ifname: &str,
    log: &Log,
) -> Result<(Netlink, Link)> {
    let link = host.link(name)?;
    if link.up {
        // igbvf refuses a rename while up.
        host.set_link_down(&link)?;
    }
    for altname in &link.altnames {
        host.delete_altname(&link, altname)?;
    }
    host.move_link_to_netns(&link, pod, ifname)
        .map_err(|e| match e.errno() {
            Some(Errno::EEXIST) => {
                Error::Host(format!("{e} (the pod already has an interface {ifname})"))
            }
            _ => e.into(),
        })?;
    log.debug("moved into the pod");
    let mut in_pod = Netlink::open_in(pod)?;
    let link = in_pod.link(ifname)?;
    Ok((in_pod, link))
}

/// Finds the VF in a namespace: by its PCI address; else by its transit
/// name, which only it carries; else, where the kernel does not report the
/// parent device, by `name` if the link has one of the MACs the VF can have.
/// A pod's own interfaces are never taken for the VF.
pub fn find(
    netlink: &mut Netlink,
    device: PciAddress,
    names: &[&str],
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
        names.contains(&l.name.as_str())
            && l.parent_device.is_none()
            && l.mac.is_some_and(|m| macs.contains(&m))
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
    let original_mac: Option<MacAddress> = original.mac.as_deref().and_then(|m| m.parse().ok());
    let macs: Vec<MacAddress> = pod_mac.into_iter().chain(original_mac).collect();
    if let Ok(pod) = Netns::open(netns) {
        let mut in_pod = Netlink::open_in(&pod)?;
        if let Some(link) = find(&mut in_pod, device, &[pod_ifname, &original.name], &macs)? {
            in_pod.set_link_down(&link)?;
            match in_pod.move_link_to_netns(&link, &Netns::current()?, &original.name) {
                Ok(()) => {}
                // Moved, under the pod's name: found below, and left so.
                Err(e) if e.errno() == Some(Errno::EEXIST) => {
                    log.warning(&format!("{e}: {} is taken in the host", original.name))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    // In the host now: under its original name, the name the kernel gave
    // it when the namespace went away (sysfs knows it), the pod's name, or
    // the transit name of an older ADD.
    let known = host.sysfs.netdev_names(device).unwrap_or_default();
    let others = [
        original.name.clone(),
        pod_ifname.to_string(),
        transit_name(device),
    ];
    let mut found = None;
    for name in known.iter().chain(&others) {
        match netlink.link(name) {
            Ok(link) => {
                let ours = match link.parent_device.as_deref() {
                    Some(parent) => parent == device.to_string(),
                    None => known.contains(name) || link.mac.is_some_and(|m| macs.contains(&m)),
                };
                if ours {
                    found = Some(link);
                    break;
                }
            }
            Err(sriovnet::Error::NoSuchLink(_)) => {}
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
