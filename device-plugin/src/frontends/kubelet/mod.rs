//! Kubelet's device-plugin API (v1beta1) for each pool: the gRPC service,
//! its socket and lifecycle (`endpoint`), registration with kubelet
//! (`Register` or the plugin watcher), Allocate's answers, and kubelet's
//! pod resources API (which devices pods hold).

pub mod allocate;
pub mod endpoint;
pub mod pod_resources;
pub mod registration;
pub mod service;
