use thiserror::Error;

/// Everything that makes a CNI command fail, each with the code the CNI
/// spec (below 100) or this plugin (100 and above) gives it.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    IncompatibleVersion(String),
    #[error("{0}")]
    UnsupportedField(String),
    #[error("{0}")]
    UnknownContainer(String),
    #[error("{0}")]
    Environment(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    TryAgainLater(String),
    #[error("{0}")]
    Unavailable(String),
    /// The device may not be given to a pod (not a VF, the host's uplink).
    #[error("{0}")]
    Refused(String),
    /// The PF's driver refused a VF setting.
    #[error("{0}")]
    VfSetting(String),
    #[error("{0}")]
    Ipam(String),
    /// A link, address, route or namespace operation failed.
    #[error("{0}")]
    Host(String),
    /// CHECK found the attachment different from what ADD made.
    #[error("{0}")]
    Mismatch(String),
    /// More than one step failed (a teardown goes on after a failure); the
    /// code is the first failure's.
    #[error("{message}")]
    Several { code: u32, message: String },
}

impl Error {
    pub fn code(&self) -> u32 {
        match self {
            Error::IncompatibleVersion(_) => 1,
            Error::UnsupportedField(_) => 2,
            Error::UnknownContainer(_) => 3,
            Error::Environment(_) => 4,
            Error::Io(_) => 5,
            Error::Decode(_) => 6,
            Error::Config(_) => 7,
            Error::TryAgainLater(_) => 11,
            Error::Unavailable(_) => 50,
            Error::Refused(_) => 100,
            Error::VfSetting(_) => 101,
            Error::Ipam(_) => 102,
            Error::Host(_) => 103,
            Error::Mismatch(_) => 104,
            Error::Several { code, .. } => *code,
        }
    }

    /// All of `failures` as one error, or None if there were none.
    fn all(mut failures: Vec<Error>) -> Option<Error> {
        match failures.len() {
            0 => None,
            1 => failures.pop(),
            n => Some(Error::Several {
                code: failures[0].code(),
                message: format!(
                    "{n} steps failed: {}",
                    failures
                        .iter()
                        .map(Error::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
        }
    }
}

/// The failures of a teardown, which goes on after each one.
#[derive(Default)]
pub struct Failures(Vec<Error>);

impl Failures {
    /// Keeps the step's failure, if it failed.
    pub fn note<E: Into<Error>>(&mut self, step: std::result::Result<(), E>) {
        if let Err(e) = step {
            self.0.push(e.into());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Error> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Failures) {
        self.0.extend(other.0);
    }

    /// Ok if nothing failed, else every failure as one error.
    pub fn into_result(self) -> Result<()> {
        Error::all(self.0).map_or(Ok(()), Err)
    }
}

impl From<sriovnet::Error> for Error {
    fn from(e: sriovnet::Error) -> Self {
        match e {
            sriovnet::Error::Vf { .. } => Error::VfSetting(e.to_string()),
            sriovnet::Error::NotAVirtualFunction(_) | sriovnet::Error::NoSuchDevice(_) => {
                Error::Refused(e.to_string())
            }
            other => Error::Host(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
