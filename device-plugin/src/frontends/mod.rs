//! What reads the core and serves it to someone: kubelet's device-plugin
//! API, CDI specs, NPWG device-info files, the metrics and health endpoint,
//! `discover`'s report, and (being built) Dynamic Resource Allocation.

pub mod cdi;
pub mod device_info;
pub mod discover;
pub mod dra;
pub mod kubelet;
pub mod metrics;
