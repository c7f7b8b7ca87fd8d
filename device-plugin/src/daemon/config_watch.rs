//! Config changes on disk, seen by inotify on the config file's directory:
//! a file written in place or replaced by rename, and a ConfigMap volume's
//! update, which swaps its `..data` symlink by rename.

use std::path::{Path, PathBuf};

use inotify::{EventStream, Inotify, WatchMask};

pub type ConfigEvents = EventStream<[u8; 1024]>;

/// An inotify watch that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("watch {} with inotify: {source}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Events in `dir` of the kinds in `mask`, as a stream.
pub fn watch_dir<const N: usize>(
    dir: &Path,
    mask: WatchMask,
) -> Result<EventStream<[u8; N]>, WatchError> {
    let error = |source| WatchError {
        path: dir.to_path_buf(),
        source,
    };
    let inotify = Inotify::init().map_err(error)?;
    inotify.watches().add(dir, mask).map_err(error)?;
    inotify.into_event_stream([0u8; N]).map_err(error)
}

pub fn watch(config_file: &Path) -> Result<ConfigEvents, WatchError> {
    let dir = match config_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    watch_dir(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
}
