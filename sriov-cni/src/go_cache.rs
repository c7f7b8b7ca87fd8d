//! Attachments the Go sriov-cni made before a node switched to this plugin.
//!
//! The Go plugin keeps, per attachment, its network config and the VF's
//! original state in `/var/lib/cni/sriov/<containerID>-<ifname>` (JSON,
//! written at ADD, deleted at DEL), and marks the VF taken in
//! `/var/lib/cni/sriov/pci/<pci address>` (the pod's netns path). A DEL that
//! finds no record of ours but finds that cache *adopts* it: the cache
//! becomes one of our records, the Go files are removed, and the attachment
//! is released as any of ours. If the release fails, our record stays and
//! the next DEL finishes it the usual way.
//!
//! The cache's keys are those Go's encoding/json writes for sriov-cni's
//! `NetConf` (v2.x): `OrigVfState` with `HostIFName`, `AdminMAC`,
//! `EffectiveMAC`, `Vlan`, `VlanQoS`, `VlanProto`, `SpoofChk`, `Trust`,
//! `MinTxRate`, `MaxTxRate`, `LinkState`, `MTU`; and the settings the pod's
//! config asked for (`MAC`, `vlan`, `spoofchk`, `trust`, `min_tx_rate`,
//! `max_tx_rate`, `link_state`), which say what ADD changed. Keys older
//! versions lack default to what those versions did.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use serde::Deserialize;
use sriovnet::{MacAddress, PciAddress, VirtualFunction, VlanProto};

use crate::context::Ctx;
use crate::state::{NetdevState, PfSide, Record, Store};
use crate::{Error, Result};

/// The part of the Go plugin's cache that release needs.
#[derive(Deserialize)]
struct Cache {
    #[serde(default)]
    name: String,
    #[serde(rename = "deviceID")]
    device_id: String,
    #[serde(rename = "VFID", default)]
    vf_id: Option<u32>,
    #[serde(rename = "OrigVfState")]
    original: OriginalState,
    #[serde(rename = "MAC", default)]
    mac: String,
    #[serde(default)]
    vlan: Option<i64>,
    #[serde(default)]
    spoofchk: String,
    #[serde(default)]
    trust: String,
    #[serde(default)]
    min_tx_rate: Option<i64>,
    #[serde(default)]
    max_tx_rate: Option<i64>,
    #[serde(default)]
    link_state: String,
    #[serde(default)]
    ipam: Option<Ipam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OriginalState {
    #[serde(rename = "HostIFName", default)]
    host_ifname: String,
    #[serde(default)]
    spoof_chk: bool,
    #[serde(default)]
    trust: bool,
    #[serde(rename = "AdminMAC", default)]
    admin_mac: String,
    #[serde(rename = "EffectiveMAC", default)]
    effective_mac: String,
    #[serde(default)]
    vlan: u16,
    #[serde(rename = "VlanQoS", default)]
    vlan_qos: u8,
    /// The ethertype; 0 in caches older than the field: 802.1Q.
    #[serde(default)]
    vlan_proto: u16,
    #[serde(default)]
    min_tx_rate: u32,
    #[serde(default)]
    max_tx_rate: u32,
    /// Netlink's IFLA_VF_LINK_STATE: 0 auto, 1 enable, 2 disable.
    #[serde(default)]
    link_state: u32,
    /// 0 in caches older than the field: unknown, left as it is.
    #[serde(rename = "MTU", default)]
    mtu: u32,
}

#[derive(Deserialize)]
struct Ipam {
    #[serde(rename = "type", default)]
    plugin: String,
}

/// Where the Go plugin keeps an attachment's cache and a VF's allocation.
fn paths(ctx: &Ctx, device: &str) -> (PathBuf, PathBuf) {
    let dir = &ctx.host.state_dir;
    let cache = dir.join(format!("{}-{}", ctx.env.container_id, ctx.env.ifname));
    (cache, dir.join("pci").join(device))
}

/// The VF the Go plugin's cache of this attachment names, if there is one
/// (for a DEL that names no device).
pub fn device(ctx: &Ctx) -> Option<PciAddress> {
    let (cache, _) = paths(ctx, "");
    let value: serde_json::Value = serde_json::from_slice(&fs::read(cache).ok()?).ok()?;
    value.get("deviceID")?.as_str()?.parse().ok()
}

/// Another attachment's Go cache that names `device`: its file name
/// (`<containerID>-<ifname>`).
pub fn holder(ctx: &Ctx, device: PciAddress) -> Option<String> {
    let (own, _) = paths(ctx, "");
    let device = device.to_string();
    fs::read_dir(&ctx.host.state_dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.path() != own && entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        // Ours are <pci>.json and <pci>.lock; temporaries start with a dot.
        .filter(|name| {
            !name.starts_with('.') && !name.ends_with(".json") && !name.ends_with(".lock")
        })
        .find(|name| {
            fs::read(ctx.host.state_dir.join(name))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|v| {
                    v.get("deviceID").and_then(|d| d.as_str()) == Some(device.as_str())
                })
        })
}

/// Turns the Go plugin's cache of this attachment, if it has one for `vf`,
/// into one of our records, saved, and removes the Go plugin's files. The
/// caller holds the VF's lock and has checked that it is a VF of this host.
pub fn adopt(ctx: &Ctx, store: &Store, vf: &VirtualFunction, pf: &str) -> Result<Option<Record>> {
    let device = vf.address.to_string();
    let (cache_path, allocation) = paths(ctx, &device);
    let bytes = match fs::read(&cache_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(format!("read {}: {e}", cache_path.display()))),
    };
    let cache: Cache = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Decode(format!(
            "the Go sriov-cni's cache {}: {e}",
            cache_path.display()
        ))
    })?;
    if cache.device_id != device {
        // Its attachment is of another VF: not this DEL's to release.
        return Ok(None);
    }
    if cache.vf_id.is_some_and(|id| id != vf.index) {
        ctx.log.warning(&format!(
            "the Go sriov-cni's cache says {device} is VF {}, sysfs says {}; using sysfs",
            cache.vf_id.unwrap_or_default(),
            vf.index
        ));
    }
    let record = record(ctx, cache, vf, pf)?;
    store.save(&record)?;
    for path in [&cache_path, &allocation] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(Error::Io(format!("remove {}: {e}", path.display())))
            }
            _ => {}
        }
    }
    ctx.log.info(&format!(
        "adopted the Go sriov-cni's attachment of {device} to container {} ({})",
        record.container_id, record.ifname
    ));
    Ok(Some(record))
}

