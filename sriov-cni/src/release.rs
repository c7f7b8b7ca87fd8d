//! Undoing an attachment from its record: the one way back that DEL, GC, a
//! failed ADD and an ADD finding a dead sandbox's VF all take.
//!
//! Every step runs even when an earlier one failed, and every failure is
//! logged and returned. The record is removed only when the VF is home and
//! restored, or provably gone; otherwise it stays and the next DEL finishes
//! the job. An IPAM failure alone does not keep it: the VF is free again,
//! and the runtime's next DEL releases the lease through IPAM again.

use std::time::Instant;

use sriovnet::{Errno, Link, MacAddress, PciAddress, VfSetting, VirtualFunction};

use crate::cni::Failures;
use crate::context::Ctx;
use crate::netdev::{self, Found};
use crate::state::{Record, Store};
use crate::{ipam, vf_config};
use crate::{Error, Result};

/// Whether release asks the IPAM plugin to let the lease go. A rollback
/// whose IPAM ADD never started has no lease to release.
#[derive(Clone, Copy)]
pub enum Lease {
    Release,
    NeverTaken,
}

pub fn release(
    ctx: &mut Ctx,
    store: &Store,
    record: &Record,
    args: &str,
    lease: Lease,
) -> Result<()> {
    let what = format!(
        "{} of container {} ({})",
        record.device_id, record.container_id, record.ifname
    );
    // Where the VF is, before anything changes: while its netdev is out of
    // reach nothing is released, not even the lease (its address may still
    // be on the VF).
    let located = locate(ctx, record).inspect_err(|e| {
        ctx.log.error(&format!("release {what}: {e}"));
        ctx.log.warning(&format!(
            "nothing of {what} is released: the next DEL finishes the job"
        ));
    })?;

    let mut device_failures = Failures::default();
    let mut ipam_failures = Failures::default();
    // IPAM's DEL runs in its own process while the VF is put back.
    let plugin = match lease {
        Lease::Release => record.ipam_plugin(),
        Lease::NeverTaken => None,
    };
    let call = plugin.as_deref().map(|plugin| ipam::Call {
        plugin,
        command: "DEL",
        container_id: &record.container_id,
        netns: &record.netns,
        ifname: &record.ifname,
        args,
        cni_path: &record.cni_path,
        config: record.config.as_bytes(),
    });
    let running = match call.as_ref().map(ipam::start).transpose() {
        Ok(running) => running,
        Err(e) => {
            ipam_failures.note(Err(e));
            None
        }
    };
    if let Some((vf, found)) = located {
        match bring_home(ctx, record, &vf, found) {
            Ok(home) => restore_vf(ctx, record, &vf, home, &mut device_failures),
            Err(e) => device_failures.note(Err(e)),
        }
    }
    if let Some(running) = running {
        ipam_failures.note(running.finish().map(drop));
    }
    if let Some(path) = &record.device_info_file {
        let _ = std::fs::remove_file(path);
    }
    for e in device_failures.iter().chain(ipam_failures.iter()) {
        ctx.log.error(&format!("release {what}: {e}"));
    }
    if device_failures.is_empty() {
        store.remove(&record.device_id)?;
        ctx.log.debug(&format!("released {what}"));
    } else {
        ctx.log.warning(&format!(
            "the record of {what} stays: the next DEL finishes the job"
        ));
    }
    device_failures.extend(ipam_failures);
    device_failures.into_result()
}

/// The recorded VF and where its netdev is; None if its PCI device is gone.
fn locate(ctx: &mut Ctx, record: &Record) -> Result<Option<(VirtualFunction, Option<Found>)>> {
    let device: PciAddress = record.device_id.parse().map_err(|_| {
        Error::Decode(format!(
            "state file: {:?} is not a PCI address",
            record.device_id
        ))
    })?;
    if !ctx.host.sysfs.pci_device(device).exists() {
        ctx.log.info(&format!(
            "{device} is gone from the host; nothing to restore"
        ));
        return Ok(None);
    }
    let vf = ctx.virtual_function(device)?;
    let found = match (record.userspace, &record.netdev) {
        (false, Some(original)) => {
            let netdevs = ctx.host.sysfs.netdev_names(device).unwrap_or_default();
            Some(netdev::locate(
                &mut ctx.netlink,
                &vf,
                record,
                original,
                &netdevs,
            )?)
        }
        _ => None,
    };
    Ok(Some((vf, found)))
}

