//! The config file, upstream's format: `{"resourceList":[...]}`.
//!
//! An invalid or duplicate resource name stops the daemon; anything wrong
//! inside one pool (its selectors, an unsupported device type) drops that
//! pool with a warning naming it. Keys match in any case, as upstream's
//! decoder matches them; of two keys that differ only in case, the last in
//! the document wins, as in Go.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use tracing::warn;

use serde_json::{Map, Value};

use crate::core::allocation::Policy;
use crate::core::selector::Selector;

pub const DEFAULT_PREFIX: &str = "intel.com";

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceConfig {
    pub name: String,
    pub prefix: String,
    pub exclude_topology: bool,
    /// `additionalInfo`: per PCI address (or `*` for all), extra key/values
    /// for the `_INFO` variable.
    pub additional_info: BTreeMap<String, BTreeMap<String, String>>,
    pub selectors: Vec<Selector>,
    /// `allocationPolicy` (ours): how GetPreferredAllocation picks PFs.
    pub policy: Policy,
    /// `api` (ours): which API hands the pool out; None is the daemon's
    /// default (`--default-api`).
    pub api: Option<Api>,
}

/// The API a pool's devices are handed out through: one, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Kubelet's device-plugin API: an extended resource.
    DevicePlugin,
    /// Dynamic Resource Allocation: ResourceSlices and claims.
    Dra,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::DevicePlugin => "devicePlugin",
            Api::Dra => "dra",
        })
    }
}

impl ResourceConfig {
    /// The extended resource name kubelet sees, `<prefix>/<name>`.
    pub fn resource_name(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }
}

#[derive(Debug, Default)]
pub struct Config {
    pub resources: Vec<ResourceConfig>,
    /// What was dropped or ignored, each naming its pool.
    pub warnings: Vec<String>,
}

