//! Config changes on disk, seen by inotify on the config file's directory:
//! a file written in place or replaced by rename, and a ConfigMap volume's
//! update, which swaps its `..data` symlink by rename.

use std::path::Path;

use inotify::{EventStream, Inotify, WatchMask};

pub type ConfigEvents = EventStream<[u8; 1024]>;

pub fn watch(config_file: &Path) -> Result<ConfigEvents, String> {
    let dir = match config_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    inotify
        .watches()
        .add(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
        .map_err(|e| format!("watch {}: {e}", dir.display()))?;
    inotify
        .into_event_stream([0u8; 1024])
        .map_err(|e| format!("inotify: {e}"))
}