/// The VF's netdev in the host, down, if it has one and had one.
fn bring_home(
    ctx: &mut Ctx,
    record: &Record,
    vf: &VirtualFunction,
    found: Option<Found>,
) -> Result<Option<Link>> {
    let (Some(found), Some(original)) = (found, &record.netdev) else {
        return Ok(None);
    };
    let sysfs = &ctx.host.sysfs;
    let netdevs = || sysfs.netdev_names(vf.address).unwrap_or_default();
    let link = netdev::bring_home(
        &mut ctx.netlink,
        found,
        vf,
        record,
        original,
        netdevs,
        ctx.log,
    )?;
    ctx.log.debug("netdev in the host");
    Ok(link)
}

/// The VF as the record says it was, its netdev home: PF side, an
/// optional reset, the netdev's MAC, the rest of the netdev, then the PF's
/// view of the MAC.
fn restore_vf(
    ctx: &mut Ctx,
    record: &Record,
    vf: &VirtualFunction,
    home: Option<Link>,
    failures: &mut Failures,
) {
    failures.note(restore_pf_side(ctx, record));
    ctx.log.debug("PF side restored");
    if record.reset_on_release {
        failures.note(reset(ctx, vf.address));
    }
    failures.note(restore_netdev_mac(ctx, record, home.as_ref()));
    let mut link = None;
    if let (Some(home), Some(original)) = (home, &record.netdev) {
        match ctx.netlink.link(&home.name) {
            Ok(mut current) => {
                failures.note(netdev::restore(
                    &mut ctx.netlink,
                    &mut current,
                    original,
                    ctx.log,
                ));
                ctx.log.debug("netdev restored");
                link = ctx.netlink.link(&current.name).ok();
            }
            Err(e) => failures.note(Err(e)),
        }
    }
    // Last: igbvf registers its MAC with the PF again on an MTU change
    // while down, which would overwrite the view restored before it.
    failures.note(restore_pf_mac(ctx, record, link.as_ref()));
}

/// The PF-side settings ADD changed, but the MAC (see [`restore_netdev_mac`]):
/// only what differs now, since an ADD that failed half-way applied only
/// some, and a driver refuses even a no-op of a setting it does not support.
fn restore_pf_side(ctx: &mut Ctx, record: &Record) -> Result<()> {
    let Some(pf_side) = &record.pf_side else {
        return Ok(());
    };
    let original = pf_side.to_state(record.vf_index)?;
    let current = ctx.netlink.vf_state(&record.pf, record.vf_index).ok();
    let mut failures = Failures::default();
    for name in record.changed.iter().filter(|n| *n != "mac") {
        let Some(setting) = vf_config::original(name, &original) else {
            continue;
        };
        if current
            .as_ref()
            .is_some_and(|c| vf_config::holds(c, &setting))
        {
            continue;
        }
        let restored = ctx.netlink.set_vf(&record.pf, record.vf_index, setting);
        failures.note(restored.map_err(|e| Error::VfSetting(format!("restore: {e}"))));
    }
    failures.into_result()
}

