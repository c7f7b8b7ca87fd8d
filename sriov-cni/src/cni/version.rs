//! CNI spec versions and what each allows.

use super::{Error, Result};

pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST: &str = "1.1.0";

/// A spec version as (major, minor, patch), for ordering.
fn parse(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Refuses a version this plugin does not speak, or one too old for `command`.
pub fn check(version: &str, command: &str) -> Result<()> {
    if !SUPPORTED.contains(&version) {
        return Err(Error::IncompatibleVersion(format!(
            "cniVersion {version:?} is not supported; supported: {}",
            SUPPORTED.join(", ")
        )));
    }
    let needed = match command {
        "CHECK" => "0.4.0",
        "GC" | "STATUS" => "1.1.0",
        _ => return Ok(()),
    };
    if parse(version) < parse(needed) {
        return Err(Error::IncompatibleVersion(format!(
            "{command} needs cniVersion {needed} or later, the config has {version}"
        )));
    }
    Ok(())
}

/// Results before 1.0.0 carry `"version"` on each IP.
pub fn has_ip_version_field(version: &str) -> bool {
    parse(version) < parse("1.0.0")
}

/// 1.1.0 adds `pciID` and `mtu` to interfaces.
pub fn has_interface_pci_id(version: &str) -> bool {
    parse(version) >= parse("1.1.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_per_command() {
        for v in SUPPORTED {
            check(v, "ADD").unwrap();
            check(v, "DEL").unwrap();
        }
        assert_eq!(check("0.2.0", "ADD").unwrap_err().code(), 1);
        assert_eq!(check("", "ADD").unwrap_err().code(), 1);
        assert_eq!(check("1.1", "ADD").unwrap_err().code(), 1);
        check("0.4.0", "CHECK").unwrap();
        let err = check("0.3.1", "CHECK").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CHECK needs cniVersion 0.4.0 or later, the config has 0.3.1"
        );
        check("1.1.0", "GC").unwrap();
        assert!(check("1.0.0", "GC").is_err());
        assert!(check("1.0.0", "STATUS").is_err());
    }

    #[test]
    fn result_shapes_follow_the_version() {
        assert!(has_ip_version_field("0.3.0") && has_ip_version_field("0.4.0"));
        assert!(!has_ip_version_field("1.0.0"));
        assert!(has_interface_pci_id("1.1.0") && !has_interface_pci_id("1.0.0"));
    }
}
