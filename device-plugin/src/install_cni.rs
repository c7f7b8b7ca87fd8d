//! `install-cni`: the DaemonSet's init step that puts the `sriov` CNI
//! executable into the host's CNI directory.
//!
//! A runtime may execute `sriov` at any moment during an upgrade, so the
//! file it finds is always whole: the new one is written beside it under a
//! temporary name, synced, and renamed over it. Writing into the old file
//! instead would fail with "text file busy" while a pod starts, or let a
//! runtime execute half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The installed file's name: NADs say `"type": "sriov"`.
pub const NAME: &str = "sriov";
/// Temporary files start with this; ones a killed run left are removed.
const TEMP_PREFIX: &str = ".sriov.install-";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read {}: {source}", path.display())]
    Source { path: PathBuf, source: io::Error },
    #[error("{} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("{} does not exist", dir.display())]
    NoDirectory { dir: PathBuf },
    #[error("cannot write into {}: {source}", dir.display())]
    Write { dir: PathBuf, source: io::Error },
}

/// What `install` did, for its one line of output.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    Replaced,
    UpToDate,
}

/// The `sriov` executable next to the running one: both are in the image's
/// `/usr/bin`, and `current_exe` resolves the `sriovdp` link.
pub fn default_source() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(NAME))
}

/// Installs `source` as `dir/sriov`, unless that already has the same
/// content and is executable.
pub fn install(source: &Path, dir: &Path) -> Result<Outcome, InstallError> {
    let content = fs::read(source).map_err(|e| InstallError::Source {
        path: source.to_owned(),
        source: e,
    })?;
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(InstallError::NotADirectory { dir: dir.into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(InstallError::NoDirectory { dir: dir.into() })
        }
        Err(e) => {
            return Err(InstallError::Write {
                dir: dir.into(),
                source: e,
            })
        }
    }
    // Two installs at once (two pods during an upgrade gone wrong, each its
    // process 1, so the same temporary name) take turns.
    let write_error = |e| InstallError::Write {
        dir: dir.into(),
        source: e,
    };
    let _turn = File::open(dir)
        .and_then(|d| {
            Flock::lock(d, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))
        })
        .map_err(write_error)?;
    remove_leftovers(dir);
    let target = dir.join(NAME);
    let existing = fs::read(&target).ok();
    if existing.as_deref() == Some(&content[..]) && is_executable(&target) {
        return Ok(Outcome::UpToDate);
    }
    let temp = dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
    let written = write_synced(&temp, &content).and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(write_error(e));
    }
    // The rename is durable once the directory is synced too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)?;
    Ok(if existing.is_some() {
        Outcome::Replaced
    } else {
        Outcome::Installed
    })
}

fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?;
    file.write_all(content)?;
    // The mode given at open is masked by the umask.
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Temporary files of runs that were killed before their rename.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
