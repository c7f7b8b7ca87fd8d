//! Device health as the tree says it: a device is unhealthy when the link
//! of the PF it belongs to is down. Read from `class/net/<pf>/operstate`
//! and `carrier`, so a daemon pointed at a fake tree reports that tree.

use std::collections::HashMap;

use sriovnet::Sysfs;

use crate::core::pool::Member;

/// Sets each member's health from the tree: a device is healthy unless the
/// link of its PF (its own, for a PF) is down. A PF's link is read once for
/// all of its VFs.
pub fn mark(sysfs: &Sysfs, members: &mut [Member]) {
    let mut links: HashMap<String, bool> = HashMap::new();
    for member in members {
        let device = &member.device;
        member.healthy = match device.pf_name.as_deref().or(device.netdev.as_deref()) {
            Some(name) => *links
                .entry(name.to_string())
                .or_insert_with(|| sysfs.link_up(name)),
            None => true,
        };
    }
}
