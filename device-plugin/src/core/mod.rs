//! The domain, and nothing of any API that advertises it: the config and
//! its selectors, the inventory of SR-IOV devices on this host and their
//! health, pools and how devices are sorted into them, the allocation
//! policy, what a container gets for its devices, and a pool's view as the
//! frontends read it.

pub mod allocation;
pub mod config;
pub mod container;
pub mod health;
pub mod inventory;
pub mod pool;
pub mod selector;
pub mod view;
