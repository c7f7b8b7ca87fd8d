//! ADD: check the device, record the VF, configure it, move it, run IPAM.
//! Any failure after the record is written undoes everything.

use serde_json::Value;
use sriovnet::{Errno, Netns, VfSetting, VirtualFunction};

use crate::cni::result::{CniResult, Interface};
use crate::config::NetConf;
use crate::context::Ctx;
use crate::release::{release, show_mac, Lease};
use crate::state::{NetdevState, PfSide, Record, Store};
use crate::{ipam, netdev, vf_config};
use crate::{Error, Result};

pub fn add(ctx: &mut Ctx) -> Result<Value> {
    let (env, conf) = (ctx.env, ctx.conf);
    env.require_attachment(true)?;
    let device = conf.require_device()?;
    // The security boundary, before anything is locked or written: only an
    // SR-IOV VF of this host, never the host's own uplink.
    let vf = ctx.virtual_function(device)?;
    ctx.refuse_uplink(&vf)?;
    if vf.netdev.is_none() && !vf.is_userspace() {
        return Err(Error::Refused(format!(
            "VF {device} has no netdev and no userspace driver (driver {})",
            vf.driver.as_deref().unwrap_or("none")
        )));
    }
    if conf.reset_on_release && !ctx.host.sysfs.pci_device(device).join("reset").exists() {
        return Err(Error::Refused(format!(
            "resetOnRelease: VF {device} has no function reset (no reset file in sysfs)"
        )));
    }
    let store = Store::new(&ctx.host.state_dir);
    let _lock = store.lock(device)?;
    if let Some(existing) = store.load(&device.to_string())? {
        if existing.is_for(&env.container_id, &env.ifname) {
            return Err(Error::Config(format!(
                "{device} is already attached to container {} as {}",
                existing.container_id, existing.ifname
            )));
        }
        if Netns::open(&existing.netns).is_ok() {
            return Err(Error::TryAgainLater(format!(
                "{device} is attached to sandbox {} ({}), which is still alive",
                existing.container_id, existing.netns
            )));
        }
        ctx.log.warning(&format!(
            "{device} was left by sandbox {} whose namespace is gone; restoring it first",
            existing.container_id
        ));
        release(ctx, &store, &existing, "", Lease::Release)?;
    }
    let pf = ctx
        .host
        .sysfs
        .netdev_names(vf.pf)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Refused(format!(
                "PF {} of VF {device} has no netdev to configure it through",
                vf.pf
            ))
        })?;

    let pod = Netns::open(&env.netns).map_err(|e| Error::UnknownContainer(e.to_string()))?;
    ctx.log.debug("device checked and locked");

    let original = ctx
        .netlink
        .vf_states(&pf)?
        .into_iter()
        .find(|s| s.index == vf.index);
    let mac = conf.effective_mac(&env.args);
    let settings = match &original {
        Some(state) => vf_config::requested(conf, mac, state),
        None => Vec::new(),
    };
    if original.is_none()
        && (mac.is_some()
            || conf.vlan.is_some()
            || conf.spoof_check.is_some()
            || conf.trust.is_some()
            || conf.link_state.is_some()
            || conf.min_tx_rate.is_some()
            || conf.max_tx_rate.is_some())
    {
        return Err(Error::VfSetting(format!(
            "{pf} reports no vf {}; its VF settings cannot be changed",
            vf.index
        )));
    }
    let netdev_state = match &vf.netdev {
        Some(name) => Some(NetdevState::from(&ctx.netlink.link(name)?)),
        None => None,
    };
    let record = Record {
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        device_id: device.to_string(),
        pf: pf.clone(),
        vf_index: vf.index,
        userspace: vf.is_userspace(),
        pf_side: original.as_ref().map(PfSide::from),
        changed: settings.iter().map(|(name, _)| name.to_string()).collect(),
        pod_mac: mac.map(|m| m.to_string()),
        netdev: netdev_state,
        ipam: conf.ipam.clone(),
        config: String::from_utf8_lossy(ctx.stdin).into_owned(),
        cni_path: env.path.clone(),
        device_info_file: conf.device_info_file.clone(),
        reset_on_release: conf.reset_on_release,
    };
    store.save(&record)?;
    ctx.log.debug("original state recorded");

    let mut lease = Lease::NeverTaken;
    attach(ctx, &vf, &pf, &settings, &pod, &mut lease).map_err(|e| {
        ctx.log.error(&format!("ADD failed, rolling back: {e}"));
        let args = ctx.env.args_text.clone();
        if let Err(undo) = release(ctx, &store, &record, &args, lease) {
            ctx.log.error(&format!("rollback incomplete: {undo}"));
        }
        e
    })
}

