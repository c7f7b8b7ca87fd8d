//! NPWG device-info files (device-info-spec 1.1.0, type `pci`): how a
//! device plugin or a CNI tells the rest of the network stack which PCI
//! device an attachment uses.

use std::fs;
use std::path::Path;

use crate::{Error, PciAddress, Result};

/// The file's content for a VF (or a PF, without `pf`).
pub fn pci_device_info(device: PciAddress, pf: Option<PciAddress>) -> String {
    let pf = pf
        .map(|pf| format!(r#","pf-pci-address":"{pf}""#))
        .unwrap_or_default();
    format!(r#"{{"type":"pci","version":"1.1.0","pci":{{"pci-address":"{device}"{pf}}}}}"#)
}

/// Writes a device-info file atomically (a temporary file, then rename), so
/// a reader never sees half of one.
pub fn write_device_info(path: &Path, device: PciAddress, pf: Option<PciAddress>) -> Result<()> {
    let fail = |e: std::io::Error| Error::Read {
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, pci_device_info(device, pf)).map_err(fail)?;
    fs::rename(&temporary, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_follows_the_spec() {
        let vf: PciAddress = "0000:01:10.2".parse().unwrap();
        let pf: PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(
            pci_device_info(vf, Some(pf)),
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:10.2","pf-pci-address":"0000:01:00.0"}}"#
        );
        assert_eq!(
            pci_device_info(pf, None),
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:00.0"}}"#
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.json");
        write_device_info(&path, vf, Some(pf)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            pci_device_info(vf, Some(pf))
        );
        assert_eq!(
            fs::read_dir(dir.path().join("a")).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
