//! Link, address, route, VF and namespace operations against the real
//! kernel, as root, in private network namespaces with veth pairs standing in
//! for VF netdevs. Results are checked with iproute2, not with our own reads.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use serde_json::Value;
use sriovnet::{
    Errno, Error, IpNetwork, MacAddress, Netlink, Netns, Route, VfLinkState, VfSetting, VlanProto,
};

/// A new network namespace, alive as long as the returned handle.
fn private_netns() -> Netns {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): these tests need root");
        Netns::current().unwrap()
    })
    .join()
    .unwrap()
}

/// Runs iproute2 inside `netns` and returns its stdout.
fn ip(netns: &Netns, args: &str) -> String {
    let output = netns
        .run(|| Ok(Command::new("ip").args(args.split_whitespace()).output()))
        .unwrap()
        .expect("run ip");
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn ip_json(netns: &Netns, args: &str) -> Vec<Value> {
    serde_json::from_str(&ip(netns, &format!("-j {args}"))).unwrap()
}

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

fn veth_pair(netns: &Netns, a: &str, b: &str) {
    ip(netns, &format!("link add {a} type veth peer name {b}"));
}

#[test]
fn rename_mtu_mac_and_up_down_on_a_veth() {
    let ns = private_netns();
    veth_pair(&ns, "sv0", "sv1");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let link = nl.link("sv0").unwrap();
    assert!(!link.up);
    // A dump with several links in one datagram.
    let mut names: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
    names.sort();
    assert_eq!(names, ["lo", "sv0", "sv1"]);

    let mac: MacAddress = "02:00:00:aa:bb:cc".parse().unwrap();
    nl.set_link_mtu(&link, 1400).unwrap();
    nl.set_link_mac(&link, mac).unwrap();
    nl.rename_link(&link, "net1").unwrap();
    let renamed = nl.link("net1").unwrap();
    assert_eq!(renamed.index, link.index);
    assert_eq!((renamed.mtu, renamed.mac), (1400, Some(mac)));

    nl.set_link_up(&renamed).unwrap();
    assert!(nl.link("net1").unwrap().up);
    let [shown] = &ip_json(&ns, "link show net1")[..] else {
        panic!()
    };
    assert_eq!(shown["mtu"], 1400);
    assert_eq!(shown["address"], "02:00:00:aa:bb:cc");
    assert!(shown["flags"].as_array().unwrap().contains(&"UP".into()));

    // A name that is taken (the CNI's collision case) is refused by name.
    let err = nl.rename_link(&renamed, "sv1").unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EEXIST));
    assert_eq!(err.to_string(), "rename link net1: EEXIST");

    nl.set_link_down(&renamed).unwrap();
    let [shown] = &ip_json(&ns, "link show net1")[..] else {
        panic!()
    };
    assert!(!shown["flags"].as_array().unwrap().contains(&"UP".into()));
}

#[test]
fn a_missing_link_is_named() {
    let ns = private_netns();
    let mut nl = Netlink::open_in(&ns).unwrap();
    let err = nl.link("nosuch0").unwrap_err();
    assert!(
        matches!(err, Error::NoSuchLink(ref n) if n == "nosuch0"),
        "{err}"
    );
    assert_eq!(
        nl.links()
            .unwrap()
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["lo"]
    );
}

#[test]
fn move_a_link_into_another_namespace_by_fd() {
    let host = private_netns();
    let pod = private_netns();
    veth_pair(&host, "vf0", "vf0peer");
    // The pod already has a link with the VF's host name.
    veth_pair(&pod, "vf0", "podpeer");
    let mut nl = Netlink::open_in(&host).unwrap();
    let link = nl.link("vf0").unwrap();
    nl.move_link_to_netns(&link, &pod, "net1").unwrap();

    assert!(matches!(nl.link("vf0"), Err(Error::NoSuchLink(_))));
    assert_eq!(ip_json(&pod, "link show net1").len(), 1);
    assert_eq!(
        ip_json(&pod, "link show vf0").len(),
        1,
        "the pod's own vf0 is untouched"
    );

    // A name taken in the target fails, and says so.
    let mut in_pod = Netlink::open_in(&pod).unwrap();
    let podpeer = in_pod.link("podpeer").unwrap();
    let err = in_pod
        .move_link_to_netns(&podpeer, &host, "vf0peer")
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EEXIST), "{err}");
    assert_eq!(
        nl.link("podpeer").unwrap().name,
        "podpeer",
        "moved, not renamed"
    );

    // And back under its own name, as DEL does.
    let net1 = in_pod.link("net1").unwrap();
    in_pod.move_link_to_netns(&net1, &host, "vf0").unwrap();
    assert_eq!(nl.link("vf0").unwrap().name, "vf0");
    assert!(matches!(in_pod.link("net1"), Err(Error::NoSuchLink(_))));
}

