//! One daemon per device-plugin directory. Two daemons on one directory
//! would take over each other's sockets, and the one that exits would
//! delete the other's. The lock is a `flock` on the directory itself:
//! kubelet deletes every file there when it restarts, so a lock file would
//! not last, while the directory does.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Holds the directory's lock for as long as it lives.
pub struct Instance {
    _lock: Flock<File>,
}

/// Why the directory cannot be served by this daemon.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("device plugin directory {} is not a directory (kubelet's is /var/lib/kubelet/device-plugins)", .0.display())]
    NotADirectory(PathBuf),
    #[error("open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another sriov-device-plugin serves {} ({}); one daemon per directory", path.display(), holder.map_or_else(|| "its process is unknown".to_string(), |pid| format!("pid {pid}")))]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("lock {}: {errno}", path.display())]
    Lock { path: PathBuf, errno: Errno },
}

impl Instance {
    /// Takes the lock, or says who holds it.
    pub fn lock(dir: &Path) -> Result<Self, LockError> {
        let path = dir.to_path_buf();
        if !dir.is_dir() {
            return Err(LockError::NotADirectory(path));
        }
        let file = File::open(dir).map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        let inode = file.metadata().map(|m| m.ino()).ok();
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Instance { _lock: lock }),
            Err((_, Errno::EWOULDBLOCK)) => Err(LockError::Held {
                path,
                holder: inode.and_then(holder),
            }),
            Err((_, errno)) => Err(LockError::Lock { path, errno }),
        }
    }
}

/// The process holding a `flock` on the inode, from /proc/locks
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF`).
fn holder(inode: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let file_inode = fields.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (fields.get(1) == Some(&"FLOCK") && file_inode == inode)
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}
