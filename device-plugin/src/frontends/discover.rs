//! `sriov-device-plugin discover`: the pools this host would advertise.

use serde_json::{json, Value};
use sriovnet::Sysfs;

use crate::core::health;
use crate::core::pool::Pool;

fn opt<T: ToString>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| json!(v.to_string()))
}

/// What the report says of a device's health.
fn health_word(healthy: bool) -> &'static str {
    if healthy {
        "Healthy"
    } else {
        "Unhealthy"
    }
}

/// The pools with each member's health read from the tree.
fn with_health(sysfs: &Sysfs, pools: &[Pool]) -> Vec<Pool> {
    let mut pools = pools.to_vec();
    for pool in &mut pools {
        health::mark(sysfs, &mut pool.members);
    }
    pools
}

pub fn to_json(sysfs: &Sysfs, pools: &[Pool]) -> Value {
    let pools: Vec<Value> = with_health(sysfs, pools)
        .iter()
        .map(|pool| {
            let devices: Vec<Value> = pool
                .members
                .iter()
                .map(|m| {
                    let d = &m.device;
                    json!({
                        "pciAddress": d.address.to_string(),
                        "pfName": d.pf_name,
                        "pfPciAddress": opt(d.pf_address),
                        "vfIndex": d.vf_index,
                        "vendor": format!("{:04x}", d.vendor),
                        "device": format!("{:04x}", d.device),
                        "driver": d.driver,
                        "netdev": d.netdev,
                        "numaNode": d.numa_node,
                        "iommuGroup": d.iommu_group,
                        "health": health_word(m.healthy),
                    })
                })
                .collect();
            json!({ "resourceName": pool.config.resource_name(), "devices": devices })
        })
        .collect();
    json!({ "pools": pools })
}

pub fn to_table(sysfs: &Sysfs, pools: &[Pool]) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut rows = vec![[
        "RESOURCE", "DEVICE", "PF", "VF", "ID", "DRIVER", "NETDEV", "NUMA", "IOMMU", "HEALTH",
    ]
    .map(String::from)];
    for pool in &with_health(sysfs, pools) {
        for m in &pool.members {
            let d = &m.device;
            rows.push([
                pool.config.resource_name(),
                d.address.to_string(),
                dash(d.pf_name.clone()),
                dash(d.vf_index.map(|i| i.to_string())),
                format!("{:04x}:{:04x}", d.vendor, d.device),
                dash(d.driver.clone()),
                dash(d.netdev.clone()),
                dash(d.numa_node.map(|n| n.to_string())),
                dash(d.iommu_group.map(|g| g.to_string())),
                health_word(m.healthy).to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
