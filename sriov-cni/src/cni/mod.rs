//! The CNI protocol, apart from what this plugin does with it: the CNI_*
//! environment, reading config objects as Go does, results in every spec
//! version, version negotiation, and errors with the spec's codes. Nothing
//! here knows SR-IOV, so a CNI spec crate could replace it in one place.

mod env;
mod error;
mod fields;
pub mod result;
pub mod version;

pub use env::{CniArgs, Env};
pub use error::{Error, Failures, Result};
pub use fields::{bad, Fields};
