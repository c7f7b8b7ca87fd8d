//! DEL: idempotent, and never failing because something is already gone.

use sriovnet::{Netlink, Netns};

use crate::config::NetConf;
use crate::env::Env;
use crate::host::Host;
use crate::log::Log;
use crate::release::release;
use crate::state::Store;
use crate::Result;
use crate::{ipam, netdev};

pub fn del(env: &Env, conf: &NetConf, stdin: &[u8], host: &Host, log: &Log) -> Result<()> {
    env.require_attachment(false)?;
    let store = Store::new(&host.state_dir);
    let ours =
        |r: &crate::state::Record| r.container_id == env.container_id && r.ifname == env.ifname;
    let (record, _lock) = match conf.device_id {
        Some(device) => {
            let lock = store.lock(device)?;
            // A record of another container means the VF has moved on to a
            // new pod: it is not ours to touch.
            (store.load(&device.to_string())?.filter(ours), Some(lock))
        }
        None => (store.all()?.into_iter().find(ours), None),
    };
    match record {
        Some(record) => release(host, &store, &record, &env.args_text, log),
        None => {
            // No record (the node rebooted, or ADD never got that far): bring
            // the VF out of the pod if it is there, and release IPAM.
            if let (Some(device), Ok(pod)) = (conf.device_id, Netns::open(&env.netns)) {
                let mut in_pod = Netlink::open_in(&pod)?;
                if let Some(link) = netdev::find(&mut in_pod, device, &[env.ifname.as_str()], &[])?
                    .filter(|l| l.parent_device.as_deref() == Some(device.to_string().as_str()))
                {
                    log.info(&format!(
                        "no record of {device}; moving it back to the host"
                    ));
                    in_pod.set_link_down(&link)?;
                    // Its host name is unknown: it comes back under its
                    // transit name, which no other link has.
                    let name = netdev::transit_name(device);
                    in_pod.move_link_to_netns(&link, &Netns::current()?, &name)?;
                }
            }
            match &conf.ipam {
                Some(plugin) => {
                    ipam::run(&ipam::Call::for_env(plugin, "DEL", env, stdin)).map(drop)
                }
                None => Ok(()),
            }
        }
    }
}
