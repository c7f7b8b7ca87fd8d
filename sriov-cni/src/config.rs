//! The network configuration on stdin, with upstream sriov-cni's fields.
//!
//! Keys match case-insensitively, as Go's JSON decoder matches them, so a
//! NetworkAttachmentDefinition written for the Go plugin reads the same.
//! When two keys differ only in case, the last one in the document wins, as
//! in Go. Each field is checked on its own and an error names it with its
//! value.

use std::path::PathBuf;

use serde_json::Value;
use sriovnet::{IpNetwork, MacAddress, PciAddress, VfLinkState, VlanProto};

use crate::cni::{bad, CniArgs, Fields};
use crate::log::Level;
use crate::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct NetConf {
    pub cni_version: String,
    /// The network's name: GC releases only its own network's attachments.
    pub name: String,
    pub device_id: Option<PciAddress>,
    pub vlan: Option<u16>,
    pub vlan_qos: Option<u8>,
    pub vlan_proto: Option<VlanProto>,
    pub mac: Option<MacAddress>,
    pub spoof_check: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    pub min_tx_rate: Option<u32>,
    pub max_tx_rate: Option<u32>,
    pub mtu: Option<u32>,
    /// `ipam.type`: the plugin to delegate to; the whole config goes to it.
    pub ipam: Option<String>,
    pub log_level: Level,
    pub log_file: Option<PathBuf>,
    pub runtime_mac: Option<MacAddress>,
    /// `runtimeConfig.CNIDeviceInfoFile`: where to write NPWG device info.
    pub device_info_file: Option<PathBuf>,
    pub prev_result: Option<Value>,
    /// `resetOnRelease`: a PCI function reset of the VF when it is released.
    pub reset_on_release: bool,
    /// GC's `cni.dev/valid-attachments` (or the older `cni.dev/attachments`):
    /// (containerID, ifname) pairs. None when the runtime sent neither.
    pub valid_attachments: Option<Vec<(String, String)>>,
}

