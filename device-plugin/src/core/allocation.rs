//! GetPreferredAllocation: which of the available devices to give. Devices
//! of one NUMA node first (the node of the devices that must be included,
//! else the one with most devices), then spread across PFs so one PF's
//! failure hurts a pod least, or packed onto as few PFs as possible.

use std::collections::{BTreeMap, HashMap};

use crate::core::pool::Member;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Spread,
    Pack,
}

pub fn preferred(
    available: &[String],
    must_include: &[String],
    size: usize,
    members: &HashMap<String, &Member>,
    policy: Policy,
) -> Vec<String> {
    let mut chosen: Vec<String> = must_include.iter().take(size).cloned().collect();
    let numa = |id: &String| members.get(id).and_then(|m| m.device.numa_node);
    let mut rest: Vec<&String> = available
        .iter()
        .filter(|id| !chosen.contains(id) && members.contains_key(*id))
        .collect();
    // The node to prefer: that of the devices already chosen, else the
    // node with the most devices available.
    let mut counts: BTreeMap<Option<u32>, usize> = BTreeMap::new();
    for id in &rest {
        *counts.entry(numa(id)).or_default() += 1;
    }
    let node = chosen
        .first()
        .map(numa)
        .or_else(|| {
            counts
                .iter()
                .max_by_key(|(node, n)| (**n, std::cmp::Reverse(**node)))
                .map(|(node, _)| *node)
        })
        .flatten();
    rest.sort_by_key(|id| {
        let m = &members[*id].device;
        (numa(id) != node, m.pf_address, m.vf_index, m.address)
    });
    let mut per_pf: HashMap<Option<sriovnet::PciAddress>, usize> = HashMap::new();
    for id in &chosen {
        *per_pf
            .entry(members.get(id).and_then(|m| m.device.pf_address))
            .or_default() += 1;
    }
    while chosen.len() < size && !rest.is_empty() {
        // Among the best NUMA group left, the PF with the fewest (spread)
        // or most (pack) devices chosen so far.
        let best_node = numa(rest[0]);
        let pick = rest
            .iter()
            .enumerate()
            .filter(|(_, id)| numa(id) == best_node)
            .min_by_key(|(i, id)| {
                let used = per_pf
                    .get(&members[**id].device.pf_address)
                    .copied()
                    .unwrap_or(0);
                let key = match policy {
                    Policy::Spread => used as i64,
                    Policy::Pack => -(used as i64),
                };
                (key, *i)
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        let id = rest.remove(pick);
        *per_pf.entry(members[id].device.pf_address).or_default() += 1;
        chosen.push(id.clone());
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::Device;

    fn member(address: &str, pf: &str, index: u32, numa: u32) -> Member {
        Member {
            device: Device {
                address: address.parse().unwrap(),
                vendor: 0x8086,
                device: 0x1889,
                driver: Some("iavf".into()),
                netdev: None,
                pf_name: None,
                pf_address: Some(pf.parse().unwrap()),
                pf_device: None,
                vf_index: Some(index),
                numa_node: Some(numa),
                iommu_group: None,
                link_type: None,
                acpi_index: None,
                rdma: false,
                pcie_root: None,
            },
            need_vhost_net: false,
            healthy: true,
        }
    }

    #[test]
    fn one_numa_node_then_spread_or_pack() {
        // PF a (node 0): 2 VFs; PF b (node 1): 2 VFs; PF c (node 1): 2 VFs.
        let all = [
            member("0000:01:10.0", "0000:01:00.0", 0, 0),
            member("0000:01:10.1", "0000:01:00.0", 1, 0),
            member("0000:02:10.0", "0000:02:00.0", 0, 1),
            member("0000:02:10.1", "0000:02:00.0", 1, 1),
            member("0000:03:10.0", "0000:03:00.0", 0, 1),
            member("0000:03:10.1", "0000:03:00.0", 1, 1),
        ];
        let members: HashMap<String, &Member> = all
            .iter()
            .map(|m| (m.device.address.to_string(), m))
            .collect();
        let available: Vec<String> = members.keys().cloned().collect();
        let pick = |must: &[&str], size, policy| {
            let must: Vec<String> = must.iter().map(|s| s.to_string()).collect();
            preferred(&available, &must, size, &members, policy)
        };
        // Node 1 has the most devices; spread puts one on each of its PFs.
        assert_eq!(
            pick(&[], 2, Policy::Spread),
            ["0000:02:10.0", "0000:03:10.0"]
        );
        assert_eq!(pick(&[], 2, Policy::Pack), ["0000:02:10.0", "0000:02:10.1"]);
        // A device that must be included picks the node.
        assert_eq!(
            pick(&["0000:01:10.1"], 2, Policy::Spread),
            ["0000:01:10.1", "0000:01:10.0"]
        );
        // More than one node holds: the rest come from the other node.
        assert_eq!(pick(&["0000:01:10.1"], 3, Policy::Spread).len(), 3);
        assert_eq!(pick(&[], 9, Policy::Spread).len(), 6);
    }
}
