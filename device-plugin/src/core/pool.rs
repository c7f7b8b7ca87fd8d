//! Pools: the configured resources with the devices each one gets. A device
//! goes to the first pool, and the first selector, that matches it; a
//! pinned device (allocated to a pod before a config change) stays in the
//! pool it was allocated from, or in none if that pool is gone.

use std::collections::{HashMap, HashSet};

use sriovnet::PciAddress;

use crate::core::config::ResourceConfig;
use crate::core::inventory::Device;

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
    /// The PF's link is up (see `core::health`); a new member is healthy
    /// until the tree is read.
    pub healthy: bool,
}

/// Devices in use by pods, by the resource they were allocated from.
pub type Pins = HashMap<PciAddress, String>;

/// Sorts `devices` into pools in config order; a device is never in two.
pub fn assign(resources: &[ResourceConfig], devices: &[Device], pins: &Pins) -> Vec<Pool> {
    let mut taken: HashSet<PciAddress> = pins.keys().copied().collect();
    resources
        .iter()
        .map(|config| {
            let resource = config.resource_name();
            let mut members = Vec::new();
            for device in devices {
                let selected = match pins.get(&device.address) {
                    // Kept while in use, even if the selectors changed.
                    Some(pinned) if *pinned == resource => Some(
                        config
                            .selectors
                            .iter()
                            .find(|s| s.matches(device))
                            .is_some_and(|s| s.need_vhost_net),
                    ),
                    Some(_) => None,
                    None if taken.contains(&device.address) => None,
                    None => config
                        .selectors
                        .iter()
                        .find(|s| s.matches(device))
                        .map(|s| s.need_vhost_net),
                };
                if let Some(need_vhost_net) = selected {
                    members.push(Member {
                        device: device.clone(),
                        need_vhost_net,
                        healthy: true,
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