impl Cache {
    /// The VF as its PF reported it before the Go plugin's ADD.
    fn pf_side(&self) -> Result<PfSide> {
        let original = &self.original;
        let bad = |field: &str, value: &dyn std::fmt::Display| {
            Error::Decode(format!(
                "the Go sriov-cni's cache: OrigVfState.{field} {value} is not valid"
            ))
        };
        let mac: MacAddress = match original.admin_mac.as_str() {
            "" => MacAddress([0; 6]),
            text => text.parse().map_err(|_| bad("AdminMAC", &text))?,
        };
        let vlan_proto = match original.vlan_proto {
            0 | 0x8100 => VlanProto::Dot1Q,
            0x88a8 => VlanProto::Dot1Ad,
            other => return Err(bad("VlanProto", &other)),
        };
        let link_state = match original.link_state {
            0 => "auto",
            1 => "enable",
            2 => "disable",
            other => return Err(bad("LinkState", &other)),
        };
        Ok(PfSide {
            mac: mac.to_string(),
            vlan: original.vlan,
            qos: original.vlan_qos,
            vlan_proto: vlan_proto.to_string(),
            spoof_check: original.spoof_chk,
            trust: original.trust,
            link_state: link_state.to_string(),
            min_tx_rate: original.min_tx_rate,
            max_tx_rate: original.max_tx_rate,
        })
    }

