//! The claims this node prepared, on disk: kubelet calls Unprepare for a
//! claim prepared by an earlier run of the daemon (after a restart or an
//! upgrade), and a prepared device stays held across it. One JSON file,
//! replaced atomically (written aside, synced, renamed).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A prepared claim, by what kubelet needs again and what to clean up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedClaim {
    pub namespace: String,
    pub name: String,
    pub devices: Vec<PreparedDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedDevice {
    pub requests: Vec<String>,
    pub pool: String,
    /// The device's name in the ResourceSlice.
    pub device: String,
    pub pci_address: String,
    /// The pool (`<prefix>/<name>`) it came from: it stays there while
    /// prepared, and its device-info file is named after it.
    pub resource: String,
    pub cdi_device_id: String,
}

/// The file's content: claims by uid.
#[derive(Deserialize)]
struct File {
    version: u32,
    claims: BTreeMap<String, PreparedClaim>,
}

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("read checkpoint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {} is not one this daemon wrote: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("write checkpoint {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the checkpoint; a missing file is an empty one.
pub fn load(path: &Path) -> Result<BTreeMap<String, PreparedClaim>, CheckpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // Nothing there (not even its directory): nothing was prepared.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(BTreeMap::new())
        }
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|e| CheckpointError::Parse {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(CheckpointError::Parse {
            path: path.into(),
            reason: format!("version {} (this daemon writes {VERSION})", file.version),
        });
    }
    Ok(file.claims)
}

/// Replaces the checkpoint with `claims`: a crash leaves the old file or
/// the new one, never a part.
pub fn save(path: &Path, claims: &BTreeMap<String, PreparedClaim>) -> Result<(), CheckpointError> {
    let error = |source| CheckpointError::Write {
        path: path.into(),
        source,
    };
    let text = serde_json::to_string(&FileRef {
        version: VERSION,
        claims,
    })
    .map_err(|e| error(std::io::Error::other(e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(error)
}

/// [`File`], borrowing the claims it writes.
#[derive(Serialize)]
struct FileRef<'a> {
    version: u32,
    claims: &'a BTreeMap<String, PreparedClaim>,
}
