//! Dynamic Resource Allocation (`resource.k8s.io/v1`), a second way to
//! hand out the same pools. Being built: `slices` turns pools into the
//! ResourceSlices a node publishes, `publish` keeps the API server's equal
//! to them. Kubelet's `DRAPlugin` service and its registration come next,
//! and the daemon does not run any of it yet (see docs/dra.md).

pub mod publish;
pub mod slices;

/// The driver name: dra-driver-sriov's, so that DeviceClasses and CEL
/// selectors written for it (`device.driver == "..."`) select our devices.
pub const DRIVER: &str = "sriovnetwork.k8snetworkplumbingwg.io";
