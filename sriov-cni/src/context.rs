//! What every command works with: the call's environment and config, the
//! host, the log, and one netlink socket in the host's namespace, opened
//! once per call and lent to each step.

use sriovnet::{Netlink, PciAddress, VirtualFunction};

use crate::cni::Env;
use crate::config::NetConf;
use crate::host::Host;
use crate::log::Log;
use crate::{Error, Result};

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub conf: &'a NetConf,
    /// The config as the runtime sent it: recorded, and passed to IPAM.
    pub stdin: &'a [u8],
    pub host: &'a Host,
    pub log: &'a Log,
    /// The host's namespace (the one the plugin runs in).
    pub netlink: Netlink,
}

impl<'a> Ctx<'a> {
    pub fn new(
        env: &'a Env,
        conf: &'a NetConf,
        stdin: &'a [u8],
        host: &'a Host,
        log: &'a Log,
    ) -> Result<Self> {
        Ok(Ctx {
            env,
            conf,
            stdin,
            host,
            log,
            netlink: Netlink::open()?,
        })
    }

    /// The security boundary, for every verb: `device` must be an SR-IOV VF
    /// of this host. Checked before anything is locked, read or changed.
    pub fn virtual_function(&self, device: PciAddress) -> Result<VirtualFunction> {
        Ok(self.host.sysfs.virtual_function(device)?)
    }

    /// Whether the VF's host netdev carries one of the host's default routes.
    pub fn refuse_uplink(&self, vf: &VirtualFunction) -> Result<()> {
        if let Some(name) = &vf.netdev {
            if sriovnet::default_route_interfaces(&self.host.proc_net)?.contains(name) {
                return Err(Error::Refused(format!(
                    "{} ({name}) carries the host's default route; it is not given to pods",
                    vf.address
                )));
            }
        }
        Ok(())
    }
}