/// An object's entries by lower-cased key.
fn lowered(object: &Map<String, Value>) -> BTreeMap<String, &Value> {
    object
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A DNS subdomain (RFC 1123), as Kubernetes requires of an extended
/// resource's prefix: lower-case labels of letters, digits and '-', each
/// starting and ending with a letter or digit, 63 bytes at most, 253 in all.
/// A node's name is one too.
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 253
        && prefix.split('.').all(|label| {
            let bytes = label.as_bytes();
            (1..=63).contains(&bytes.len())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// The largest config file read: far above any real one, and a config
/// path that points at something endless (`/dev/zero`) ends there.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a config cannot be used: the daemon does not start (or, at a
/// reload, keeps the config it has).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read {}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("read {}: larger than {MAX_CONFIG_BYTES} bytes, not a config", path.display())]
    TooLarge { path: PathBuf },
    /// The text is not a config: the reason names the entry and the value.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads and parses a config file, printing its warnings.
    pub fn load(path: &Path, default_prefix: &str) -> Result<Self, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Only a regular file (through symlinks, as a ConfigMap volume has
        // them): a FIFO would block the read forever.
        if !std::fs::metadata(path).map_err(read)?.is_file() {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
            .map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let config = Config::parse(&text, default_prefix).map_err(ConfigError::Invalid)?;
        for warning in &config.warnings {
            warn!("{warning}");
        }
        Ok(config)
    }

    /// Parses a config; `Err` is a one-line reason the daemon cannot start.
    pub fn parse(text: &str, default_prefix: &str) -> Result<Self, String> {
        if !valid_prefix(default_prefix) {
            return Err(format!(
                "--resource-prefix \"{default_prefix}\" is not a DNS subdomain (lower-case, as example.com)"
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let top = value.as_object().ok_or("config is not a JSON object")?;
        let list = lowered(top)
            .get("resourcelist")
            .and_then(|v| v.as_array())
            .ok_or("config has no resourceList")?
            .clone();
        let mut config = Config::default();
        let mut seen = HashSet::new();
        for (index, entry) in list.iter().enumerate() {
            let entry = entry
                .as_object()
                .ok_or_else(|| format!("resourceList[{index}] is not an object"))?;
            let fields = lowered(entry);
            let name = fields
                .get("resourcename")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if !valid_name(name) {
                return Err(format!(
                    "resourceList[{index}]: resourceName {} must match ^[a-zA-Z0-9_-]+$",
                    fields
                        .get("resourcename")
                        .map_or_else(|| "(none)".to_string(), |v| v.to_string())
                ));
            }
            let prefix = match fields.get("resourceprefix") {
                None => default_prefix.to_string(),
                Some(v) => match v.as_str() {
                    Some(p) if valid_prefix(p) => p.to_string(),
                    _ => {
                        return Err(format!(
                        "resourceList[{index}] ({name}): resourcePrefix {v} is not a DNS subdomain (lower-case, as example.com)"
                    ))
                    }
                },
            };
            let full = format!("{prefix}/{name}");
            if !seen.insert(full.clone()) {
                return Err(format!(
                    "resourceList[{index}]: resource {full} is configured twice"
                ));
            }
            match resource(name, prefix, &fields, &mut config.warnings) {
                Ok(resource) => config.resources.push(resource),
                Err(reason) => config
                    .warnings
                    .push(format!("pool {full} dropped: {reason}")),
            }
        }
        Ok(config)
    }
}

fn resource(
    name: &str,
    prefix: String,
    fields: &BTreeMap<String, &Value>,
    warnings: &mut Vec<String>,
) -> Result<ResourceConfig, String> {
    let full = format!("{prefix}/{name}");
    match fields.get("devicetype").map(|v| v.as_str()) {
        None | Some(Some("netDevice")) | Some(Some("")) => {}
        Some(Some(kind @ ("accelerator" | "auxNetDevice"))) => {
            return Err(format!("deviceType {kind} is not supported"))
        }
        Some(_) => {
            let value = fields
                .get("devicetype")
                .map(|v| v.to_string())
                .unwrap_or_default();
            return Err(format!("deviceType {value} is unknown"));
        }
    }
    let policy = match fields.get("allocationpolicy") {
        None => Policy::Spread,
        Some(v) => match v.as_str() {
            Some("spread") => Policy::Spread,
            Some("pack") => Policy::Pack,
            _ => return Err(format!("allocationPolicy {v} is not spread or pack")),
        },
    };
    let api = match fields.get("api") {
        None => None,
        Some(v) => match v.as_str() {
            Some("devicePlugin") => Some(Api::DevicePlugin),
            Some("dra") => Some(Api::Dra),
            _ => return Err(format!("api {v} is not devicePlugin or dra")),
        },
    };
    let exclude_topology = match fields.get("excludetopology") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("excludeTopology: {v} is not true or false"))?,
    };
    let mut additional_info = BTreeMap::new();
    if let Some(info) = fields.get("additionalinfo") {
        let info = info.as_object().ok_or("additionalInfo is not an object")?;
        for (device, entries) in info {
            let entries = entries
                .as_object()
                .ok_or_else(|| format!("additionalInfo.{device} is not an object"))?;
            let mut values = BTreeMap::new();
            for (key, value) in entries {
                let value = value.as_str().ok_or_else(|| {
                    format!("additionalInfo.{device}.{key}: {value} is not a string")
                })?;
                values.insert(key.clone(), value.to_string());
            }
            additional_info.insert(device.clone(), values);
        }
    }
    let objects: Vec<&Map<String, Value>> = match fields.get("selectors") {
        Some(Value::Object(one)) => vec![one],
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| format!("selectors: {v} is not an object"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err("selectors is an empty list".into()),
        Some(other) => return Err(format!("selectors: {other} is not an object or a list")),
        None => return Err("no selectors".into()),
    };
    let mut selectors = Vec::new();
    for object in objects {
        let mut notes = Vec::new();
        selectors.push(Selector::parse(object, &mut notes)?);
        warnings.extend(notes.into_iter().map(|n| format!("pool {full}: {n}")));
    }
    for key in fields.keys() {
        let known = [
            "resourcename",
            "resourceprefix",
            "devicetype",
            "excludetopology",
            "additionalinfo",
            "selectors",
            "allocationpolicy",
            "api",
        ];
        if !known.contains(&key.as_str()) {
            warnings.push(format!("pool {full}: unknown key \"{key}\" ignored"));
        }
    }
    Ok(ResourceConfig {
        name: name.to_string(),
        prefix,
        exclude_topology,
        additional_info,
        selectors,
        policy,
        api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::selector::PfMatch;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn upstream_readme_example() {
        let config = Config::parse(&fixture("upstream-readme.json"), DEFAULT_PREFIX).unwrap();
        let names: Vec<String> = config.resources.iter().map(|r| r.resource_name()).collect();
        assert_eq!(
            names,
            [
                "intel.com/intel_sriov_netdevice",
                "intel.com/intel_sriov_dpdk",
                "mellanox.com/mlnx_sriov_rdma",
                "intel.com/infiniband_rdma_netdevs",
                "intel.com/intel_sriov_token",
                "intel.com/brcm_sriov_bnxt",
            ]
        );
        let dpdk = &config.resources[1].selectors[0];
        assert!(dpdk.need_vhost_net);
        assert_eq!(
            dpdk.pf_names[1],
            PfMatch {
                pf: "enp2s2f1".into(),
                vfs: None
            }
        );
        assert!(config.resources[2].selectors[0].is_rdma);
        assert_eq!(
            config.resources[4].additional_info["*"]["token"],
            "3e49019f-412f-4f02-824e-4cd195944205"
        );
        let dropped: Vec<&str> = config.warnings.iter().map(String::as_str).collect();
        assert_eq!(
            dropped,
            [
                "pool intel.com/ct6dx_vdpa_vhost dropped: vdpaType is not supported",
                "pool intel.com/intel_fpga dropped: deviceType accelerator is not supported",
                "pool nvidia.com/bf2_sf dropped: deviceType auxNetDevice is not supported",
            ]
        );
    }

    #[test]
    fn upstream_doc_example_with_odd_keys() {
        let config =
            Config::parse(&fixture("upstream-config-file-doc.json"), "example.org").unwrap();
        let pool = &config.resources[0];
        assert_eq!(pool.resource_name(), "example.org/sriov_pf_ranges");
        assert_eq!(
            pool.selectors[0].pf_names[0],
            PfMatch {
                pf: "ens785f0".into(),
                vfs: Some(vec![0..=4])
            }
        );
        assert!(!pool.selectors[0].is_rdma);
        assert_eq!(
            config.warnings,
            ["pool example.org/sriov_pf_ranges: unknown selector key \"SelectorObj\" ignored"]
        );
    }

    #[test]
    fn fatal_errors_name_the_entry() {
        for (json, expected) in [
            ("{", "config is not valid JSON"),
            ("[]", "config is not a JSON object"),
            ("{}", "config has no resourceList"),
            (
                r#"{"resourceList":[1]}"#,
                "resourceList[0] is not an object",
            ),
            (
                r#"{"resourceList":[{"resourceName":"bad name","selectors":{}}]}"#,
                r#"resourceList[0]: resourceName "bad name" must match"#,
            ),
            (
                r#"{"resourceList":[{"selectors":{}}]}"#,
                "resourceList[0]: resourceName",
            ),
            (
                r#"{"resourceList":[{"resourceName":"a","selectors":{}},{"resourceName":"a","resourcePrefix":"intel.com","selectors":{}}]}"#,
                "resourceList[1]: resource intel.com/a is configured twice",
            ),
            (
                r#"{"resourceList":[{"resourceName":"a","resourcePrefix":"a/b","selectors":{}}]}"#,
                r#"resourceList[0] (a): resourcePrefix "a/b" is not a DNS subdomain"#,
            ),
            (
                r#"{"resourceList":[{"resourceName":"a","resourcePrefix":"Intel.com","selectors":{}}]}"#,
                r#"resourceList[0] (a): resourcePrefix "Intel.com" is not a DNS subdomain"#,
            ),
        ] {
            let err = Config::parse(json, DEFAULT_PREFIX).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }

    #[test]
    fn input_edges() {
        // Of two keys differing only in case, the last wins, as in Go.
        let config = Config::parse(
            r#"{"resourceList":[{"resourceName":"a","selectors":{"drivers":["x"],"Drivers":["iavf"]},
                "allocationPolicy":"pack","Selectors":{"drivers":["igbvf"]}}]}"#,
            DEFAULT_PREFIX,
        )
        .unwrap();
        assert_eq!(config.resources[0].selectors[0].drivers, ["igbvf"]);
        assert!(
            config.warnings.is_empty(),
            "allocationPolicy is known: {:?}",
            config.warnings
        );
        // Values no device can have are kept, with a warning naming pool
        // and value.
        let config = Config::parse(
            r#"{"resourceList":[{"resourceName":"a","selectors":{"vendors":["zzzz","0x8086","8086"],
                "pciAddresses":["zz"],"rootDevices":["not-a-pci"]}}]}"#,
            DEFAULT_PREFIX,
        )
        .unwrap();
        assert_eq!(
            config.warnings,
            [
                "pool intel.com/a: selector vendors: \"zzzz\" can never match (ids are four hex digits, as in 8086)",
                "pool intel.com/a: selector vendors: \"0x8086\" can never match (ids are four hex digits, as in 8086)",
                "pool intel.com/a: selector pciAddresses: \"zz\" can never match (a PCI address is DDDD:BB:DD.F)",
                "pool intel.com/a: selector rootDevices: \"not-a-pci\" can never match (a root device is a PF's PCI address DDDD:BB:DD.F)",
            ]
        );
        // The default prefix is checked as resourcePrefix is.
        for prefix in ["Intel.com", "a/b", "-a.com", ""] {
            let err = Config::parse(r#"{"resourceList":[]}"#, prefix).unwrap_err();
            assert_eq!(
                err,
                format!("--resource-prefix \"{prefix}\" is not a DNS subdomain (lower-case, as example.com)")
            );
        }
        Config::parse(r#"{"resourceList":[]}"#, "sriov.example-1.org").unwrap();
    }

    #[test]
    fn api_chooses_device_plugin_or_dra() {
        let config = Config::parse(
            r#"{"resourceList":[
                {"resourceName":"a","selectors":{}},
                {"resourceName":"b","API":"dra","selectors":{}},
                {"resourceName":"c","api":"devicePlugin","selectors":{}}
            ]}"#,
            DEFAULT_PREFIX,
        )
        .unwrap();
        let apis: Vec<Option<Api>> = config.resources.iter().map(|r| r.api).collect();
        assert_eq!(apis, [None, Some(Api::Dra), Some(Api::DevicePlugin)]);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_bad_pool_is_dropped_and_the_rest_kept() {
        let config = Config::parse(
            r#"{"resourceList":[
                {"resourceName":"a","selectors":{"vendors":"8086"}},
                {"resourceName":"b","selectors":[]},
                {"resourceName":"c"},
                {"resourceName":"d","selectors":{"pfNames":["ens1f0#3-1"]}},
                {"resourceName":"e","excludeTopology":"yes","selectors":{}},
                {"resourceName":"f","allocationPolicy":"random","selectors":{}},
                {"resourceName":"g","deviceType":"gpu","selectors":{}},
                {"resourceName":"h","api":"DRA","selectors":{}},
                {"resourceName":"ok","ExcludeTopology":true,"Selectors":[{"Drivers":["iavf"]},{"pciAddresses":["0000:01:10.0"]}],"colour":"blue"}
            ]}"#,
            DEFAULT_PREFIX,
        )
        .unwrap();
        assert_eq!(config.resources.len(), 1);
        let ok = &config.resources[0];
        assert!(ok.exclude_topology);
        assert_eq!(ok.selectors.len(), 2);
        assert_eq!(ok.selectors[0].drivers, ["iavf"]);
        assert_eq!(
            config.warnings,
            [
                "pool intel.com/a dropped: vendors: \"8086\" is not a list",
                "pool intel.com/b dropped: selectors is an empty list",
                "pool intel.com/c dropped: no selectors",
                "pool intel.com/d dropped: pfNames: \"ens1f0#3-1\": \"3-1\" is not a VF index or range a-b",
                "pool intel.com/e dropped: excludeTopology: \"yes\" is not true or false",
                "pool intel.com/f dropped: allocationPolicy \"random\" is not spread or pack",
                "pool intel.com/g dropped: deviceType \"gpu\" is unknown",
                "pool intel.com/h dropped: api \"DRA\" is not devicePlugin or dra",
                "pool intel.com/ok: unknown key \"colour\" ignored",
            ]
        );
    }
}
