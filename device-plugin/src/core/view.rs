//! A pool as it is now, in one piece, for every frontend to read.

use crate::core::config::ResourceConfig;
use crate::core::pool::Member;

/// A pool's config and devices (each with its health) together, so that a
/// change of any reaches every frontend as one fresh view.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolView {
    pub config: ResourceConfig,
    pub members: Vec<Member>,
}
