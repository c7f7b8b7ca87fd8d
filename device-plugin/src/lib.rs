//! The SR-IOV device plugin as a library: a `core` that knows devices,
//! pools and health; `frontends` that only read it (kubelet's device-plugin
//! API, CDI, device-info files, metrics, `discover`); and the `daemon` that
//! keeps the core up to date from events and runs the frontends. `cli` is
//! the binary's command line; `install_cni` is the DaemonSet's init step
//! that installs the CNI executable on the node.

pub mod cli;
pub mod core;
pub mod daemon;
pub mod frontends;
pub mod install_cni;
