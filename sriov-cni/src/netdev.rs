//! Moving a kernel VF netdev into a pod's namespace and bringing it home,
//! with nothing of the pod left on it.

use sriovnet::{Errno, Link, MacAddress, Netlink, Netns, PciAddress, VirtualFunction};

use crate::cni::Failures;
use crate::log::Log;
use crate::state::{NetdevState, Record};
use crate::{Error, Result};

/// A name no other link has, for a VF whose host name is unknown (DEL
/// without a record) or taken.
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
    link: &Link,
    pod: &Netns,
    ifname: &str,
    log: &Log,
) -> Result<(Netlink, Link)> {
    if link.up {
        // igbvf refuses a rename while up.
        host.set_link_down(link)?;
    }
    for altname in &link.altnames {
        host.delete_altname(link, altname)?;
    }
    host.move_link_to_netns(link, pod, ifname)
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

/// Opens and closes a netdev once. igbvf takes the MAC its PF assigned, and
/// registers its own with the PF, only when it is closed.
pub fn cycle(netlink: &mut Netlink, link: &Link) -> Result<Link> {
    netlink.set_link_up(link)?;
    netlink.set_link_down(link)?;
    Ok(netlink.link(&link.name)?)
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

/// The links stacked on `vf` in its namespace (macvlan, ipvlan, VLAN, and
/// what is stacked on those in turn), lowest first.
pub fn uppers(links: &[Link], vf: &Link) -> Vec<Link> {
    let mut found: Vec<Link> = Vec::new();
    let mut lowers = vec![vf.index];
    while let Some(lower) = lowers.pop() {
        for link in links {
            let stacked = link.lower == Some(lower) && link.lower_netns.is_none();
            if stacked && link.index != vf.index && !found.iter().any(|f| f.index == link.index) {
                lowers.push(link.index);
                found.push(link.clone());
            }
        }
    }
    found
}

/// What the pod added to the VF that must not reach the next tenant, in
/// words for CHECK: upper devices, a master, altnames, modes.
pub fn pod_additions(links: &[Link], vf: &Link, original: Option<&NetdevState>) -> Vec<String> {
    let mut found: Vec<String> = uppers(links, vf)
        .iter()
        .map(|u| format!("{} is stacked on {}", u.name, vf.name))
        .collect();
    if let Some(master) = vf.master {
        let name = links
            .iter()
            .find(|l| l.index == master)
            .map_or_else(|| master.to_string(), |l| l.name.clone());
        found.push(format!("{} is a port of {name}", vf.name));
    }
    let (promisc, allmulti) = original.map_or((false, false), |o| (o.promisc, o.allmulti));
    if vf.promisc && !promisc {
        found.push(format!("{} is in promiscuous mode", vf.name));
    }
    if vf.allmulti && !allmulti {
        found.push(format!("{} receives all multicast", vf.name));
    }
    found
}

/// Undoes in the pod what the pod stacked on the VF: deletes its upper
/// devices (a macvlan left behind would stay bound to the VF after it moves,
/// and carry the old pod's traffic onto the next pod's VLAN), takes it out
/// of a bridge or bond, drops its altnames (a pod's altname would follow the
/// VF home, and one equal to a host name makes the move fail) and sets it
/// down.
pub fn strip_in_pod(in_pod: &mut Netlink, vf: &Link, log: &Log) -> Result<Link> {
    let links = in_pod.links()?;
    for upper in uppers(&links, vf) {
        log.info(&format!("deleting {}, stacked on {}", upper.name, vf.name));
        match in_pod.delete_link(&upper) {
            // Gone with a lower device deleted before it.
            Err(e) if e.errno() == Some(Errno::ENODEV) => {}
            other => other?,
        }
    }
    if vf.master.is_some() {
        in_pod.set_link_nomaster(vf)?;
    }
    for altname in &vf.altnames {
        in_pod.delete_altname(vf, altname)?;
    }
    in_pod.set_link_down(vf)?;
    Ok(in_pod.link(&vf.name)?)
}

/// Where the VF's netdev is at release, found before anything changes, so
/// that a VF out of reach keeps even its lease.
pub enum Found {
    /// In the pod, with a socket in the pod's namespace.
    InPod(Netlink, Link),
    /// In the host namespace (the pod's namespace was deleted, or an
    /// earlier DEL brought it home).
    InHost(Link),
    /// The VF has no netdev now (unbound, or on a userspace driver).
    NoNetdev,
}

/// Finds the VF's netdev for release: in the pod (by parent device,
/// transit name, or name and MAC), else in the host (by the names sysfs
/// gives it, its original, pod or transit name). Fails while the VF has a
/// netdev driver but its netdev is in neither: a pod moved it on to a third
/// namespace, and nothing may be released until it is back.
pub fn locate(
    netlink: &mut Netlink,
    vf: &VirtualFunction,
    record: &Record,
    original: &NetdevState,
    host_netdevs: &[String],
) -> Result<Found> {
    let macs = record_macs(record, original);
    if let Some(pod) = Netns::open(&record.netns).ok().filter(|p| !p.is_current()) {
        let mut in_pod = Netlink::open_in(&pod)?;
        let names = [record.ifname.as_str(), original.name.as_str()];
        if let Some(link) = find(&mut in_pod, vf.address, &names, &macs)? {
            return Ok(Found::InPod(in_pod, link));
        }
    }
    if let Some(link) = find_in_host(netlink, vf, record, original, host_netdevs)? {
        return Ok(Found::InHost(link));
    }
    if vf.netdev.is_none() && (vf.driver.is_none() || vf.is_userspace()) {
        return Ok(Found::NoNetdev);
    }
    Err(out_of_reach(vf, record))
}

/// The MACs the VF's netdev can have: the pod's, or its own.
fn record_macs(record: &Record, original: &NetdevState) -> Vec<MacAddress> {
    [record.pod_mac.as_deref(), original.mac.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|m| m.parse().ok())
        .collect()
}

/// The VF's netdev in the host namespace: under a name sysfs gives it, its
/// original name, the pod's name, or its transit name.
fn find_in_host(
    netlink: &mut Netlink,
    vf: &VirtualFunction,
    record: &Record,
    original: &NetdevState,
    known: &[String],
) -> Result<Option<Link>> {
    let macs = record_macs(record, original);
    let device = vf.address.to_string();
    let others = [
        original.name.clone(),
        record.ifname.clone(),
        transit_name(vf.address),
    ];
    for name in known.iter().chain(&others) {
        let link = match netlink.link(name) {
            Ok(link) => link,
            Err(sriovnet::Error::NoSuchLink(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let ours = match link.parent_device.as_deref() {
            Some(parent) => parent == device,
            None => known.contains(name) || link.mac.is_some_and(|m| macs.contains(&m)),
        };
        if ours {
            return Ok(Some(link));
        }
    }
    Ok(None)
}

fn out_of_reach(vf: &VirtualFunction, record: &Record) -> Error {
    Error::Host(format!(
        "VF {} (driver {}) is neither in the pod ({}) as {} nor in the host: \
         it was moved to another namespace; the record stays, and the next DEL brings it back",
        vf.address,
        vf.driver.as_deref().unwrap_or("none"),
        record.netns,
        record.ifname
    ))
}

/// Brings the VF netdev `locate` found back to the host namespace, down,
/// stripped of what the pod added, and returns it there.
pub fn bring_home(
    netlink: &mut Netlink,
    found: Found,
    vf: &VirtualFunction,
    record: &Record,
    original: &NetdevState,
    host_netdevs: impl Fn() -> Vec<String>,
    log: &Log,
) -> Result<Option<Link>> {
    let device = vf.address;
    let link = match found {
        Found::NoNetdev => {
            log.warning(&format!(
                "VF {device} has no netdev now (driver {}); nothing to bring back",
                vf.driver.as_deref().unwrap_or("none")
            ));
            return Ok(None);
        }
        Found::InHost(link) => link,
        Found::InPod(mut in_pod, link) => {
            let link = strip_in_pod(&mut in_pod, &link, log)?;
            let home = Netns::current()?;
            if let Err(e) = in_pod.move_link_to_netns(&link, &home, &original.name) {
                if e.errno() != Some(Errno::EEXIST) {
                    return Err(e.into());
                }
                // Its name is taken in the host: a kernel that checks before
                // the move left it in the pod; bring it under its transit
                // name, which nothing else has.
                log.warning(&format!(
                    "{e}: {} is taken in the host; bringing {device} home as {}",
                    original.name,
                    transit_name(device)
                ));
                let macs = record_macs(record, original);
                if let Some(link) = find(&mut in_pod, device, &[&link.name], &macs)? {
                    in_pod.move_link_to_netns(&link, &home, &transit_name(device))?;
                }
            }
            find_in_host(netlink, vf, record, original, &host_netdevs())?
                .ok_or_else(|| out_of_reach(vf, record))?
        }
    };
    if link.up {
        netlink.set_link_down(&link)?;
        return Ok(Some(netlink.link(&link.name)?));
    }
    Ok(Some(link))
}

/// Gives a VF netdev in the host its original name, MTU, altnames (and no
/// others), modes and admin state; `link` follows the rename. Its MAC is
/// restored before, with the PF.
pub fn restore(
    netlink: &mut Netlink,
    link: &mut Link,
    original: &NetdevState,
    log: &Log,
) -> Result<()> {
    let mut failures = Failures::default();
    if link.name != original.name {
        match netlink.rename_link(link, &original.name) {
            Ok(()) => link.name = original.name.clone(),
            Err(e) if e.errno() == Some(Errno::EEXIST) => log.warning(&format!(
                "{} is taken in the host; the VF stays {}",
                original.name, link.name
            )),
            Err(e) => failures.note(Err(e)),
        }
    }
    // 0: not known (a Go sriov-cni cache older than its MTU field).
    if original.mtu != 0 && link.mtu != original.mtu {
        failures.note(netlink.set_link_mtu(link, original.mtu));
    }
    for altname in link
        .altnames
        .iter()
        .filter(|a| !original.altnames.contains(a))
    {
        failures.note(netlink.delete_altname(link, altname));
    }
    for altname in original
        .altnames
        .iter()
        .filter(|a| !link.altnames.contains(a))
    {
        failures.note(netlink.add_altname(link, altname));
    }
    if link.promisc != original.promisc {
        failures.note(netlink.set_link_promisc(link, original.promisc));
    }
    if link.allmulti != original.allmulti {
        failures.note(netlink.set_link_allmulti(link, original.allmulti));
    }
    if original.up {
        failures.note(netlink.set_link_up(link));
    }
    failures.into_result()
}
