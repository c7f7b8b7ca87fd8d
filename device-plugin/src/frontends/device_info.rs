//! NPWG device-info files for allocated devices, where Multus and CNIs look
//! for them: `<dir>/<prefix>-<name>-<pci address>-device.json`, upstream's
//! naming. Written at Allocate; a pool's files left by an earlier run, and
//! the file of a device that left the pool, are removed.

use std::path::{Path, PathBuf};
use tracing::warn;

use crate::core::pool::Member;

pub const DEFAULT_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

fn prefix(resource_name: &str) -> String {
    format!("{}-", resource_name.replace('/', "-"))
}

pub fn path(dir: &Path, resource_name: &str, id: &str) -> PathBuf {
    dir.join(format!("{}{id}-device.json", prefix(resource_name)))
}

/// Writes the files of devices just allocated; a failure is reported and
/// does not fail the allocation (not every pod's network reads them).
pub fn write(dir: &Path, resource_name: &str, members: &[&Member]) {
    for member in members {
        let device = &member.device;
        let file = path(dir, resource_name, &device.address.to_string());
        if let Err(e) = sriovnet::write_device_info(&file, device.address, device.pf_address) {
            warn!("device info for {}: {e}", device.address);
        }
    }
}

/// Removes every file of a pool, e.g. left by an earlier run.
pub fn remove_all(dir: &Path, resource_name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix(resource_name);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with("-device.json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub fn remove(dir: &Path, resource_name: &str, id: &str) {
    let _ = std::fs::remove_file(path(dir, resource_name, id));
}
