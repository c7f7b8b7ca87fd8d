//! CHECK: the attachment is still what ADD made, in the pod and on the PF.

use sriovnet::{Netlink, Netns, Route};

use crate::cni::result::CniResult;
use crate::context::Ctx;
use crate::netdev;
use crate::release::show_mac;
use crate::state::Store;
use crate::vf_config;
use crate::{Error, Result};

fn mismatch(text: String) -> Error {
    Error::Mismatch(text)
}

pub fn check(ctx: &mut Ctx) -> Result<()> {
    let (env, conf) = (ctx.env, ctx.conf);
    env.require_attachment(true)?;
    let device = conf.require_device()?;
    ctx.virtual_function(device)?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::Config("CHECK needs prevResult".into()))?;
    let prev = CniResult::parse(prev)?;
    let store = Store::new(&ctx.host.state_dir);
    let _lock = store.lock(device)?;
    let record = store
        .load(&device.to_string())?
        .filter(|r| r.is_for(&env.container_id, &env.ifname))
        .ok_or_else(|| {
            mismatch(format!(
                "no attachment of {device} to {} as {}",
                env.container_id, env.ifname
            ))
        })?;

    if !record.userspace {
        let pod = Netns::open(&env.netns).map_err(|e| Error::UnknownContainer(e.to_string()))?;
        let mut in_pod = Netlink::open_in(&pod)?;
        let link = match in_pod.link(&env.ifname) {
            Ok(link) => link,
            Err(sriovnet::Error::NoSuchLink(_)) => {
                return Err(mismatch(format!("the pod has no interface {}", env.ifname)))
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(parent) = link
            .parent_device
            .as_deref()
            .filter(|p| *p != device.to_string())
        {
            return Err(mismatch(format!(
                "{} is device {parent}, not {device}",
                env.ifname
            )));
        }
        let expected_mac = prev
            .interfaces
            .iter()
            .find(|i| i.name == env.ifname)
            .and_then(|i| i.mac);
        if let Some(mac) = expected_mac.filter(|m| link.mac != Some(*m)) {
            return Err(mismatch(format!(
                "{} has MAC {}, the result says {mac}",
                env.ifname,
                show_mac(link.mac)
            )));
        }
        if let Some(mtu) = conf.mtu.filter(|m| *m != link.mtu) {
            return Err(mismatch(format!(
                "{} has MTU {}, the config says {mtu}",
                env.ifname, link.mtu
            )));
        }
        let additions = netdev::pod_additions(&in_pod.links()?, &link, record.netdev.as_ref());
        if !additions.is_empty() {
            return Err(mismatch(format!(
                "{}; DEL will undo it",
                additions.join(", ")
            )));
        }
        let addresses = in_pod.addresses(&link)?;
        if let Some(ip) = prev.ips.iter().find(|ip| !addresses.contains(&ip.address)) {
            return Err(mismatch(format!(
                "{} lacks address {}",
                env.ifname, ip.address
            )));
        }
        let routes = in_pod.routes(link.index)?;
        for route in &prev.routes {
            let wanted = Route {
                destination: route.destination,
                gateway: prev.route_gateway(route),
                link_index: link.index,
            };
            if !routes.contains(&wanted) {
                let via = wanted
                    .gateway
                    .map(|g| format!(" via {g}"))
                    .unwrap_or_default();
                return Err(mismatch(format!(
                    "{} lacks route {}{via}",
                    env.ifname, route.destination
                )));
            }
        }
    }

    if let Some(pf_side) = &record.pf_side {
        let original = pf_side.to_state(record.vf_index)?;
        let current = ctx.netlink.vf_state(&record.pf, record.vf_index)?;
        for (_, setting) in vf_config::requested(conf, conf.effective_mac(&env.args), &original) {
            if !vf_config::holds(&current, &setting) {
                return Err(mismatch(format!(
                    "{} vf {}: the config asks for {setting}, the PF reports {current}",
                    record.pf, record.vf_index
                )));
            }
        }
    }
    Ok(())
}