    /// What the Go plugin's DEL would restore: the settings the config set.
    fn changed(&self) -> Vec<String> {
        [
            ("vlan", self.vlan.is_some()),
            ("mac", !self.mac.is_empty()),
            ("spoofchk", !self.spoofchk.is_empty()),
            ("trust", !self.trust.is_empty()),
            (
                "rate",
                self.min_tx_rate.is_some() || self.max_tx_rate.is_some(),
            ),
            ("link_state", !self.link_state.is_empty()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name.to_string())
        .collect()
    }

    /// The VF netdev in the host before ADD; None for a VF on a userspace
    /// driver, which had no host name to record.
    fn netdev(&self) -> Option<NetdevState> {
        let original = &self.original;
        (!original.host_ifname.is_empty()).then(|| NetdevState {
            name: original.host_ifname.clone(),
            mac: Some(original.effective_mac.clone()).filter(|m| m.parse::<MacAddress>().is_ok()),
            mtu: original.mtu,
            // The Go plugin leaves a released VF down.
            up: false,
            altnames: Vec::new(),
            promisc: false,
            allmulti: false,
        })
    }
}

fn record(ctx: &Ctx, cache: Cache, vf: &VirtualFunction, pf: &str) -> Result<Record> {
    let pf_side = cache.pf_side()?;
    let netdev = cache.netdev();
    let changed = cache.changed();
    let ipam = ctx.conf.ipam.clone().or_else(|| {
        cache
            .ipam
            .as_ref()
            .map(|i| i.plugin.clone())
            .filter(|plugin| !plugin.is_empty())
    });
    Ok(Record {
        network: cache.name,
        container_id: ctx.env.container_id.clone(),
        ifname: ctx.env.ifname.clone(),
        netns: ctx.env.netns.clone(),
        device_id: vf.address.to_string(),
        pf: pf.to_string(),
        vf_index: vf.index,
        userspace: netdev.is_none(),
        pf_side: Some(pf_side),
        changed,
        pod_mac: Some(cache.mac).filter(|m| !m.is_empty()),
        netdev,
        ipam,
        // IPAM's DEL gets the config this DEL got, as the Go plugin's did.
        config: String::from_utf8_lossy(ctx.stdin).into_owned(),
        cni_path: ctx.env.path.clone(),
        device_info_file: None,
        reset_on_release: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache as the Go plugin (v2.8 and later) writes it: keys sorted,
    /// compact, for a VF with VLAN 100, a MAC and spoof check off.
    const V2_8: &str = r#"{"MAC":"60:00:00:00:00:e1","MTU":1500,"Master":"enp175s0f1","OrigVfState":{"AdminMAC":"00:00:00:00:00:00","EffectiveMAC":"2e:8f:3a:11:5c:07","HostIFName":"enp175s6","LinkState":2,"MTU":9000,"MaxTxRate":0,"MinTxRate":0,"SpoofChk":true,"Trust":false,"Vlan":7,"VlanProto":34984,"VlanQoS":3},"VFID":0,"cniVersion":"1.0.0","deviceID":"0000:af:06.0","ipam":{"type":"host-local"},"max_tx_rate":null,"min_tx_rate":null,"name":"sriov-network","runtimeConfig":{},"spoofchk":"off","type":"sriov","vlan":100,"vlanProto":"802.1q","vlanQoS":0}"#;

    /// Before VlanProto, Trust and MTU existed, with DPDKMode written.
    const OLDER: &str = r#"{"DPDKMode":false,"Master":"ens1f0","OrigVfState":{"HostIFName":"ens1f0v3","SpoofChk":false,"AdminMAC":"","EffectiveMAC":"5a:1b:00:00:00:03","Vlan":0,"VlanQoS":0,"MinTxRate":0,"MaxTxRate":0,"LinkState":0},"MAC":"","vlan":0,"deviceID":"0000:3b:02.3","VFID":3,"name":"old","ipam":{}}"#;

    #[test]
    fn reads_the_go_plugins_cache() {
        let cache: Cache = serde_json::from_str(V2_8).unwrap();
        assert_eq!(cache.device_id, "0000:af:06.0");
        assert_eq!(cache.vf_id, Some(0));
        let pf_side = cache.pf_side().unwrap();
        assert_eq!(
            (
                pf_side.mac.as_str(),
                pf_side.vlan,
                pf_side.qos,
                pf_side.vlan_proto.as_str()
            ),
            ("00:00:00:00:00:00", 7, 3, "802.1ad")
        );
        assert!(pf_side.spoof_check && !pf_side.trust);
        assert_eq!(pf_side.link_state, "disable");
        assert_eq!(cache.changed(), ["vlan", "mac", "spoofchk"]);
        let netdev = cache.netdev().unwrap();
        assert_eq!(netdev.name, "enp175s6");
        assert_eq!(netdev.mac.as_deref(), Some("2e:8f:3a:11:5c:07"));
        assert_eq!(netdev.mtu, 9000);
        assert_eq!(cache.ipam.unwrap().plugin, "host-local");
    }

    #[test]
    fn reads_an_older_cache_with_what_that_version_did() {
        let cache: Cache = serde_json::from_str(OLDER).unwrap();
        let pf_side = cache.pf_side().unwrap();
        assert_eq!(pf_side.mac, "00:00:00:00:00:00");
        assert_eq!(pf_side.vlan_proto, "802.1q");
        // That version restored the VLAN always: its vlan was not optional.
        assert_eq!(cache.changed(), ["vlan"]);
        assert_eq!(cache.netdev().unwrap().mtu, 0, "unknown, left alone");
        assert!(cache.ipam.unwrap().plugin.is_empty());
    }

    #[test]
    fn a_userspace_vf_has_no_netdev() {
        let cache: Cache =
            serde_json::from_str(&V2_8.replace(r#""HostIFName":"enp175s6""#, r#""HostIFName":"""#))
                .unwrap();
        assert!(cache.netdev().is_none());
    }

    #[test]
    fn bad_values_are_named() {
        for (from, to, message) in [
            (
                r#""LinkState":2"#,
                r#""LinkState":9"#,
                "OrigVfState.LinkState 9 is not valid",
            ),
            (
                r#""VlanProto":34984"#,
                r#""VlanProto":1"#,
                "OrigVfState.VlanProto 1 is not valid",
            ),
            (
                r#""AdminMAC":"00:00:00:00:00:00""#,
                r#""AdminMAC":"zz""#,
                "OrigVfState.AdminMAC zz is not valid",
            ),
        ] {
            let cache: Cache = serde_json::from_str(&V2_8.replace(from, to)).unwrap();
            let error = cache.pf_side().unwrap_err().to_string();
            assert!(error.ends_with(message), "{error}");
        }
    }
}
