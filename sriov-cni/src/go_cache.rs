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

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;
use sriovnet::{MacAddress, Netns, PciAddress, VirtualFunction, VlanProto};

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

/// Another Go attachment that holds `device`, by the Go plugin's own rule:
/// its allocation file names a sandbox that is still alive. That sandbox
/// is another than this DEL's (the Go plugin hands a VF whose sandbox is
/// gone to the next pod, so an older pod's cache may name a VF a newer pod
/// holds), or this one under another ifname (a cache other than this
/// attachment's names the VF).
pub fn held_elsewhere(ctx: &Ctx, device: PciAddress) -> Option<String> {
    let device = device.to_string();
    let (own, allocation) = paths(ctx, &device);
    let netns = fs::read_to_string(allocation).ok()?;
    let netns = netns.trim();
    Netns::open(netns).ok()?;
    if netns != ctx.env.netns {
        return Some(format!("sandbox {netns}"));
    }
    fs::read_dir(&ctx.host.state_dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.path() != own && entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        // The same sandbox is the same container id: a stale cache of
        // another, dead sandbox must not block this one. (Ours are
        // <pci>.json and <pci>.lock.)
        .filter(|name| {
            name.starts_with(&format!("{}-", ctx.env.container_id))
                && !name.ends_with(".json")
                && !name.ends_with(".lock")
        })
        .find(|name| cache_names(&ctx.host.state_dir.join(name), &device))
        .map(|name| format!("attachment {name}"))
}

fn cache_names(path: &Path, device: &str) -> bool {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.get("deviceID").and_then(|d| d.as_str()) == Some(device))
}

/// Removes this attachment's Go cache if it names `device`: the attachment
/// is released, or the VF has moved on to another sandbox.
pub fn forget(ctx: &Ctx, device: PciAddress) {
    let (cache, _) = paths(ctx, "");
    if cache_names(&cache, &device.to_string()) {
        remove(ctx, &cache);
    }
}

fn remove(ctx: &Ctx, path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != ErrorKind::NotFound {
            ctx.log.warning(&format!("remove {}: {e}", path.display()));
        }
    }
}

/// Turns the Go plugin's cache of this attachment, if it has one for `vf`,
/// into one of our records, saved, and removes the Go plugin's files. The
/// caller holds the VF's lock, has checked that it is a VF of this host and
/// that no other live sandbox holds it ([`held_elsewhere`]). A cache that
/// cannot be read is logged and left alone (Ok(None)): it must not block
/// the pod's teardown. Only a record that cannot be saved fails.
pub fn adopt(ctx: &Ctx, store: &Store, vf: &VirtualFunction, pf: &str) -> Result<Option<Record>> {
    let device = vf.address.to_string();
    let (cache_path, allocation) = paths(ctx, &device);
    let cache = match read(&cache_path) {
        Ok(Some(cache)) if cache.device_id == device => cache,
        // None, or its attachment is of another VF: not this DEL's.
        Ok(_) => return Ok(None),
        Err(e) => {
            ctx.log
                .error(&format!("{e}; releasing {device} without it"));
            return Ok(None);
        }
    };
    if cache.vf_id.is_some_and(|id| id != vf.index) {
        ctx.log.warning(&format!(
            "the Go sriov-cni's cache says {device} is VF {}, sysfs says {}; using sysfs",
            cache.vf_id.unwrap_or_default(),
            vf.index
        ));
    }
    // While a Go plugin still runs (the binary is being swapped), its DEL
    // and ours take the same lock.
    let _go_lock = go_lock(ctx, &device);
    let record = record(ctx, cache, vf, pf);
    store.save(&record)?;
    // The record is ours now: a file that will not go is only logged.
    remove(ctx, &cache_path);
    remove(ctx, &allocation);
    ctx.log.info(&format!(
        "adopted the Go sriov-cni's attachment of {device} to container {} ({})",
        record.container_id, record.ifname
    ));
    Ok(Some(record))
}

fn read(path: &Path) -> Result<Option<Cache>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(format!("read {}: {e}", path.display()))),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Decode(format!("the Go sriov-cni's cache {}: {e}", path.display())))
}

/// The Go plugin's per-VF lock, if its directory is there.
fn go_lock(ctx: &Ctx, device: &str) -> Option<Flock<File>> {
    let dir = ctx.host.state_dir.join("pci/vf_lock");
    if !dir.is_dir() {
        return None;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format!("{device}.lock")))
        .ok()?;
    Flock::lock(file, FlockArg::LockExclusive).ok()
}

