//! `logLevel` and `logFile`, as upstream has them. Lines go to the log file
//! when one is set, to stderr otherwise; stdout belongs to the CNI result.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    Panic,
    Error,
    Warning,
    #[default]
    Info,
    Debug,
}

impl FromStr for Level {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "panic" => Ok(Level::Panic),
            "error" => Ok(Level::Error),
            "warning" => Ok(Level::Warning),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(()),
        }
    }
}

pub struct Log {
    level: Level,
    file: Option<File>,
    context: String,
    /// Lines carry the milliseconds since the call started, to see where
    /// an ADD spends its time.
    start: Instant,
}

impl Log {
    /// A log for one call; `context` names the attachment in every line.
    pub fn new(level: Level, path: Option<&std::path::Path>, context: String) -> Self {
        // A log file that cannot be opened must not fail the call: fall back to stderr.
        let file = path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        Log {
            level,
            file,
            context,
            start: Instant::now(),
        }
    }

    fn write(&self, level: Level, message: &str) {
        if level > self.level {
            return;
        }
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let elapsed = self.start.elapsed().as_secs_f64() * 1000.0;
        let line = format!(
            "{seconds} {level:?} sriov {} +{elapsed:.1}ms: {message}\n",
            self.context
        );
        match &self.file {
            Some(file) => drop((&*file).write_all(line.as_bytes())),
            None => eprint!("{line}"),
        }
    }

    pub fn error(&self, message: &str) {
        self.write(Level::Error, message)
    }

    pub fn warning(&self, message: &str) {
        self.write(Level::Warning, message)
    }

    pub fn info(&self, message: &str) {
        self.write(Level::Info, message)
    }

    pub fn debug(&self, message: &str) {
        self.write(Level::Debug, message)
    }
}
