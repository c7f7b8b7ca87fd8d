//! CDI (`--cdi`): one Container Device Interface spec per pool, so that a
//! CDI-aware runtime resolves `<prefix>/net-pci=<pci address>` itself.
//! Upstream's kind and naming: every pool's kind is `<prefix>/net-pci` and
//! its spec file `sriov-dp-<prefix>-<name>.json`; a device is named by its
//! PCI address, unique across pools.

use std::path::{Path, PathBuf};
use tracing::warn;

use serde_json::{json, Value};

use crate::core::config::ResourceConfig;
use crate::core::container::device_nodes;
use crate::core::view::PoolView;

pub const DEFAULT_DIR: &str = "/var/run/cdi";
const FILE_PREFIX: &str = "sriov-dp-";

pub fn kind(config: &ResourceConfig) -> String {
    format!("{}/net-pci", config.prefix)
}

fn path(dir: &Path, config: &ResourceConfig) -> PathBuf {
    dir.join(format!(
        "{FILE_PREFIX}{}-{}.json",
        config.prefix, config.name
    ))
}

pub fn spec(view: &PoolView, dev: &Path) -> Value {
    let devices: Vec<Value> = view
        .members
        .iter()
        .map(|m| {
            let nodes: Vec<Value> = device_nodes(m, dev)
                .iter()
                .map(|path| json!({ "path": path, "hostPath": path, "permissions": "rw" }))
                .collect();
            json!({ "name": m.device.address.to_string(), "containerEdits": { "deviceNodes": nodes } })
        })
        .collect();
    json!({ "cdiVersion": "0.6.0", "kind": kind(&view.config), "devices": devices })
}

/// Writes a pool's spec atomically; a failure is reported, and the pool is
/// still served.
pub fn write(dir: &Path, view: &PoolView, dev: &Path) {
    let file = path(dir, &view.config);
    let temporary = file.with_extension("tmp");
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&temporary, spec(view, dev).to_string()))
        .and_then(|()| std::fs::rename(&temporary, &file));
    if let Err(e) = written {
        warn!("CDI spec {}: {e}", file.display());
    }
}

/// Removes a pool's spec, when the pool is gone.
pub fn remove(dir: &Path, config: &ResourceConfig) {
    let _ = std::fs::remove_file(path(dir, config));
}

/// Removes the specs of an earlier run.
pub fn remove_all(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