impl Cache {
    /// The VF as its PF reported it before the Go plugin's ADD, and the
    /// settings whose original value the cache does not hold validly:
    /// those are left as they are rather than failing the whole release.
    fn pf_side(&self) -> (PfSide, Vec<(&'static str, String)>) {
        let original = &self.original;
        let mut invalid = Vec::new();
        let mut bad = |setting: &'static str, field: &str, value: &dyn std::fmt::Display| {
            invalid.push((
                setting,
                format!("the Go sriov-cni's cache: OrigVfState.{field} {value} is not valid"),
            ));
        };
        let zero = MacAddress([0; 6]);
        let mac = match original.admin_mac.as_str() {
            "" => zero,
            text => text.parse().unwrap_or_else(|_| {
                bad("mac", "AdminMAC", &text);
                zero
            }),
        };
        let vlan_proto = match original.vlan_proto {
            0 | 0x8100 => VlanProto::Dot1Q,
            0x88a8 => VlanProto::Dot1Ad,
            other => {
                bad("vlan", "VlanProto", &other);
                VlanProto::Dot1Q
            }
        };
        let link_state = match original.link_state {
            0 => "auto",
            1 => "enable",
            2 => "disable",
            other => {
                bad("link_state", "LinkState", &other);
                "auto"
            }
        };
        let pf_side = PfSide {
            mac: mac.to_string(),
            vlan: original.vlan,
            qos: original.vlan_qos,
            vlan_proto: vlan_proto.to_string(),
            spoof_check: original.spoof_chk,
            trust: original.trust,
            link_state: link_state.to_string(),
            min_tx_rate: original.min_tx_rate,
            max_tx_rate: original.max_tx_rate,
        };
        (pf_side, invalid)
    }

    /// What the Go plugin's DEL would restore: the settings the config set.
    fn changed(&self) -> Vec<&'static str> {
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
        .map(|(name, _)| name)
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

fn record(ctx: &Ctx, cache: Cache, vf: &VirtualFunction, pf: &str) -> Record {
    let (pf_side, invalid) = cache.pf_side();
    let mut changed = cache.changed();
    for (setting, problem) in &invalid {
        if changed.contains(setting) {
            ctx.log
                .warning(&format!("{problem}; its {setting} is left as it is"));
        }
    }
    changed.retain(|setting| invalid.iter().all(|(bad, _)| bad != setting));
    let netdev = cache.netdev();
    let ipam = ctx.conf.ipam.clone().or_else(|| {
        cache
            .ipam
            .as_ref()
            .map(|i| i.plugin.clone())
            .filter(|plugin| !plugin.is_empty())
    });
    Record {
        network: cache.name,
        container_id: ctx.env.container_id.clone(),
        ifname: ctx.env.ifname.clone(),
        netns: ctx.env.netns.clone(),
        device_id: vf.address.to_string(),
        pf: pf.to_string(),
        vf_index: vf.index,
        userspace: netdev.is_none(),
        pf_side: Some(pf_side),
        changed: changed.into_iter().map(str::to_string).collect(),
        pod_mac: Some(cache.mac).filter(|m| !m.is_empty()),
        netdev,
        ipam,
        // IPAM's DEL gets the config this DEL got, as the Go plugin's did.
        config: String::from_utf8_lossy(ctx.stdin).into_owned(),
        cni_path: ctx.env.path.clone(),
        device_info_file: None,
        reset_on_release: false,
    }
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
        let (pf_side, invalid) = cache.pf_side();
        assert!(invalid.is_empty());
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
        let (pf_side, invalid) = cache.pf_side();
        assert!(invalid.is_empty());
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
    fn a_bad_value_drops_only_its_setting() {
        for (from, to, setting, message) in [
            (
                r#""LinkState":2"#,
                r#""LinkState":9"#,
                "link_state",
                "OrigVfState.LinkState 9 is not valid",
            ),
            (
                r#""VlanProto":34984"#,
                r#""VlanProto":1"#,
                "vlan",
                "OrigVfState.VlanProto 1 is not valid",
            ),
            (
                r#""AdminMAC":"00:00:00:00:00:00""#,
                r#""AdminMAC":"zz""#,
                "mac",
                "OrigVfState.AdminMAC zz is not valid",
            ),
        ] {
            let cache: Cache = serde_json::from_str(&V2_8.replace(from, to)).unwrap();
            let (_, invalid) = cache.pf_side();
            assert_eq!(invalid.len(), 1);
            assert_eq!(invalid[0].0, setting);
            assert!(invalid[0].1.ends_with(message), "{}", invalid[0].1);
        }
    }
}
