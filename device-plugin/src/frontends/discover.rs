//! `sriov-device-plugin discover`: the pools this host would advertise.

use serde::Serialize;
use sriovnet::Sysfs;

use crate::core::health;
use crate::core::pool::Pool;

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

/// The JSON report: typed, so that 2048 devices cost no map per device.
#[derive(Serialize)]
struct Report<'a> {
    pools: Vec<PoolReport<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolReport<'a> {
    resource_name: String,
    devices: Vec<DeviceReport<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceReport<'a> {
    pci_address: String,
    pf_name: Option<&'a str>,
    pf_pci_address: Option<String>,
    vf_index: Option<u32>,
    vendor: String,
    device: String,
    driver: Option<&'a str>,
    netdev: Option<&'a str>,
    numa_node: Option<u32>,
    iommu_group: Option<u32>,
    health: &'static str,
}

pub fn to_json(sysfs: &Sysfs, pools: &[Pool]) -> String {
    let pools = with_health(sysfs, pools);
    let report = Report {
        pools: pools
            .iter()
            .map(|pool| PoolReport {
                resource_name: pool.config.resource_name(),
                devices: pool
                    .members
                    .iter()
                    .map(|m| {
                        let d = &m.device;
                        DeviceReport {
                            pci_address: d.address.to_string(),
                            pf_name: d.pf_name.as_deref(),
                            pf_pci_address: d.pf_address.map(|a| a.to_string()),
                            vf_index: d.vf_index,
                            vendor: format!("{:04x}", d.vendor),
                            device: format!("{:04x}", d.device),
                            driver: d.driver.as_deref(),
                            netdev: d.netdev.as_deref(),
                            numa_node: d.numa_node,
                            iommu_group: d.iommu_group,
                            health: health_word(m.healthy),
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string(&report).unwrap_or_default()
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