/// The netdev's own MAC, as it was before ADD; the PF's view of it comes
/// back after the rest of the netdev, in [`restore_pf_mac`].
///
/// igb (like ixgbe and i40e) lets a VF change its own MAC only while the PF
/// holds no administrative MAC for it, and setting one from the PF is
/// itself administrative, so restoring the PF view first would lock the
/// netdev out of its own address. The order that works: clear the PF's MAC
/// (`00:00:00:00:00:00` lifts the lock), give the netdev its MAC (the VF
/// registers it with the PF), then set the PF's view to what it was. If the
/// VF is still refused, the PF assigns the MAC and the VF takes it on close.
fn restore_netdev_mac(ctx: &mut Ctx, record: &Record, link: Option<&Link>) -> Result<()> {
    let netdev_mac: Option<MacAddress> = record
        .netdev
        .as_ref()
        .and_then(|n| n.mac.as_deref())
        .and_then(|m| m.parse().ok());
    let (pf, index) = (record.pf.as_str(), record.vf_index);
    if record.pf_side.is_none() {
        // No PF view (the PF does not report the VF): only the netdev.
        if let (Some(link), Some(mac)) = (link, netdev_mac) {
            if link.mac != Some(mac) {
                ctx.netlink.set_link_mac(link, mac)?;
            }
        }
        return Ok(());
    }
    let stale = link
        .zip(netdev_mac)
        .filter(|(link, mac)| link.mac != Some(*mac));
    if let Some((link, mac)) = stale {
        let zero = MacAddress([0; 6]);
        if ctx.netlink.vf_state(pf, index)?.mac != zero {
            if let Err(e) = ctx.netlink.set_vf(pf, index, VfSetting::Mac(zero)) {
                ctx.log
                    .debug(&format!("{e}; setting the netdev's MAC anyway"));
            }
        }
        match ctx.netlink.set_link_mac(link, mac) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(Errno::EADDRNOTAVAIL) => {
                ctx.log.debug(&format!(
                    "{e}; assigning {mac} from the PF for the VF to take on close"
                ));
                ctx.netlink.set_vf(pf, index, VfSetting::Mac(mac))?;
                let link = netdev::cycle(&mut ctx.netlink, link)?;
                if link.mac != Some(mac) {
                    return Err(Error::Host(format!(
                        "{} has MAC {} after its PF assigned {mac}",
                        link.name,
                        show_mac(link.mac)
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The PF's view of the VF's MAC, as it was before ADD.
fn restore_pf_mac(ctx: &mut Ctx, record: &Record, link: Option<&Link>) -> Result<()> {
    let Some(pf_side) = &record.pf_side else {
        return Ok(());
    };
    let (pf, index) = (record.pf.as_str(), record.vf_index);
    let original = pf_side.to_state(index)?;
    if ctx.netlink.vf_state(pf, index)?.mac == original.mac {
        return Ok(());
    }
    let setting = VfSetting::Mac(original.mac);
    let restore = |e: sriovnet::Error| Error::VfSetting(format!("restore: {e}"));
    match ctx.netlink.set_vf(pf, index, setting) {
        Ok(()) => Ok(()),
        // Seen on igb after the pod's namespace was deleted: the PF takes
        // the MAC back once the VF netdev has been opened and closed.
        Err(e) => match link.filter(|_| e.errno() == Some(Errno::EADDRNOTAVAIL)) {
            Some(link) => {
                ctx.log
                    .debug(&format!("{e}; cycling the VF netdev and retrying"));
                netdev::cycle(&mut ctx.netlink, link)?;
                ctx.netlink.set_vf(pf, index, setting).map_err(restore)
            }
            None => Err(restore(e)),
        },
    }
}

pub fn show_mac(mac: Option<MacAddress>) -> String {
    mac.map_or_else(|| "none".into(), |m| m.to_string())
}

/// `resetOnRelease`: a PCI function reset (FLR where the device has it)
/// through sysfs, after the PF side is restored, so that nothing a pod left
/// in the VF's queues or filters reaches the next one.
fn reset(ctx: &Ctx, device: PciAddress) -> Result<()> {
    let path = ctx.host.sysfs.pci_device(device).join("reset");
    let start = Instant::now();
    std::fs::write(&path, "1")
        .map_err(|e| Error::Host(format!("reset {device} (write {}): {e}", path.display())))?;
    ctx.log.info(&format!(
        "reset {device} in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    ));
    Ok(())
}