#[test]
fn addresses_and_routes_inside_a_target_namespace() {
    let before = netns_inode();
    let ns = private_netns();
    veth_pair(&ns, "net1", "peer1");
    // Opened from this thread, used from this thread: the thread never moves.
    let mut nl = Netlink::open_in(&ns).unwrap();
    assert_eq!(netns_inode(), before);
    let link = nl.link("net1").unwrap();
    nl.set_link_up(&link).unwrap();

    let v4: IpNetwork = "10.10.0.5/24".parse().unwrap();
    let v6: IpNetwork = "2001:db8::5/64".parse().unwrap();
    nl.add_address(&link, v4).unwrap();
    nl.add_address(&link, v6).unwrap();
    let routes = [
        ("0.0.0.0/0", Some("10.10.0.1")),
        ("192.168.77.0/24", Some("10.10.0.254")),
        ("10.20.0.0/16", None),
        ("::/0", Some("2001:db8::1")),
    ];
    for (destination, gateway) in routes {
        nl.add_route(&Route {
            destination: destination.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            link_index: link.index,
        })
        .unwrap();
    }

    let [shown] = &ip_json(&ns, "address show dev net1")[..] else {
        panic!()
    };
    let addresses: Vec<String> = shown["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert!(
        addresses.contains(&"10.10.0.5/24".to_string()),
        "{addresses:?}"
    );
    assert!(
        addresses.contains(&"2001:db8::5/64".to_string()),
        "{addresses:?}"
    );

    let v4_routes = ip_json(&ns, "-4 route show");
    let has = |routes: &[Value], dst: &str, gw: Option<&str>| {
        routes.iter().any(|r| {
            r["dst"] == dst && r["dev"] == "net1" && r.get("gateway").and_then(Value::as_str) == gw
        })
    };
    assert!(
        has(&v4_routes, "default", Some("10.10.0.1")),
        "{v4_routes:?}"
    );
    assert!(
        has(&v4_routes, "192.168.77.0/24", Some("10.10.0.254")),
        "{v4_routes:?}"
    );
    assert!(has(&v4_routes, "10.20.0.0/16", None), "{v4_routes:?}");
    let v6_routes = ip_json(&ns, "-6 route show");
    assert!(
        has(&v6_routes, "default", Some("2001:db8::1")),
        "{v6_routes:?}"
    );

    // Read back through our own dumps too, as CHECK does.
    let read = nl.addresses(&link).unwrap();
    assert!(read.contains(&v4) && read.contains(&v6), "{read:?}");
    let read = nl.routes(link.index).unwrap();
    for (destination, gateway) in routes {
        let wanted = Route {
            destination: destination.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            link_index: link.index,
        };
        assert!(read.contains(&wanted), "{wanted:?} not in {read:?}");
    }

    let err = nl.add_address(&link, v4).unwrap_err();
    assert_eq!(err.to_string(), "add address 10.10.0.5/24 to net1: EEXIST");
    // None of it leaked into the namespace the tests run in.
    assert_eq!(netns_inode(), before);
}

