//! The NPWG device-info file (device-info-spec 1.1.0) that a runtime asks
//! for with the `CNIDeviceInfoFile` capability.

use std::fs;
use std::path::Path;

use serde_json::json;
use sriovnet::PciAddress;

use crate::{Error, Result};

pub fn write(path: &Path, device: PciAddress, pf: PciAddress) -> Result<()> {
    let info = json!({
        "type": "pci",
        "version": "1.1.0",
        "pci": { "pci-address": device.to_string(), "pf-pci-address": pf.to_string() }
    });
    let io = |e: std::io::Error| Error::Io(format!("write device info {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, info.to_string()).map_err(io)?;
    fs::rename(&temporary, path).map_err(io)
}
