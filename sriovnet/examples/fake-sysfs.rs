//! Writes a fake sysfs tree, laid out as the kernel lays it out, for tests
//! that run our binaries as processes (the image test maps it onto /sys).
//!
//!   fake-sysfs ROOT
//!       an Intel 82576 PF 0000:01:00.0 (enp1s0) with 4 igbvf VFs, the last
//!       bound to vfio-pci; and a ConnectX-5 PF 0000:5e:00.0 (ens3f0) with
//!       2 VFs that have RDMA.

use std::process::ExitCode;

use sriovnet::fake::{FakeSysfs, INTEL_82576, MELLANOX_CX5};

fn write(root: &str) -> std::io::Result<()> {
    let fake = FakeSysfs::new(root);
    let igb = fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 4, 0)?;
    fake.bind(&igb[3], "vfio-pci")?;
    for vf in fake.add_pf(&MELLANOX_CX5, "0000:5e:00.0", "ens3f0", 2, 0)? {
        fake.write(
            &format!("bus/pci/devices/{vf}/infiniband/mlx5_{vf}/.keep"),
            "",
        )?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root] = args.as_slice() else {
        eprintln!("usage: fake-sysfs ROOT");
        return ExitCode::from(2);
    };
    match write(root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-sysfs: {root}: {e}");
            ExitCode::FAILURE
        }
    }
}
