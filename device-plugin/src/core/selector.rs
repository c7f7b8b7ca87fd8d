//! Selectors: which devices a pool takes. Within one selector every field
//! must match (an absent or empty field matches all); within a field any
//! value may match. A pool's list of selectors matches if any does.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::core::inventory::Device;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub vendors: Vec<String>,
    pub devices: Vec<String>,
    pub drivers: Vec<String>,
    pub pci_addresses: Vec<String>,
    pub acpi_indexes: Vec<String>,
    pub pf_names: Vec<PfMatch>,
    pub root_devices: Vec<PfMatch>,
    pub link_types: Vec<String>,
    pub is_rdma: bool,
    /// Not a filter: the pool's devices come with /dev/vhost-net and /dev/net/tun.
    pub need_vhost_net: bool,
}

/// A `pfNames` / `rootDevices` entry: a PF by netdev name or PCI address,
/// optionally with the VF indexes it contributes (`ens1f0#0,2-7,9`).
#[derive(Debug, Clone, PartialEq)]
pub struct PfMatch {
    pub pf: String,
    pub vfs: Option<Vec<RangeInclusive<u32>>>,
}

impl PfMatch {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (pf, ranges) = match text.split_once('#') {
            Some((pf, ranges)) => (pf, Some(ranges)),
            None => (text, None),
        };
        if pf.is_empty() {
            return Err(format!("\"{text}\" names no PF"));
        }
        let vfs = match ranges {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|part| {
                        let bad =
                            || format!("\"{text}\": \"{part}\" is not a VF index or range a-b");
                        let (low, high) = part.split_once('-').unwrap_or((part, part));
                        let (low, high): (u32, u32) = (
                            low.trim().parse().map_err(|_| bad())?,
                            high.trim().parse().map_err(|_| bad())?,
                        );
                        if low > high {
                            return Err(bad());
                        }
                        Ok(low..=high)
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(PfMatch {
            pf: pf.to_string(),
            vfs,
        })
    }

    fn matches(&self, device: &Device) -> bool {
        let (Some(index), Some(address)) = (device.vf_index, device.pf_address) else {
            return false;
        };
        let named = device
            .pf_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&self.pf))
            || address.to_string().eq_ignore_ascii_case(&self.pf);
        named
            && self
                .vfs
                .as_ref()
                .is_none_or(|ranges| ranges.iter().any(|r| r.contains(&index)))
    }
}

fn any_of(values: &[String], value: Option<&str>) -> bool {
    values.is_empty() || value.is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v)))
}

impl Selector {
    pub fn matches(&self, d: &Device) -> bool {
        let hex = |n: u16| format!("{n:04x}");
        any_of(&self.vendors, Some(&hex(d.vendor)))
            && any_of(&self.devices, Some(&hex(d.device)))
            && any_of(&self.drivers, d.driver.as_deref())
            && any_of(&self.pci_addresses, Some(&d.address.to_string()))
            && any_of(&self.acpi_indexes, d.acpi_index.as_deref())
            && (self.pf_names.is_empty() || self.pf_names.iter().any(|m| m.matches(d)))
            && (self.root_devices.is_empty() || self.root_devices.iter().any(|m| m.matches(d)))
            && (self.link_types.is_empty()
                || d.link_type.is_some_and(|t| {
                    // By name (`ether`) or by ARPHRD number (`1`), as
                    // /sys/class/net/<netdev>/type holds it.
                    let number = t.arphrd().to_string();
                    self.link_types
                        .iter()
                        .any(|l| l.eq_ignore_ascii_case(&t.name()) || *l == number)
                }))
            && (!self.is_rdma || d.rdma)
    }

    /// One selector object. Keys match in any case, as upstream's decoder
    /// matches them; unknown keys come back as warnings.
    pub fn parse(object: &Map<String, Value>, warnings: &mut Vec<String>) -> Result<Self, String> {
        let mut selector = Selector::default();
        for (key, value) in object {
            let strings = || -> Result<Vec<String>, String> {
                let list = value
                    .as_array()
                    .ok_or_else(|| format!("{key}: {value} is not a list"))?;
                list.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("{key}: {v} is not a string"))
                    })
                    .collect()
            };
            let boolean = || {
                value
                    .as_bool()
                    .ok_or_else(|| format!("{key}: {value} is not true or false"))
            };
            let pf_matches = || -> Result<Vec<PfMatch>, String> {
                strings()?
                    .iter()
                    .map(|s| PfMatch::parse(s).map_err(|e| format!("{key}: {e}")))
                    .collect()
            };
            match key.to_ascii_lowercase().as_str() {
                "vendors" => selector.vendors = strings()?,
                "devices" => selector.devices = strings()?,
                "drivers" => selector.drivers = strings()?,
                "pciaddresses" => selector.pci_addresses = strings()?,
                "acpiindexes" => selector.acpi_indexes = strings()?,
                "pfnames" => selector.pf_names = pf_matches()?,
                "rootdevices" => selector.root_devices = pf_matches()?,
                "linktypes" => selector.link_types = strings()?,
                "isrdma" => selector.is_rdma = boolean()?,
                "needvhostnet" => selector.need_vhost_net = boolean()?,
                // Upstream selectors this plugin cannot evaluate: refusing
                // them beats matching more devices than asked for.
                "ddpprofiles" | "pkeys" | "vdpatype" | "auxtypes" if !value.is_null() => {
                    return Err(format!("{key} is not supported"))
                }
                _ => warnings.push(format!("unknown selector key \"{key}\" ignored")),
            }
        }
        selector.never_matching(warnings);
        Ok(selector)
    }

    /// Warns of values no device can have: they are kept (upstream's
    /// config still loads), but a pool that seems to select nothing says
    /// why.
    fn never_matching(&self, warnings: &mut Vec<String>) {
        let hex_id = |v: &String| v.len() == 4 && v.bytes().all(|b| b.is_ascii_hexdigit());
        let pci = |v: &str| v.parse::<sriovnet::PciAddress>().is_ok();
        let mut warn = |field: &str, value: &str, should: &str| {
            warnings.push(format!(
                "selector {field}: \"{value}\" can never match ({should})"
            ))
        };
        for (field, values) in [("vendors", &self.vendors), ("devices", &self.devices)] {
            for value in values.iter().filter(|v| !hex_id(v)) {
                warn(field, value, "ids are four hex digits, as in 8086");
            }
        }
        for value in self.pci_addresses.iter().filter(|v| !pci(v)) {
            warn("pciAddresses", value, "a PCI address is DDDD:BB:DD.F");
        }
        for m in self.root_devices.iter().filter(|m| !pci(&m.pf)) {
            warn(
                "rootDevices",
                &m.pf,
                "a root device is a PF's PCI address DDDD:BB:DD.F",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_ranges() {
        let m = PfMatch::parse("ens1f0#0,2-7,9").unwrap();
        assert_eq!(m.pf, "ens1f0");
        assert_eq!(m.vfs, Some(vec![0..=0, 2..=7, 9..=9]));
        assert_eq!(
            PfMatch::parse("0000:86:00.0#0-1").unwrap().vfs,
            Some(vec![0..=1])
        );
        assert_eq!(PfMatch::parse("ens1f1").unwrap().vfs, None);
        for bad in ["#1", "ens1f0#", "ens1f0#a", "ens1f0#3-1", "ens1f0#1-"] {
            assert!(PfMatch::parse(bad).is_err(), "{bad}");
        }
    }
}
