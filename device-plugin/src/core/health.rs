//! Device health as the tree says it: a device is unhealthy when the link
//! of the PF it belongs to is down. Read from `class/net/<pf>/operstate`
//! and `carrier`, so a daemon pointed at a fake tree reports that tree.

use std::collections::HashMap;

use sriovnet::Sysfs;

use crate::core::pool::Member;

/// Whether a netdev's link is up. `unknown` (virtual and some NIC drivers
/// report it) counts as up; only a link known to be down is down.
pub fn link_up(sysfs: &Sysfs, netdev: &str) -> bool {
    let dir = sysfs.netdev(netdev);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_string());
    let operstate_down = read("operstate")
        .is_ok_and(|s| matches!(s.as_str(), "down" | "lowerlayerdown" | "notpresent"));
    let no_carrier = read("carrier").is_ok_and(|c| c == "0");
    !(operstate_down || no_carrier)
}

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
                .or_insert_with(|| link_up(sysfs, name)),
            None => true,
        };
    }
}