/// `ipam.type`: a plugin's file name in CNI_PATH.
fn ipam_type(f: &Fields) -> Result<Option<String>> {
    let Some(ipam) = f.get("ipam") else {
        return Ok(None);
    };
    let ipam = Fields::new(ipam, "ipam.")?;
    match ipam.string("type")? {
        Some(plugin) if plugin.is_empty() || plugin.contains('/') || plugin == ".." => Err(bad(
            "ipam.type".into(),
            &Value::from(plugin),
            "is not a plugin name",
        )),
        plugin => Ok(plugin.map(str::to_string)),
    }
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(stdin)
            .map_err(|e| Error::Decode(format!("network config is not valid JSON: {e}")))?;
        let f = Fields::new(&value, "")?;
        if let Some(trunk) = f.get("vlan_trunk") {
            return Err(Error::UnsupportedField(format!(
                "vlan_trunk: {trunk} is not supported (it needs a vendor sysfs extension; use vlan)"
            )));
        }
        let mut conf = NetConf {
            cni_version: f.string("cniVersion")?.unwrap_or_default().to_string(),
            name: f.string("name")?.unwrap_or_default().to_string(),
            device_id: f.parsed("deviceID", "a PCI address (DDDD:BB:DD.F)", |s| {
                s.parse().ok()
            })?,
            vlan: f.integer("vlan", 0, 4094)?.map(|n| n as u16),
            vlan_qos: f.integer("vlanQoS", 0, 7)?.map(|n| n as u8),
            vlan_proto: f.parsed("vlanProto", "802.1q or 802.1ad", |s| s.parse().ok())?,
            mac: f.parsed("mac", "a MAC address", |s| s.parse().ok())?,
            spoof_check: f.on_off("spoofchk")?,
            trust: f.on_off("trust")?,
            link_state: f.parsed("link_state", "auto, enable or disable", |s| s.parse().ok())?,
            min_tx_rate: f
                .integer("min_tx_rate", 0, u32::MAX.into())?
                .map(|n| n as u32),
            max_tx_rate: f
                .integer("max_tx_rate", 0, u32::MAX.into())?
                .map(|n| n as u32),
            mtu: f.integer("mtu", 68, 65535)?.map(|n| n as u32),
            log_level: f
                .parsed("logLevel", "panic, error, warning, info or debug", |s| {
                    s.parse().ok()
                })?
                .unwrap_or_default(),
            log_file: f.string("logFile")?.map(PathBuf::from),
            prev_result: f.get("prevResult").cloned(),
            reset_on_release: f.boolean("resetOnRelease")?.unwrap_or(false),
            ipam: ipam_type(&f)?,
            ..NetConf::default()
        };
        if let Some(runtime) = f.get("runtimeConfig") {
            let runtime = Fields::new(runtime, "runtimeConfig.")?;
            conf.runtime_mac = runtime.parsed("mac", "a MAC address", |s| s.parse().ok())?;
            conf.device_info_file = runtime.string("CNIDeviceInfoFile")?.map(PathBuf::from);
            if let Some(ips) = runtime.get("ips") {
                let list = ips
                    .as_array()
                    .ok_or_else(|| bad("runtimeConfig.ips".into(), ips, "is not a list"))?;
                for ip in list {
                    if ip
                        .as_str()
                        .and_then(|s| s.parse::<IpNetwork>().ok())
                        .is_none()
                    {
                        return Err(bad(
                            "runtimeConfig.ips".into(),
                            ip,
                            "is not an address with a prefix",
                        ));
                    }
                }
            }
        }
        // libcni sends both names; older runtimes only the first.
        for key in ["cni.dev/attachments", "cni.dev/valid-attachments"] {
            let Some(list) = f.get(key) else { continue };
            let list = list
                .as_array()
                .ok_or_else(|| bad(key.into(), list, "is not a list"))?;
            let valid = conf.valid_attachments.get_or_insert_with(Vec::new);
            for entry in list {
                let e = Fields::new(entry, "cni.dev/valid-attachments[].")?;
                let (Some(id), Some(ifname)) = (e.string("containerID")?, e.string("ifname")?)
                else {
                    return Err(bad(key.into(), entry, "lacks containerID or ifname"));
                };
                valid.push((id.to_string(), ifname.to_string()));
            }
        }
        conf.check_combinations()?;
        Ok(conf)
    }

    /// What DEL needs of a config that no longer validates (an edited
    /// NetworkAttachmentDefinition must not block a pod's teardown): the
    /// version, the name, the device, IPAM and logging. Invalid fields among
    /// those are left out; only input that is not a JSON object fails.
    pub fn parse_for_del(stdin: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(stdin)
            .map_err(|e| Error::Decode(format!("network config is not valid JSON: {e}")))?;
        let f = Fields::new(&value, "")?;
        Ok(NetConf {
            cni_version: f
                .string("cniVersion")
                .ok()
                .flatten()
                .unwrap_or_default()
                .into(),
            name: f.string("name").ok().flatten().unwrap_or_default().into(),
            device_id: f.parsed("deviceID", "", |s| s.parse().ok()).ok().flatten(),
            ipam: ipam_type(&f).ok().flatten(),
            log_level: f
                .parsed("logLevel", "", |s| s.parse().ok())
                .ok()
                .flatten()
                .unwrap_or_default(),
            log_file: f.string("logFile").ok().flatten().map(PathBuf::from),
            ..NetConf::default()
        })
    }

    /// Rules between fields, as upstream enforces them.
    fn check_combinations(&self) -> Result<()> {
        let vlan = self.vlan;
        if vlan.is_none() && self.vlan_qos.is_some() {
            return Err(Error::Config("vlanQoS needs vlan to be set".into()));
        }
        if vlan.is_none() && self.vlan_proto.is_some() {
            return Err(Error::Config("vlanProto needs vlan to be set".into()));
        }
        if vlan == Some(0) && self.vlan_qos.is_some_and(|q| q != 0) {
            return Err(Error::Config(format!(
                "vlanQoS: {} needs a non-zero vlan",
                self.vlan_qos.unwrap_or_default()
            )));
        }
        if vlan == Some(0) && self.vlan_proto == Some(VlanProto::Dot1Ad) {
            return Err(Error::Config(
                "vlanProto: \"802.1ad\" needs a non-zero vlan".into(),
            ));
        }
        if let (Some(min), Some(max)) = (self.min_tx_rate, self.max_tx_rate) {
            if max != 0 && min > max {
                return Err(Error::Config(format!(
                    "min_tx_rate: {min} is above max_tx_rate {max}"
                )));
            }
        }
        Ok(())
    }

    /// The device to attach; every command on an attachment needs it.
    pub fn require_device(&self) -> Result<PciAddress> {
        self.device_id.ok_or_else(|| {
            Error::Config(
                "deviceID is missing: Multus sets it from the NetworkAttachmentDefinition's \
                 k8s.v1.cni.cncf.io/resourceName"
                    .into(),
            )
        })
    }

    /// The MAC the pod gets: `runtimeConfig.mac`, then `CNI_ARGS` `MAC=`,
    /// then `mac`.
    pub fn effective_mac(&self, args: &CniArgs) -> Option<MacAddress> {
        self.runtime_mac.or(args.mac).or(self.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NetConf> {
        NetConf::parse(json.as_bytes())
    }

    fn error(json: &str) -> String {
        let err = parse(json).unwrap_err();
        assert_eq!(err.code(), 7, "{err}");
        err.to_string()
    }

    #[test]
    fn upstream_example_config() {
        let conf = parse(
            r#"{
              "cniVersion": "0.3.1", "name": "sriov-net", "type": "sriov",
              "deviceID": "0000:af:06.0", "vlan": 1000, "vlanQoS": 4, "vlanProto": "802.1Q",
              "mac": "CA:FE:C0:FF:EE:00", "spoofchk": "off", "trust": "on", "link_state": "enable",
              "min_tx_rate": 100, "max_tx_rate": 200, "mtu": 9000, "logLevel": "debug",
              "logFile": "/tmp/sriov.log",
              "ipam": {"type": "host-local", "subnet": "10.56.217.0/24"},
              "runtimeConfig": {"mac": "02:00:00:00:00:01", "ips": ["10.56.217.5/24"],
                                "CNIDeviceInfoFile": "/run/devinfo.json"}
            }"#,
        )
        .unwrap();
        assert_eq!(conf.device_id.unwrap().to_string(), "0000:af:06.0");
        assert_eq!(
            (conf.vlan, conf.vlan_qos, conf.vlan_proto),
            (Some(1000), Some(4), Some(VlanProto::Dot1Q))
        );
        assert_eq!(conf.mac.unwrap().to_string(), "ca:fe:c0:ff:ee:00");
        assert_eq!((conf.spoof_check, conf.trust), (Some(false), Some(true)));
        assert_eq!(conf.link_state, Some(VfLinkState::Enable));
        assert_eq!(
            (conf.min_tx_rate, conf.max_tx_rate, conf.mtu),
            (Some(100), Some(200), Some(9000))
        );
        assert_eq!(conf.ipam.as_deref(), Some("host-local"));
        assert_eq!(conf.log_level, Level::Debug);
        assert_eq!(
            conf.device_info_file,
            Some(PathBuf::from("/run/devinfo.json"))
        );
    }

    #[test]
    fn keys_match_in_any_case_as_go_does() {
        let conf = parse(r#"{"cniversion":"1.0.0","DeviceId":"0000:01:10.0","VLAN":5,"Mac":"02:00:00:00:00:05","MTU":1400}"#).unwrap();
        assert_eq!((conf.vlan, conf.mtu), (Some(5), Some(1400)));
        assert!(conf.mac.is_some() && conf.device_id.is_some());
    }

    #[test]
    fn mac_precedence() {
        let conf =
            parse(r#"{"mac":"02:00:00:00:00:03","runtimeConfig":{"mac":"02:00:00:00:00:01"}}"#)
                .unwrap();
        let args = CniArgs {
            mac: Some("02:00:00:00:00:02".parse().unwrap()),
            ..CniArgs::default()
        };
        assert_eq!(
            conf.effective_mac(&args).unwrap().to_string(),
            "02:00:00:00:00:01"
        );
        let conf = parse(r#"{"mac":"02:00:00:00:00:03"}"#).unwrap();
        assert_eq!(
            conf.effective_mac(&args).unwrap().to_string(),
            "02:00:00:00:00:02"
        );
        assert_eq!(
            conf.effective_mac(&CniArgs::default()).unwrap().to_string(),
            "02:00:00:00:00:03"
        );
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        for (json, expected) in [
            (
                r#"{"deviceID":"0000:01:10"}"#,
                r#"deviceID: "0000:01:10" is not a PCI address"#,
            ),
            (
                r#"{"deviceID":"../../etc"}"#,
                r#"deviceID: "../../etc" is not a PCI address"#,
            ),
            (r#"{"vlan":4095}"#, "vlan: 4095 is not in 0-4094"),
            (r#"{"vlan":"100"}"#, r#"vlan: "100" is not an integer"#),
            (r#"{"vlan":1,"vlanQoS":8}"#, "vlanQoS: 8 is not in 0-7"),
            (
                r#"{"vlan":1,"vlanProto":"802.1x"}"#,
                r#"vlanProto: "802.1x" is not 802.1q or 802.1ad"#,
            ),
            (
                r#"{"mac":"02:00:00:00:00"}"#,
                r#"mac: "02:00:00:00:00" is not a MAC address"#,
            ),
            (
                r#"{"spoofchk":"yes"}"#,
                r#"spoofchk: "yes" is not on or off"#,
            ),
            (r#"{"trust":true}"#, "trust: true is not a string"),
            (
                r#"{"link_state":"up"}"#,
                r#"link_state: "up" is not auto, enable or disable"#,
            ),
            (
                r#"{"min_tx_rate":-1}"#,
                "min_tx_rate: -1 is not in 0-4294967295",
            ),
            (
                r#"{"max_tx_rate":1.5}"#,
                "max_tx_rate: 1.5 is not an integer",
            ),
            (r#"{"mtu":10}"#, "mtu: 10 is not in 68-65535"),
            (
                r#"{"resetOnRelease":"yes"}"#,
                r#"resetOnRelease: "yes" is not true or false"#,
            ),
            (
                r#"{"cni.dev/attachments":{}}"#,
                "cni.dev/attachments: {} is not a list",
            ),
            (
                r#"{"logLevel":"loud"}"#,
                r#"logLevel: "loud" is not panic, error, warning, info or debug"#,
            ),
            (
                r#"{"ipam":{"type":"../bin/sh"}}"#,
                r#"ipam.type: "../bin/sh" is not a plugin name"#,
            ),
            (
                r#"{"runtimeConfig":{"mac":"x"}}"#,
                r#"runtimeConfig.mac: "x" is not a MAC address"#,
            ),
            (
                r#"{"runtimeConfig":{"ips":["10.1.1.1"]}}"#,
                r#"runtimeConfig.ips: "10.1.1.1" is not an address with a prefix"#,
            ),
        ] {
            let got = error(json);
            assert!(got.starts_with(expected), "{json}: {got}");
        }
    }

    #[test]
    fn rules_between_fields() {
        assert_eq!(error(r#"{"vlanQoS":1}"#), "vlanQoS needs vlan to be set");
        assert_eq!(
            error(r#"{"vlanProto":"802.1ad"}"#),
            "vlanProto needs vlan to be set"
        );
        assert_eq!(
            error(r#"{"vlan":0,"vlanQoS":3}"#),
            "vlanQoS: 3 needs a non-zero vlan"
        );
        assert_eq!(
            error(r#"{"vlan":0,"vlanProto":"802.1AD"}"#),
            "vlanProto: \"802.1ad\" needs a non-zero vlan"
        );
        assert_eq!(
            error(r#"{"min_tx_rate":500,"max_tx_rate":100}"#),
            "min_tx_rate: 500 is above max_tx_rate 100"
        );
        parse(r#"{"min_tx_rate":500,"max_tx_rate":0}"#).unwrap();
        parse(r#"{"vlan":0,"vlanQoS":0,"vlanProto":"802.1q"}"#).unwrap();
    }

    #[test]
    fn vlan_trunk_is_refused_not_ignored() {
        let err = parse(r#"{"vlan_trunk":"10-20"}"#).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(
            err.to_string()
                .starts_with(r#"vlan_trunk: "10-20" is not supported"#),
            "{err}"
        );
    }

    #[test]
    fn not_json_is_a_decode_error() {
        assert_eq!(parse("{").unwrap_err().code(), 6);
        assert_eq!(parse("[]").unwrap_err().code(), 6);
    }

    #[test]
    fn missing_device_is_explained() {
        let err = parse("{}").unwrap().require_device().unwrap_err();
        assert!(err.to_string().contains("resourceName"), "{err}");
    }

    /// The example NetworkAttachmentDefinitions in deploy/examples, as
    /// Multus passes them: their config, with the allocated VF's deviceID.
    #[test]
    fn the_example_nads_are_valid_configs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue; // examples/dra/, among others
            }
            let yaml = std::fs::read_to_string(&path).unwrap();
            if !yaml.contains("kind: NetworkAttachmentDefinition") {
                continue;
            }
            // The block scalar under `config: |`, indented under it.
            let config: String = yaml
                .lines()
                .skip_while(|l| l.trim() != "config: |")
                .skip(1)
                .take_while(|l| l.starts_with("    ") || l.is_empty())
                .map(|l| format!("{l}\n"))
                .collect();
            let mut value: Value =
                serde_json::from_str(&config).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value["deviceID"] = "0000:01:10.0".into();
            let conf =
                parse(&value.to_string()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(value["type"], "sriov", "{}", path.display());
            assert!(
                yaml.contains(&format!("  name: {}\n", conf.name)),
                "{}",
                path.display()
            );
            seen += 1;
        }
        assert_eq!(seen, 3);
    }
}
