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
                Some(device) => del_device(ctx, &store, device),
                None => release_ipam(ctx),
            },
        };
    };
    del_device(ctx, &store, device)
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
            release(ctx, store, &record, &args, Lease::Release)
        }
        Some(other) => {
            // The VF belongs to another attachment (a newer pod, or this
            // pod under another name): not ours to touch.
            ctx.log.info(&format!(
                "{device} is attached to container {} as {}; this DEL releases only IPAM",
                other.container_id, other.ifname
            ));
            release_ipam(ctx)
        }
        None => {
            let Some(vf) = vf else {
                return release_ipam(ctx);
            };
            ctx.refuse_uplink(&vf)?;
            let pf = ctx.host.sysfs.netdev_names(vf.pf)?.into_iter().next();
            let adopted = match &pf {
                // A cache that cannot be read must not block the pod's
                // teardown: the VF is released as one with no record.
                Some(pf) => go_cache::adopt(ctx, store, &vf, pf).unwrap_or_else(|e| {
                    ctx.log
                        .error(&format!("{e}; releasing {device} without it"));
                    None
                }),
                None => None,
            };
            match adopted {
                Some(record) => {
                    let args = ctx.env.args_text.clone();
                    release(ctx, store, &record, &args, Lease::Release)
                }
                None => {
                    if let Some(other) = go_cache::holder(ctx, device) {
                        ctx.log.info(&format!(
                            "{device} is attached by the Go sriov-cni ({other}); this DEL releases only IPAM"
                        ));
                    } else {
                        take_back_unrecorded(ctx, device)?;
                    }
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