#[test]
fn delete_an_altname() {
    let ns = private_netns();
    veth_pair(&ns, "sv0", "sv1");
    ip(&ns, "link property add dev sv0 altname enp9s0f0v3");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let link = nl.link("sv0").unwrap();
    assert_eq!(link.altnames, ["enp9s0f0v3"]);
    // The kernel finds a link by its altname too.
    assert_eq!(nl.link("enp9s0f0v3").unwrap().index, link.index);

    nl.delete_altname(&link, "enp9s0f0v3").unwrap();
    let [shown] = &ip_json(&ns, "link show sv0")[..] else {
        panic!()
    };
    assert!(shown.get("altnames").is_none(), "{shown}");
    assert!(nl.link("sv0").unwrap().altnames.is_empty());

    let err = nl.delete_altname(&link, "enp9s0f0v3").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("delete altname enp9s0f0v3 of sv0: "),
        "{err}"
    );

    // And given back, as DEL does.
    nl.add_altname(&link, "enp9s0f0v3").unwrap();
    let [shown] = &ip_json(&ns, "link show sv0")[..] else {
        panic!()
    };
    assert_eq!(shown["altnames"][0], "enp9s0f0v3");
    // A veth has no parent device; a VF's is its PCI address (the lab checks that).
    assert_eq!(nl.link("sv0").unwrap().parent_device, None);
}

#[test]
fn vf_requests_are_well_formed_and_a_veth_refuses_them() {
    let ns = private_netns();
    veth_pair(&ns, "pf0", "pf0peer");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let settings = [
        VfSetting::Mac("02:00:00:00:00:07".parse().unwrap()),
        VfSetting::Vlan {
            vlan: 100,
            qos: 3,
            proto: VlanProto::Dot1Q,
        },
        VfSetting::Vlan {
            vlan: 100,
            qos: 0,
            proto: VlanProto::Dot1Ad,
        },
        VfSetting::SpoofCheck(false),
        VfSetting::Trust(true),
        VfSetting::LinkState(VfLinkState::Enable),
        VfSetting::Rate { min: 0, max: 1000 },
    ];
    // A malformed attribute would be EINVAL from the kernel's policy check;
    // EOPNOTSUPP means it parsed and only the driver op is missing.
    for setting in settings {
        let err = nl.set_vf("pf0", 2, setting).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EOPNOTSUPP), "{setting:?}: {err}");
        assert_eq!(
            err.to_string(),
            format!("{} on pf0 vf 2: EOPNOTSUPP", setting.op())
        );
    }
    assert_eq!(
        nl.set_vf("pf0", 2, VfSetting::LinkState(VfLinkState::Enable))
            .unwrap_err()
            .to_string(),
        "set link_state on pf0 vf 2: EOPNOTSUPP"
    );

    assert!(nl.vf_states("pf0").unwrap().is_empty());
    let err = nl.vf_state("pf0", 0).unwrap_err();
    assert_eq!(err.to_string(), "pf0 has no vf 0");
    assert!(matches!(
        nl.vf_states("nosuch0"),
        Err(Error::Netlink {
            errno: Errno::ENODEV,
            ..
        })
    ));
}

#[test]
fn run_enters_the_namespace_on_a_fresh_thread_only() {
    let before = netns_inode();
    let ns = private_netns();
    let (inside, thread) = ns
        .run(|| Ok((netns_inode(), std::thread::current().id())))
        .unwrap();
    assert_ne!(inside, before);
    assert_ne!(thread, std::thread::current().id());
    assert_eq!(netns_inode(), before);
    assert_eq!(ns.run(|| Ok(netns_inode())).unwrap(), inside);
}

#[test]
fn namespace_errors_are_named() {
    let err = Netns::open("/nonexistent/netns").unwrap_err();
    assert_eq!(
        err.to_string(),
        "open network namespace /nonexistent/netns: ENOENT"
    );
    let not_a_netns = Netns::open("/proc/self/ns/uts").unwrap();
    let err = not_a_netns.run(|| Ok(())).unwrap_err();
    assert_eq!(err.to_string(), "enter network namespace: EINVAL");
}

#[test]
fn link_events_name_the_links_that_changed() {
    let ns = private_netns();
    let mut monitor = ns.run(sriovnet::LinkMonitor::open).unwrap();
    veth_pair(&ns, "ev0", "ev0peer");
    ip(&ns, "link set ev0peer up");
    let mut seen = Vec::new();
    while !(seen.contains(&"ev0".to_string()) && seen.contains(&"ev0peer".to_string())) {
        match monitor.wait().unwrap() {
            sriovnet::LinkEvents::Links(names) => seen.extend(names),
            sriovnet::LinkEvents::Lost => panic!("no events should be lost here"),
        }
    }
}
