//! The CNI_* environment a runtime sets for each call.

use super::{Error, Result};
use sriovnet::MacAddress;

#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: CniArgs,
    /// CNI_ARGS as given, passed on to the IPAM plugin.
    pub args_text: String,
    pub path: String,
}

/// `CNI_ARGS`: `K=V;K=V`. Unknown keys are an error unless `IgnoreUnknown`
/// is set, as in the reference implementation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniArgs {
    pub mac: Option<MacAddress>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
}

impl CniArgs {
    pub fn parse(text: &str) -> Result<Self> {
        let mut args = CniArgs::default();
        let pairs: Vec<(&str, &str)> = text
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                pair.split_once('=').ok_or_else(|| {
                    Error::Environment(format!("CNI_ARGS: {pair:?} is not KEY=VALUE"))
                })
            })
            .collect::<Result<_>>()?;
        let ignore_unknown = pairs.iter().any(|(k, v)| {
            *k == "IgnoreUnknown" && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
        });
        for (key, value) in pairs {
            match key {
                "MAC" => {
                    args.mac = Some(value.parse().map_err(|_| {
                        Error::Environment(format!("CNI_ARGS: MAC {value:?} is not a MAC address"))
                    })?)
                }
                "K8S_POD_NAMESPACE" => args.pod_namespace = Some(value.to_string()),
                "K8S_POD_NAME" => args.pod_name = Some(value.to_string()),
                "K8S_POD_UID" => args.pod_uid = Some(value.to_string()),
                "IgnoreUnknown" | "K8S_POD_INFRA_CONTAINER_ID" => {}
                _ if ignore_unknown => {}
                other => {
                    return Err(Error::Environment(format!(
                        "CNI_ARGS: unknown key {other:?} (set IgnoreUnknown=1 to allow it)"
                    )))
                }
            }
        }
        Ok(args)
    }
}

/// A path component that becomes part of a file name.
fn check_component(name: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.contains('/')
        || value == "."
        || value == ".."
        || value.contains('\0')
    {
        return Err(Error::Environment(format!(
            "{name} {value:?} is not a valid name"
        )));
    }
    Ok(())
}

impl Env {
    pub fn from_process() -> Result<Self> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        Ok(Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: CniArgs::parse(&var("CNI_ARGS"))?,
            args_text: var("CNI_ARGS"),
            path: var("CNI_PATH"),
        })
    }

    /// What every command on one attachment (ADD, DEL, CHECK) needs.
    pub fn require_attachment(&self, needs_netns: bool) -> Result<()> {
        check_component("CNI_CONTAINERID", &self.container_id)?;
        check_component("CNI_IFNAME", &self.ifname)?;
        if self.ifname.len() > 15 {
            return Err(Error::Environment(format!(
                "CNI_IFNAME {:?} is longer than the kernel's 15 characters",
                self.ifname
            )));
        }
        if needs_netns && self.netns.is_empty() {
            return Err(Error::Environment("CNI_NETNS is not set".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_args() {
        let args = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;MAC=02:00:00:00:00:09;Other=x",
        )
        .unwrap();
        assert_eq!(args.pod_namespace.as_deref(), Some("ns"));
        assert_eq!(args.pod_name.as_deref(), Some("pod"));
        assert_eq!(args.pod_uid.as_deref(), Some("u"));
        assert_eq!(args.mac.unwrap().to_string(), "02:00:00:00:00:09");
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let err = CniArgs::parse("Other=x").unwrap_err();
        assert_eq!(err.code(), 4);
        assert!(err.to_string().contains("\"Other\""), "{err}");
        assert!(CniArgs::parse("MAC=zz")
            .unwrap_err()
            .to_string()
            .contains("\"zz\""));
        assert!(CniArgs::parse("novalue").is_err());
    }

    #[test]
    fn attachment_names_must_be_safe() {
        let mut env = Env {
            container_id: "abc".into(),
            ifname: "net1".into(),
            netns: "/var/run/netns/x".into(),
            ..Env::default()
        };
        env.require_attachment(true).unwrap();
        for bad in ["../x", "", "a/b"] {
            env.container_id = bad.into();
            assert_eq!(env.require_attachment(true).unwrap_err().code(), 4, "{bad}");
        }
        env.container_id = "abc".into();
        env.ifname = "averylonginterfacename".into();
        assert!(env.require_attachment(true).is_err());
    }
}
