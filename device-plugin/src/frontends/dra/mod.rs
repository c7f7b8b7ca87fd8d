//! Dynamic Resource Allocation (`resource.k8s.io/v1`), a second way to
//! hand out the same pools, for pools with `"api": "dra"`:
//! - `slices` turns them into the ResourceSlices a node publishes, and
//!   `publish` keeps the API server's equal to them;
//! - `plugin` serves kubelet the driver's sockets, `service` answers its
//!   calls: `prepare` readies a claim whose allocation `claims` reads,
//!   remembered in `checkpoint`;
//! - `client` reaches the Kubernetes API.

pub mod checkpoint;
pub mod claims;
pub mod client;
pub mod plugin;
pub mod prepare;
pub mod publish;
pub mod service;
pub mod slices;

/// The driver name: dra-driver-sriov's, so that DeviceClasses and CEL
/// selectors written for it (`device.driver == "..."`) select our devices.
pub const DRIVER: &str = "sriovnetwork.k8snetworkplumbingwg.io";
