//! STATUS: whether this host can serve an ADD now.

use std::path::Path;

use crate::cni::Env;
use crate::config::NetConf;
use crate::host::Host;
use crate::{Error, Result};

pub fn status(env: &Env, conf: &NetConf, host: &Host) -> Result<()> {
    let devices = host.sysfs.pci_devices();
    if !devices.is_dir() {
        return Err(Error::Unavailable(format!(
            "{} cannot be read",
            devices.display()
        )));
    }
    std::fs::create_dir_all(&host.state_dir)
        .and_then(|()| tempfile_in(&host.state_dir))
        .map_err(|e| {
            Error::Unavailable(format!("state directory {}: {e}", host.state_dir.display()))
        })?;
    if let Some(plugin) = &conf.ipam {
        let found = env
            .path
            .split(':')
            .any(|dir| Path::new(dir).join(plugin).is_file());
        if !found {
            return Err(Error::Unavailable(format!(
                "ipam plugin {plugin:?} is not in CNI_PATH {:?}",
                env.path
            )));
        }
    }
    Ok(())
}

/// Proves the directory is writable.
fn tempfile_in(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".status-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}
