//! Network namespaces, entered only from fresh threads.
//!
//! `setns` changes the namespace of the calling thread for good, so a thread
//! that is reused (the main thread, a pool worker) must never call it. Work
//! inside a namespace runs on a new scoped thread that ends with the work.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};

use crate::{Error, Result};

/// An open network namespace; the namespace stays alive while this is held.
#[derive(Debug)]
pub struct Netns {
    file: File,
}

impl Netns {
    /// Opens a namespace by path: a pod's `/var/run/netns/<id>` or
    /// `/proc/<pid>/ns/net`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::OpenNetns {
            path: path.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        Ok(Netns { file })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self> {
        Netns::open("/proc/thread-self/ns/net")
    }

    /// Whether this is the calling thread's own namespace (same inode).
    pub fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (
            self.file.metadata(),
            std::fs::metadata("/proc/thread-self/ns/net"),
        ) {
            (Ok(this), Ok(ours)) => (this.dev(), this.ino()) == (ours.dev(), ours.ino()),
            _ => false,
        }
    }

    /// Runs `work` on a new thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(Error::EnterNetns)?;
                work()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
