//! Which netdevs carry the host's default route: a device plugin must not
//! advertise them and the CNI must never move them into a pod.
//!
//! Read from `/proc/net/route` and `/proc/net/ipv6_route` (main table), which
//! costs two small reads and no netlink socket.

use std::collections::HashSet;
use std::path::Path;

use crate::{Error, Result};

/// procfs hands over record-aligned chunks: read to the end.
fn read_proc(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

/// Interface names with an IPv4 or IPv6 default route. `proc_net` is
/// `/proc/net` on a host; absent files (no IPv6) count as no routes.
pub fn default_route_interfaces(proc_net: &Path) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    if let Some(text) = read_proc(&proc_net.join("route"))? {
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        for fields in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            if let [iface, dest, _, flags, _, _, _, mask, ..] = fields[..] {
                if dest == "00000000" && mask == "00000000" && is_usable(flags) {
                    names.insert(iface.to_string());
                }
            }
        }
    }
    if let Some(text) = read_proc(&proc_net.join("ipv6_route"))? {
        // dest plen src plen next_hop metric refcnt use flags iface
        for fields in text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            if let [dest, plen, _, _, _, _, _, _, flags, iface] = fields[..] {
                if plen == "00"
                    && dest.bytes().all(|b| b == b'0')
                    && is_usable(flags)
                    && iface != "lo"
                {
                    names.insert(iface.to_string());
                }
            }
        }
    }
    Ok(names)
}

fn is_usable(flags_hex: &str) -> bool {
    u32::from_str_radix(flags_hex, 16).is_ok_and(|f| f & RTF_UP != 0 && f & RTF_REJECT == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v4_and_v6_defaults_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eno1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eno1\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
             ens1f0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ipv6_route"),
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eno2\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n\
             20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 ens1f1\n",
        )
        .unwrap();
        let names = default_route_interfaces(dir.path()).unwrap();
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        assert_eq!(names, ["eno1", "eno2"]);
    }

    #[test]
    fn missing_files_mean_no_default_route() {
        let dir = tempfile::tempdir().unwrap();
        assert!(default_route_interfaces(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn reads_this_host() {
        // Whatever the host has, reading it must not fail.
        default_route_interfaces(Path::new("/proc/net")).unwrap();
    }
}