/// Everything after the record: PF side, the move, IPAM. `lease` says
/// whether IPAM's ADD was started, so a rollback knows whether to release.
fn attach(
    ctx: &mut Ctx,
    vf: &VirtualFunction,
    pf: &str,
    settings: &[(&str, VfSetting)],
    pod: &Netns,
    lease: &mut Lease,
) -> Result<Value> {
    let (env, conf, log) = (ctx.env, ctx.conf, ctx.log);
    // IPAM runs in its own process while the VF is configured and moved.
    let call = conf
        .ipam
        .as_deref()
        .map(|plugin| ipam::Call::for_env(plugin, "ADD", env, ctx.stdin));
    let ipam = call.as_ref().map(ipam::start).transpose()?;
    if ipam.is_some() {
        *lease = Lease::Release;
    }

    let driver = ctx
        .host
        .sysfs
        .driver(vf.pf)?
        .unwrap_or_else(|| "unknown".into());
    for (name, setting) in settings {
        log.debug(&format!("{pf} vf {}: {name} {setting}", vf.index));
        vf_config::apply(&mut ctx.netlink, pf, vf.index, *setting, &driver)?;
    }
    log.debug("PF-side settings applied");

    let mac = conf.effective_mac(&env.args);
    let mut interface = Interface {
        name: env.ifname.clone(),
        mac,
        mtu: conf.mtu,
        sandbox: Some(env.netns.clone()),
        pci_id: Some(vf.address.to_string()),
    };
    let Some(name) = &vf.netdev else {
        // A userspace VF: the addresses are only returned.
        let mut result = ipam_result(ipam)?;
        result.interfaces = vec![interface];
        write_device_info(conf, vf)?;
        return Ok(result.to_json(&conf.cni_version));
    };
    let mut link = ctx.netlink.link(name)?;
    if link.up {
        ctx.netlink.set_link_down(&link)?;
        link = ctx.netlink.link(name)?;
    }
    // The MAC goes on the netdev while it is down in the host. A VF whose
    // PF just set it may not set it itself unless trusted (igbvf is then
    // refused); it takes the PF's on close, so open and close it once.
    let pf_set_mac = settings.iter().any(|(name, _)| *name == "mac");
    if let Some(mac) = mac.filter(|m| link.mac != Some(*m)) {
        match ctx.netlink.set_link_mac(&link, mac) {
            Ok(()) => link = ctx.netlink.link(name)?,
            Err(e) if pf_set_mac && e.errno() == Some(Errno::EADDRNOTAVAIL) => {
                link = netdev::cycle(&mut ctx.netlink, &link)?;
                log.debug(&format!(
                    "{e}; netdev cycled to take the PF's MAC: it has {}",
                    show_mac(link.mac)
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (mut in_pod, link) = netdev::move_to_pod(&mut ctx.netlink, &link, pod, &env.ifname, log)?;
    if let Some(mtu) = conf.mtu {
        in_pod.set_link_mtu(&link, mtu)?;
    }
    in_pod.set_link_up(&link)?;
    log.debug("netdev up");
    let mut link = in_pod.link(&env.ifname)?;
    if let Some(mac) = mac.filter(|m| link.mac != Some(*m)) {
        in_pod.set_link_mac(&link, mac)?;
        link = in_pod.link(&env.ifname)?;
        if link.mac != Some(mac) {
            return Err(Error::Host(format!(
                "{} has MAC {} after setting {mac}",
                env.ifname,
                show_mac(link.mac)
            )));
        }
    }
    interface.mac = link.mac;

    let mut result = ipam_result(ipam)?;
    log.debug("IPAM done");
    for ip in &result.ips {
        in_pod.add_address(&link, ip.address)?;
    }
    for route in &result.routes {
        in_pod.add_route(&sriovnet::Route {
            destination: route.destination,
            gateway: result.route_gateway(route),
            link_index: link.index,
        })?;
    }
    write_device_info(conf, vf)?;
    result.interfaces = vec![interface];
    Ok(result.to_json(&conf.cni_version))
}

fn ipam_result(ipam: Option<ipam::Running>) -> Result<CniResult> {
    match ipam.map(ipam::Running::finish).transpose()?.flatten() {
        Some(value) => CniResult::parse(&value),
        None => Ok(CniResult::default()),
    }
}

fn write_device_info(conf: &NetConf, vf: &VirtualFunction) -> Result<()> {
    match &conf.device_info_file {
        Some(path) => sriovnet::write_device_info(path, vf.address, Some(vf.pf))
            .map_err(|e| Error::Io(format!("write device info: {e}"))),
        None => Ok(()),
    }
}
