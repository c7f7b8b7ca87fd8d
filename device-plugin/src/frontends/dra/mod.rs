//! Dynamic Resource Allocation (`resource.k8s.io/v1`), a second way to
//! hand out the same pools. Being built: `slices` turns pools into the
//! ResourceSlices a node publishes, `publish` keeps the API server's equal
//! to them (the daemon runs it for pools with `"api": "dra"`). Kubelet's
//! `DRAPlugin` service, which prepares claims, comes next (docs/dra.md).

pub mod publish;
pub mod slices;

/// The driver name: dra-driver-sriov's, so that DeviceClasses and CEL
/// selectors written for it (`device.driver == "..."`) select our devices.
pub const DRIVER: &str = "sriovnetwork.k8snetworkplumbingwg.io";
