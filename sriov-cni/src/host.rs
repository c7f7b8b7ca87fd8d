//! Where the plugin reads and writes on the host.

use std::path::{Path, PathBuf};

use sriovnet::Sysfs;

pub struct Host {
    pub sysfs: Sysfs,
    /// `/proc/net`, for the default routes.
    pub proc_net: PathBuf,
    /// `/var/lib/cni/sriov`: one state file and one lock file per VF.
    pub state_dir: PathBuf,
}

impl Host {
    pub fn new() -> Self {
        #[cfg(feature = "test-root")]
        if let Some(root) = std::env::var_os("SRIOV_CNI_TEST_ROOT") {
            return Host::under(Path::new(&root));
        }
        Host::under(Path::new("/"))
    }

    fn under(root: &Path) -> Self {
        Host {
            sysfs: Sysfs::new(root.join("sys")),
            proc_net: root.join("proc/net"),
            state_dir: root.join("var/lib/cni/sriov"),
        }
    }
}
