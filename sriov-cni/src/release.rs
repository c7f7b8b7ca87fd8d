//! Undoing an attachment from its record: the one way back that DEL, GC and
//! a failed ADD all take.

use sriovnet::{Errno, Netlink, PciAddress};

use crate::host::Host;
use crate::log::Log;
use crate::state::{Record, Store};
use crate::{ipam, netdev, vf_config};
use crate::{Error, Result};

/// Puts the VF back as the record says it was, releases its IPAM lease and
/// drops the record. What is already gone (namespace, netdev, the VF
/// itself) is skipped; a real failure keeps the record so a retry can finish.
pub fn release(host: &Host, store: &Store, record: &Record, args: &str, log: &Log) -> Result<()> {
    let device: PciAddress = record
        .device_id
        .parse()
        .map_err(|_| Error::Decode(format!("state file: bad device {}", record.device_id)))?;
    let gone = !host.sysfs.pci_device(device).exists();
    let mut failures = Vec::new();
    // IPAM's DEL runs in its own process while the VF is put back.
    let conf = crate::config::NetConf::parse(record.config.as_bytes())?;
    let call = conf.ipam.as_deref().map(|plugin| ipam::Call {
        plugin,
        command: "DEL",
        container_id: &record.container_id,
        netns: &record.netns,
        ifname: &record.ifname,
        args,
        cni_path: &record.cni_path,
        config: record.config.as_bytes(),
    });
    let ipam = call
        .as_ref()
        .map(ipam::start)
        .transpose()
        .unwrap_or_else(|e| {
            failures.push(e);
            None
        });
    let mut netdev_home = None;
    if let (false, false, Some(original)) = (gone, record.userspace, &record.netdev) {
        let pod_mac = record.pod_mac.as_deref().and_then(|m| m.parse().ok());
        let (ifname, netns) = (&record.ifname, &record.netns);
        match netdev::bring_to_host(host, device, ifname, netns, original, pod_mac, log) {
            Ok(link) => netdev_home = link.map(|l| (l, original)),
            Err(e) => failures.push(e),
        }
    }
    log.debug("netdev in the host");
    if !gone {
        if let Err(e) = restore_pf_side(host, device, record, log) {
            failures.push(e);
        }
    }
    log.debug("PF side restored");
    if let Some((link, original)) = netdev_home {
        if let Err(e) = netdev::restore(link, original, log) {
            failures.push(e);
        }
        // Giving the netdev its own MAC back registers that MAC with the
        // PF (igb then reports it as the VF's); clear it again so the PF's
        // view is what it was. The VF registers its MAC anew when opened.
        if let Err(e) = restore_pf_side(host, device, record, log) {
            failures.push(e);
        }
    }
    log.debug("netdev restored");
    if let Some(Err(e)) = ipam.map(ipam::Running::finish) {
        failures.push(e);
    }
    if let Some(path) = &record.device_info_file {
        let _ = std::fs::remove_file(path);
    }
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => store.remove(&record.device_id),
    }
}

fn restore_pf_side(host: &Host, device: PciAddress, record: &Record, log: &Log) -> Result<()> {
    let Some(pf_side) = &record.pf_side else {
        return Ok(());
    };
    let original = pf_side.to_state(record.vf_index)?;
    let mut netlink = Netlink::open()?;
    let driver = host.sysfs.driver(device)?.unwrap_or_default();
    // Only what differs now: an ADD that failed half-way applied only some,
    // and a driver refuses even a no-op of a setting it does not support.
    let current = netlink.vf_state(&record.pf, record.vf_index).ok();
    for name in &record.changed {
        let Some(setting) = vf_config::original(name, &original) else {
            continue;
        };
        if current
            .as_ref()
            .is_some_and(|c| vf_config::holds(c, &setting))
        {
            continue;
        }
        match netlink.set_vf(&record.pf, record.vf_index, setting) {
            Ok(()) => {}
            // igb refuses to take back a MAC until the VF netdev has been
            // opened and closed once since the pod's MAC was set.
            Err(e) if name == "mac" && e.errno() == Some(Errno::EADDRNOTAVAIL) => {
                log.debug(&format!("{e}; cycling the VF netdev and retrying"));
                netdev::toggle_in_host(host, device)?;
                vf_config::apply(&mut netlink, &record.pf, record.vf_index, setting, &driver)?;
            }
            Err(e) => return Err(Error::VfSetting(format!("restore: {e}"))),
        }
    }
    Ok(())
}
