//! `sriov-device-plugin`: for now only `discover`, which prints the SR-IOV
//! PFs and VFs this host has. Serving kubelet comes with the daemon issue.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sriovnet::{default_route_interfaces, PhysicalFunction, Sysfs};

const USAGE: &str = "usage: sriov-device-plugin discover [--sysfs-root DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|root| discover(&root)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sriov-device-plugin: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The sysfs root `discover` reads (default `/sys`).
fn parse_args(args: &[String]) -> Result<PathBuf, String> {
    let mut root = PathBuf::from("/sys");
    match args.first().map(String::as_str) {
        Some("discover") => {}
        _ => return Err(USAGE.to_string()),
    }
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--sysfs-root" => root = rest.next().ok_or(USAGE)?.into(),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(root)
}

fn discover(root: &Path) -> Result<(), String> {
    let routes = default_route_interfaces(Path::new("/proc/net")).map_err(|e| e.to_string())?;
    let inventory = Sysfs::new(root).scan(&routes).map_err(|e| e.to_string())?;
    for problem in &inventory.problems {
        eprintln!("warning: skipped: {problem}");
    }
    if inventory.pfs.is_empty() {
        println!("no SR-IOV physical functions under {}", root.display());
    }
    for pf in &inventory.pfs {
        print_pf(pf);
    }
    Ok(())
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn print_pf(pf: &PhysicalFunction) {
    let netdevs: Vec<&str> = pf.netdevs.iter().map(|n| n.name.as_str()).collect();
    println!(
        "PF {} {:04x}:{:04x} driver={} netdev={} vfs={}/{} numa={}{}",
        pf.address,
        pf.vendor,
        pf.device,
        or_dash(pf.driver.as_deref()),
        if netdevs.is_empty() {
            "-".to_string()
        } else {
            netdevs.join(",")
        },
        pf.num_vfs,
        pf.total_vfs,
        or_dash(pf.numa_node),
        if pf.carries_default_route() {
            " (default route)"
        } else {
            ""
        },
    );
    for vf in &pf.vfs {
        println!(
            "  VF {:<3} {} {:04x}:{:04x} driver={} netdev={} iommu_group={}",
            vf.index,
            vf.address,
            vf.vendor,
            vf.device,
            or_dash(vf.driver.as_deref()),
            or_dash(vf.netdev.as_deref()),
            or_dash(vf.iommu_group),
        );
    }
}
