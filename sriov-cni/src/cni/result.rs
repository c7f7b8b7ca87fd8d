//! CNI results: read from an IPAM plugin in whatever version it speaks,
//! written in the version the runtime asked for.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use sriovnet::{IpNetwork, MacAddress};

use super::version;
use super::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<MacAddress>,
    pub mtu: Option<u32>,
    pub sandbox: Option<String>,
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpConfig {
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub destination: IpNetwork,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<RouteConfig>,
    pub dns: Option<Value>,
}

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn decode(what: &str, value: &Value) -> Error {
    Error::Decode(format!("{what}: {value} is not valid"))
}

impl CniResult {
    /// Reads a result (an IPAM plugin's, or a `prevResult`) of any
    /// supported version.
    pub fn parse(value: &Value) -> Result<Self> {
        let mut result = CniResult::default();
        for ip in value
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let address = field(ip, "address")
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| decode("ips[].address", ip))?;
            let gateway = match field(ip, "gateway") {
                Some(g) => Some(g.parse().map_err(|_| decode("ips[].gateway", ip))?),
                None => None,
            };
            result.ips.push(IpConfig { address, gateway });
        }
        for route in value
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let destination = field(route, "dst")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| decode("routes[].dst", route))?;
            let gateway = match field(route, "gw") {
                Some(g) => Some(g.parse().map_err(|_| decode("routes[].gw", route))?),
                None => None,
            };
            result.routes.push(RouteConfig {
                destination,
                gateway,
            });
        }
        for interface in value
            .get("interfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            result.interfaces.push(Interface {
                name: field(interface, "name").unwrap_or_default().to_string(),
                mac: field(interface, "mac").and_then(|m| m.parse().ok()),
                mtu: interface
                    .get("mtu")
                    .and_then(Value::as_u64)
                    .map(|m| m as u32),
                sandbox: field(interface, "sandbox").map(str::to_string),
                pci_id: field(interface, "pciID").map(str::to_string),
            });
        }
        result.dns = value.get("dns").filter(|d| !d.is_null()).cloned();
        Ok(result)
    }

    /// The gateway a route without one goes through: the first IP's of the
    /// same family, as the reference plugins do.
    pub fn route_gateway(&self, route: &RouteConfig) -> Option<IpAddr> {
        route.gateway.or_else(|| {
            self.ips
                .iter()
                .filter(|ip| ip.address.address.is_ipv4() == route.destination.address.is_ipv4())
                .find_map(|ip| ip.gateway)
        })
    }

    /// The result as the spec's `version` writes it.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let with_ip_version = version::has_ip_version_field(cni_version);
        let with_pci_id = version::has_interface_pci_id(cni_version);
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                if let Some(mac) = i.mac {
                    o.insert("mac".into(), json!(mac.to_string()));
                }
                if let Some(sandbox) = &i.sandbox {
                    o.insert("sandbox".into(), json!(sandbox));
                }
                if with_pci_id {
                    if let Some(mtu) = i.mtu {
                        o.insert("mtu".into(), json!(mtu));
                    }
                    if let Some(pci) = &i.pci_id {
                        o.insert("pciID".into(), json!(pci));
                    }
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if with_ip_version {
                    let family = if ip.address.address.is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".into(), json!(family));
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gateway) = ip.gateway {
                    o.insert("gateway".into(), json!(gateway.to_string()));
                }
                if !self.interfaces.is_empty() {
                    o.insert("interface".into(), json!(0));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("dst".into(), json!(r.destination.to_string()));
                if let Some(gw) = r.gateway {
                    o.insert("gw".into(), json!(gw.to_string()));
                }
                Value::Object(o)
            })
            .collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(cni_version));
        out.insert("interfaces".into(), Value::Array(interfaces));
        out.insert("ips".into(), Value::Array(ips));
        if !routes.is_empty() {
            out.insert("routes".into(), Value::Array(routes));
        }
        out.insert("dns".into(), self.dns.clone().unwrap_or_else(|| json!({})));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult::parse(&json!({
            "cniVersion": "0.4.0",
            "ips": [
                {"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"version": "6", "address": "2001:db8::5/64"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.254"}],
            "dns": {"nameservers": ["10.1.0.2"]}
        }))
        .unwrap()
    }

    #[test]
    fn reads_ipam_results_of_old_and_new_versions() {
        let old = sample();
        let new = CniResult::parse(&json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}, {"address": "2001:db8::5/64"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.254"}],
            "dns": {"nameservers": ["10.1.0.2"]}
        }))
        .unwrap();
        assert_eq!(old, new);
        assert_eq!(
            old.route_gateway(&old.routes[0]).unwrap().to_string(),
            "10.1.0.1"
        );
        assert_eq!(
            old.route_gateway(&old.routes[1]).unwrap().to_string(),
            "10.1.0.254"
        );
    }

    #[test]
    fn writes_each_version_in_its_shape() {
        let mut result = sample();
        result.interfaces.push(Interface {
            name: "net1".into(),
            mac: Some("02:00:00:00:00:01".parse().unwrap()),
            mtu: Some(9000),
            sandbox: Some("/var/run/netns/x".into()),
            pci_id: Some("0000:01:10.0".into()),
        });
        for version in ["0.3.0", "0.3.1", "0.4.0"] {
            let v = result.to_json(version);
            assert_eq!(v["cniVersion"], version);
            assert_eq!(
                v["ips"][0],
                json!({"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0})
            );
            assert_eq!(
                v["interfaces"][0],
                json!({"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/x"})
            );
        }
        let v = result.to_json("1.0.0");
        assert_eq!(
            v["ips"][1],
            json!({"address": "2001:db8::5/64", "interface": 0})
        );
        assert!(v["interfaces"][0].get("pciID").is_none());
        let v = result.to_json("1.1.0");
        assert_eq!(v["interfaces"][0]["pciID"], "0000:01:10.0");
        assert_eq!(v["interfaces"][0]["mtu"], 9000);
        assert_eq!(
            v["routes"][1],
            json!({"dst": "192.168.0.0/16", "gw": "10.1.0.254"})
        );
        assert_eq!(v["dns"]["nameservers"][0], "10.1.0.2");
    }

    #[test]
    fn bad_ipam_output_is_a_decode_error() {
        let err = CniResult::parse(&json!({"ips": [{"address": "10.1.0.5"}]})).unwrap_err();
        assert_eq!(err.code(), 6);
        assert!(err.to_string().starts_with("ips[].address"), "{err}");
    }
}
