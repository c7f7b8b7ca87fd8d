//! ADD: check the device, record the VF, configure it, move it, run IPAM.
//! Any failure after the record is written undoes everything.

use serde_json::Value;
use sriovnet::{default_route_interfaces, Netlink, Netns, VirtualFunction};

use crate::config::NetConf;
use crate::env::Env;
use crate::host::Host;
use crate::log::Log;
use crate::release::release;
use crate::result::{CniResult, Interface};
use crate::state::{NetdevState, PfSide, Record, Store};
use crate::{ipam, netdev, vf_config};
use crate::{Error, Result};

pub fn add(env: &Env, conf: &NetConf, stdin: &[u8], host: &Host, log: &Log) -> Result<Value> {
    env.require_attachment(true)?;
    let device = conf.require_device()?;
    let store = Store::new(&host.state_dir);
    let _lock = store.lock(device)?;
    if let Some(existing) = store.load(&device.to_string())? {
        if existing.container_id == env.container_id && existing.ifname == env.ifname {
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
        log.warning(&format!(
            "{device} was left by sandbox {} whose namespace is gone; restoring it first",
            existing.container_id
        ));
        release(host, &store, &existing, "", log)?;
    }
    // The security boundary: only an SR-IOV VF of this host, never the
    // host's own uplink.
    let vf = host.sysfs.virtual_function(device)?;
    if let Some(name) = &vf.netdev {
        if default_route_interfaces(&host.proc_net)?.contains(name) {
            return Err(Error::Refused(format!(
                "{device} ({name}) carries the host's default route; it is not given to pods"
            )));
        }
    }
    if vf.netdev.is_none() && !vf.is_userspace() {
        return Err(Error::Refused(format!(
            "VF {device} has no netdev and no userspace driver (driver {})",
            vf.driver.as_deref().unwrap_or("none")
        )));
    }
    let pf = host
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
    log.debug("device checked and locked");

    let mut netlink = Netlink::open()?;
    let original = netlink
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
        Some(name) => Some(NetdevState::from(&netlink.link(name)?)),
        None => None,
    };
    let record = Record {
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
        config: String::from_utf8_lossy(stdin).into_owned(),
        cni_path: env.path.clone(),
        device_info_file: conf.device_info_file.clone(),
    };
    store.save(&record)?;
    log.debug("original state recorded");

    let attached = attach(
        env,
        conf,
        stdin,
        host,
        &vf,
        &pf,
        &settings,
        &pod,
        &mut netlink,
        log,
    );
    attached.map_err(|e| {
        log.error(&format!("ADD failed, rolling back: {e}"));
        if let Err(undo) = release(host, &store, &record, &env.args_text, log) {
            log.error(&format!(
                "rollback incomplete, the record stays for DEL: {undo}"
            ));
        }
        e
    })
}

#[allow(clippy::too_many_arguments)]
fn attach(
    env: &Env,
    conf: &NetConf,
    stdin: &[u8],
    host: &Host,
    vf: &VirtualFunction,
    pf: &str,
    settings: &[(&str, sriovnet::VfSetting)],
    pod: &Netns,
    netlink: &mut Netlink,
    log: &Log,
) -> Result<Value> {
    // IPAM runs in its own process while the VF is configured and moved.
    let call = conf
        .ipam
        .as_deref()
        .map(|plugin| ipam::Call::for_env(plugin, "ADD", env, stdin));
    let ipam = call.as_ref().map(ipam::start).transpose()?;

    let driver = host
        .sysfs
        .driver(vf.pf)?
        .unwrap_or_else(|| "unknown".into());
    for (name, setting) in settings {
        log.debug(&format!("{pf} vf {}: {name} {setting:?}", vf.index));
        vf_config::apply(netlink, pf, vf.index, *setting, &driver)?;
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
    let (mut in_pod, link) = netdev::move_to_pod(netlink, name, pod, &env.ifname, log)?;
    // A VF whose MAC its PF just set takes it when it comes up (igbvf
    // does); setting it on the netdev as well would cost a round trip to
    // the PF. Other VFs get it on the netdev, before or, if the PF set it
    // and the VF did not follow, after coming up.
    let pf_set_mac = settings.iter().any(|(name, _)| *name == "mac");
    if let Some(mac) = mac.filter(|m| !pf_set_mac && link.mac != Some(*m)) {
        in_pod.set_link_mac(&link, mac)?;
    }
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
                link.mac.map(|m| m.to_string()).unwrap_or_default()
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
