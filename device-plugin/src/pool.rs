//! Pools: the configured resources with the devices each one gets. A device
//! goes to the first pool, and the first selector, that matches it.

use std::collections::HashSet;

use sriovnet::PciAddress;

use crate::config::ResourceConfig;
use crate::device::Device;

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub config: ResourceConfig,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub device: Device,
    /// The selector that took it asked for /dev/vhost-net and /dev/net/tun.
    pub need_vhost_net: bool,
}

/// Sorts `devices` into pools in config order; a device is never in two.
pub fn assign(resources: &[ResourceConfig], devices: &[Device]) -> Vec<Pool> {
    let mut taken: HashSet<PciAddress> = HashSet::new();
    resources
        .iter()
        .map(|config| {
            let mut members = Vec::new();
            for device in devices.iter().filter(|d| !taken.contains(&d.address)) {
                if let Some(selector) = config.selectors.iter().find(|s| s.matches(device)) {
                    members.push(Member {
                        device: device.clone(),
                        need_vhost_net: selector.need_vhost_net,
                    });
                }
            }
            taken.extend(members.iter().map(|m| m.device.address));
            Pool {
                config: config.clone(),
                members,
            }
        })
        .collect()
}
