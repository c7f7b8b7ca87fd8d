//! DEL: idempotent, never failing because something is already gone, and
//! never reporting success while the VF is not home.

use sriovnet::{Netlink, Netns, PciAddress};

use crate::context::Ctx;
use crate::netdev;
use crate::release::{release, Lease};
use crate::state::Store;
use crate::Result;
use crate::{go_cache, ipam};

pub fn del(ctx: &mut Ctx) -> Result<()> {
    ctx.env.require_attachment(false)?;
    let store = Store::new(&ctx.host.state_dir);
    let (cid, ifname) = (ctx.env.container_id.clone(), ctx.env.ifname.clone());
    let Some(device) = ctx.conf.device_id else {
        // No device named: this attachment's record, wherever it is.
        return match store.all()?.into_iter().find(|r| r.is_for(&cid, &ifname)) {
            Some(record) => {
                let _lock = store.lock_existing(record.device_id.parse()?)?;
                match store.load(&record.device_id)? {
                    Some(record) if record.is_for(&cid, &ifname) => {
                        let args = ctx.env.args_text.clone();
                        release(ctx, &store, &record, &args, Lease::Release)
                    }
                    _ => Ok(()),
                }
            }
            // Perhaps an attachment the Go plugin made before the switch.
            None => match go_cache::device(ctx) {
                Some(device) => del_go_named(ctx, &store, device),
                None => release_ipam(ctx),
            },
        };
    };
    del_device(ctx, &store, device)
}

/// A DEL without a device whose Go cache names one. The cache is not
/// trusted: a device that is not an SR-IOV VF of this host, or is the
/// host's uplink, is refused as always, but that must not keep the pod's
/// IPAM lease forever.
fn del_go_named(ctx: &mut Ctx, store: &Store, device: PciAddress) -> Result<()> {
    if ctx.host.sysfs.pci_device(device).exists() {
        let checked = ctx
            .virtual_function(device)
            .and_then(|vf| ctx.refuse_uplink(&vf));
        if let Err(e) = checked {
            ctx.log.error(&format!(
                "the Go sriov-cni's cache of this attachment names {device}: {e}; releasing IPAM only"
            ));
            return release_ipam(ctx);
        }
    }
    del_device(ctx, store, device)
}

fn del_device(ctx: &mut Ctx, store: &Store, device: PciAddress) -> Result<()> {
    let (cid, ifname) = (ctx.env.container_id.clone(), ctx.env.ifname.clone());
    let exists = ctx.host.sysfs.pci_device(device).exists();
    // The security boundary comes before any lock or state is touched.
    let vf = if exists {
        Some(ctx.virtual_function(device)?)
    } else {
        None
    };
    let _lock = match &vf {
        Some(_) => Some(store.lock(device)?),
        None => store.lock_existing(device)?,
    };
    match store.load(&device.to_string())? {
        Some(record) if record.is_for(&cid, &ifname) => {
            let args = ctx.env.args_text.clone();
            release(ctx, store, &record, &args, Lease::Release)?;
            // An adoption interrupted before it removed the Go cache.
            go_cache::forget(ctx, device);
            Ok(())
        }
        Some(other) => {
            // The VF belongs to another attachment (a newer pod, or this
            // pod under another name): not ours to touch.
            ctx.log.info(&format!(
                "{device} is attached to container {} as {}; this DEL releases only IPAM",
                other.container_id, other.ifname
            ));
            go_cache::forget(ctx, device);
            release_ipam(ctx)
        }
        None => {
            let Some(vf) = vf else {
                return release_ipam(ctx);
            };
            ctx.refuse_uplink(&vf)?;
            if let Some(holder) = go_cache::held_elsewhere(ctx, device) {
                // Another Go attachment holds the VF: a cache of this one
                // naming it is stale.
                ctx.log.info(&format!(
                    "{device} is held by the Go sriov-cni's {holder}; this DEL releases only IPAM"
                ));
                go_cache::forget(ctx, device);
                return release_ipam(ctx);
            }
            let pf = ctx.host.sysfs.netdev_names(vf.pf)?.into_iter().next();
            let adopted = match &pf {
                Some(pf) => go_cache::adopt(ctx, store, &vf, pf)?,
                None => None,
            };
            match adopted {
                Some(record) => {
                    let args = ctx.env.args_text.clone();
                    release(ctx, store, &record, &args, Lease::Release)
                }
                None => {
                    take_back_unrecorded(ctx, device)?;
                    release_ipam(ctx)
                }
            }
        }
    }
}

/// No record (the node rebooted, or ADD never got that far): if the VF is
/// in the pod, bring it out, stripped of what the pod stacked on it, under
/// its transit name, since its host name is unknown. Only a link whose
/// parent device is the VF is taken, and never from the host's own
/// namespace.
fn take_back_unrecorded(ctx: &mut Ctx, device: PciAddress) -> Result<()> {
    let Some(pod) = Netns::open(&ctx.env.netns)
        .ok()
        .filter(|pod| !pod.is_current())
    else {
        return Ok(());
    };
    let mut in_pod = Netlink::open_in(&pod)?;
    let pci = device.to_string();
    let Some(link) = in_pod
        .links()?
        .into_iter()
        .find(|l| l.parent_device.as_deref() == Some(pci.as_str()))
    else {
        return Ok(());
    };
    ctx.log.info(&format!(
        "no record of {device}; moving it back to the host"
    ));
    let link = netdev::strip_in_pod(&mut in_pod, &link, ctx.log)?;
    in_pod.move_link_to_netns(&link, &Netns::current()?, &netdev::transit_name(device))?;
    Ok(())
}

fn release_ipam(ctx: &Ctx) -> Result<()> {
    match &ctx.conf.ipam {
        Some(plugin) => {
            ipam::run(&ipam::Call::for_env(plugin, "DEL", ctx.env, ctx.stdin)).map(drop)
        }
        None => Ok(()),
    }
}
