//! Discovery against fake sysfs trees laid out as the kernel lays them out.

use std::collections::HashSet;
use std::path::PathBuf;

use sriovnet::fake::{FakeSysfs, INTEL_82576, INTEL_E810, MELLANOX_CX5};
use sriovnet::{Error, LinkType, PciAddress, Sysfs};

fn tree() -> (tempfile::TempDir, FakeSysfs) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    (dir, fake)
}

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

fn no_routes() -> HashSet<String> {
    HashSet::new()
}

#[test]
fn intel_82576_with_seven_vfs() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 7, 0)
        .unwrap();
    assert_eq!(vfs[..3], ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]);

    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert!(inventory.problems.is_empty(), "{:?}", inventory.problems);
    let [pf] = &inventory.pfs[..] else {
        panic!("{:?}", inventory.pfs)
    };
    assert_eq!(pf.address, addr("0000:01:00.0"));
    assert_eq!((pf.vendor, pf.device), (0x8086, 0x10c9));
    assert_eq!(pf.driver.as_deref(), Some("igb"));
    assert_eq!((pf.total_vfs, pf.num_vfs, pf.numa_node), (7, 7, Some(0)));
    assert_eq!(pf.netdevs.len(), 1);
    assert_eq!(pf.netdevs[0].name, "enp1s0");
    assert_eq!(pf.netdevs[0].link_type, LinkType::Ethernet);
    assert!(!pf.carries_default_route());

    assert_eq!(pf.vfs.len(), 7);
    for (i, vf) in pf.vfs.iter().enumerate() {
        assert_eq!(vf.index, i as u32);
        assert_eq!(vf.address.to_string(), vfs[i]);
        assert_eq!(vf.pf, pf.address);
        assert_eq!((vf.vendor, vf.device), (0x8086, 0x10ca));
        assert_eq!(vf.driver.as_deref(), Some("igbvf"));
        assert_eq!(vf.netdev.as_deref(), Some(format!("enp1s0v{i}").as_str()));
        assert_eq!(vf.iommu_group, Some(i as u32));
        assert_eq!(vf.numa_node, Some(0));
        assert!(!vf.is_userspace());
        assert_eq!(vf.vfio_device(), None);
    }
}

#[test]
fn sixty_four_vfs_are_ordered_by_index_not_by_name() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&MELLANOX_CX5, "0000:86:00.0", "ens1f0", 64, 1)
        .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    let pf = &inventory.pfs[0];
    assert_eq!(pf.vfs.len(), 64);
    let indexes: Vec<u32> = pf.vfs.iter().map(|vf| vf.index).collect();
    assert_eq!(indexes, (0..64).collect::<Vec<_>>());
    assert_eq!(pf.vfs[10].address.to_string(), vfs[10]);
    assert_eq!(pf.vfs[0].address, addr("0000:86:00.2"));
    assert_eq!(pf.vfs[63].numa_node, Some(1));
}

#[test]
fn vfs_past_a_bus_boundary_keep_their_addresses() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_E810, "0000:3b:00.0", "ens2f0", 256, 0)
        .unwrap();
    assert_eq!(vfs[255], "0000:3c:00.7");
    let pf = &fake.sysfs().scan(&no_routes()).unwrap().pfs[0];
    assert_eq!(pf.vfs[255].address, addr("0000:3c:00.7"));
    assert_eq!(pf.vfs[255].index, 255);
}

#[test]
fn pf_with_no_vfs_enabled() {
    let (_dir, fake) = tree();
    fake.add_pf(&INTEL_82576, "0000:02:00.0", "enp2s0", 0, -1)
        .unwrap();
    let pf = &fake.sysfs().scan(&no_routes()).unwrap().pfs[0];
    assert_eq!((pf.total_vfs, pf.num_vfs), (7, 0));
    assert!(pf.vfs.is_empty());
    assert_eq!(pf.numa_node, None, "numa_node -1 means no affinity");
}

#[test]
fn vf_bound_to_vfio_pci_is_a_userspace_vf() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
        .unwrap();
    fake.bind(&vfs[1], "vfio-pci").unwrap();
    let pf = &fake.sysfs().scan(&no_routes()).unwrap().pfs[0];
    let vf = &pf.vfs[1];
    assert_eq!(vf.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(vf.netdev, None);
    assert!(vf.is_userspace());
    assert_eq!(vf.vfio_device(), Some(PathBuf::from("/dev/vfio/1")));
    assert!(!pf.vfs[0].is_userspace());

    let same = fake.sysfs().virtual_function(addr(&vfs[1])).unwrap();
    assert_eq!(&same, vf);
}

#[test]
fn vf_without_driver_has_neither_driver_nor_netdev() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 1, 0)
        .unwrap();
    fake.remove(&format!("bus/pci/devices/{}/driver", vfs[0]))
        .unwrap();
    fake.remove(&format!("bus/pci/devices/{}/net", vfs[0]))
        .unwrap();
    let vf = fake.sysfs().virtual_function(addr(&vfs[0])).unwrap();
    assert!(!vf.is_userspace());
    assert_eq!((vf.driver, vf.netdev), (None, None));
}

#[test]
fn dual_port_card() {
    let (_dir, fake) = tree();
    let p0 = fake
        .add_pf(&MELLANOX_CX5, "0000:3b:00.0", "ens1f0", 4, 0)
        .unwrap();
    let p1 = fake
        .add_pf(&MELLANOX_CX5, "0000:3b:00.1", "ens1f1", 4, 0)
        .unwrap();
    for (port, name) in [("p0", "ens1f0"), ("p1", "ens1f1")] {
        fake.write(
            &format!("class/net/{name}/phys_port_name"),
            &format!("{port}\n"),
        )
        .unwrap();
        fake.write(
            &format!("class/net/{name}/phys_switch_id"),
            "b8cef6000a1b2c3d\n",
        )
        .unwrap();
    }
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert_eq!(inventory.pfs.len(), 2);
    let [a, b] = &inventory.pfs[..] else {
        unreachable!()
    };
    assert_eq!(a.netdevs[0].phys_port_name.as_deref(), Some("p0"));
    assert_eq!(b.netdevs[0].phys_port_name.as_deref(), Some("p1"));
    assert_eq!(a.netdevs[0].phys_switch_id, b.netdevs[0].phys_switch_id);
    assert_eq!(
        a.vfs
            .iter()
            .map(|v| v.address.to_string())
            .collect::<Vec<_>>(),
        p0
    );
    assert_eq!(
        b.vfs
            .iter()
            .map(|v| v.address.to_string())
            .collect::<Vec<_>>(),
        p1
    );
    assert!(b.vfs.iter().all(|vf| vf.pf == b.address));
}

#[test]
fn infiniband_link_type_and_default_route() {
    let (_dir, fake) = tree();
    fake.add_pf(&MELLANOX_CX5, "0000:3b:00.0", "ib0", 1, 0)
        .unwrap();
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "eno1", 1, 0)
        .unwrap();
    fake.write("class/net/ib0/type", "32\n").unwrap();
    let routes = HashSet::from(["eno1".to_string()]);
    let inventory = fake.sysfs().scan(&routes).unwrap();
    let eno1 = &inventory.pfs[0];
    let ib0 = &inventory.pfs[1];
    assert_eq!(ib0.netdevs[0].link_type, LinkType::Infiniband);
    assert_eq!(ib0.netdevs[0].link_type.name(), "infiniband");
    assert!(eno1.carries_default_route());
    assert!(!ib0.carries_default_route());
}

#[test]
fn devices_without_sriov_are_not_pfs() {
    let (_dir, fake) = tree();
    fake.add_device("0000:00:1f.2", 0x8086, 0xa352, Some("ahci"), 0)
        .unwrap();
    fake.add_device("0000:00:03.0", 0x1af4, 0x1041, Some("virtio-pci"), -1)
        .unwrap();
    fake.add_netdev("0000:00:03.0", "eth0").unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert!(inventory.pfs.is_empty());
    assert!(inventory.problems.is_empty());
}

#[test]
fn looking_up_one_vf() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 7, 0)
        .unwrap();
    fake.add_device("0000:00:03.0", 0x1af4, 0x1041, Some("virtio-pci"), -1)
        .unwrap();
    let sysfs = fake.sysfs();

    let vf = sysfs.virtual_function(addr(&vfs[5])).unwrap();
    assert_eq!((vf.index, vf.pf), (5, addr("0000:01:00.0")));
    assert_eq!(sysfs.netdev_names(vf.pf).unwrap(), ["enp1s0"]);

    for (device, expected) in [
        ("0000:01:00.0", "is not an SR-IOV virtual function"),
        ("0000:00:03.0", "is not an SR-IOV virtual function"),
        ("0000:09:00.0", "does not exist"),
    ] {
        let err = sysfs.virtual_function(addr(device)).unwrap_err();
        assert!(err.to_string().contains(expected), "{device}: {err}");
        assert!(err.to_string().contains(device), "{err}");
    }
}

#[test]
fn a_vf_its_pf_does_not_list_is_refused() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
        .unwrap();
    fake.remove("bus/pci/devices/0000:01:00.0/virtfn1").unwrap();
    let err = fake.sysfs().virtual_function(addr(&vfs[1])).unwrap_err();
    assert!(matches!(err, Error::VfIndexNotFound { .. }), "{err}");
}

#[test]
fn dangling_virtfn_link_is_reported_and_other_vfs_kept() {
    let (_dir, fake) = tree();
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.link("bus/pci/devices/0000:01:00.0/virtfn1", "../0000:01:10.6")
        .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    let pf = &inventory.pfs[0];
    assert_eq!(pf.vfs.iter().map(|vf| vf.index).collect::<Vec<_>>(), [0, 2]);
    let [problem] = &inventory.problems[..] else {
        panic!("{:?}", inventory.problems)
    };
    let text = problem.to_string();
    assert!(
        text.contains("virtfn1")
            && text.contains("0000:01:10.6")
            && text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn a_vf_named_by_two_virtfn_links_is_listed_once() {
    let (_dir, fake) = tree();
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 3, 0)
        .unwrap();
    fake.link("bus/pci/devices/0000:01:00.0/virtfn7", "../0000:01:10.2")
        .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    let pf = &inventory.pfs[0];
    assert_eq!(
        pf.vfs.iter().map(|vf| vf.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let [problem] = &inventory.problems[..] else {
        panic!("{:?}", inventory.problems)
    };
    let text = problem.to_string();
    assert!(
        text.contains("virtfn7") && text.contains("0000:01:10.2"),
        "{text}"
    );
}

#[test]
fn missing_file_names_the_file() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 0)
        .unwrap();
    fake.add_pf(&INTEL_82576, "0000:02:00.0", "enp2s0", 1, 0)
        .unwrap();
    fake.remove("bus/pci/devices/0000:01:00.0/sriov_numvfs")
        .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert_eq!(inventory.pfs.len(), 1, "the other PF stays");
    let text = inventory.problems[0].to_string();
    assert!(
        text.starts_with("read ") && text.contains("0000:01:00.0/sriov_numvfs"),
        "{text}"
    );

    // One VF read on its own (the CNI's path) reads its own ids.
    fake.remove(&format!("bus/pci/devices/{}/vendor", vfs[0]))
        .unwrap();
    let err = fake.sysfs().virtual_function(addr(&vfs[0])).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("{}/vendor", vfs[0])),
        "{err}"
    );
}

#[test]
fn vfs_take_shared_ids_from_the_pf_or_read_their_own() {
    let (_dir, fake) = tree();
    let vfs = fake
        .add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 2, 1)
        .unwrap();
    let pf = &fake.sysfs().scan(&no_routes()).unwrap().pfs[0];
    assert_eq!(
        (pf.vfs[1].vendor, pf.vfs[1].device, pf.vfs[1].numa_node),
        (0x8086, 0x10ca, Some(1))
    );
    // An older kernel has no sriov_vf_device: each VF's own files are read.
    fake.remove("bus/pci/devices/0000:01:00.0/sriov_vf_device")
        .unwrap();
    fake.write(&format!("bus/pci/devices/{}/device", vfs[1]), "0x10cb\n")
        .unwrap();
    let pf = &fake.sysfs().scan(&no_routes()).unwrap().pfs[0];
    assert_eq!(pf.vfs[1].device, 0x10cb);
    fake.write("bus/pci/devices/0000:01:00.0/sriov_vf_device", "zz\n")
        .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert!(
        inventory.problems[0]
            .to_string()
            .contains("sriov_vf_device"),
        "{:?}",
        inventory.problems
    );
}

#[test]
fn garbage_in_numeric_files_is_an_error_naming_file_and_value() {
    for (file, garbage, expected) in [
        ("sriov_numvfs", "seven\n", "a decimal number"),
        ("sriov_totalvfs", "-3\n", "a decimal number"),
        ("numa_node", "zero\n", "a NUMA node number"),
        ("vendor", "8086\n", "a PCI id"),
        ("device", "0xzzzz\n", "a PCI id"),
        ("net/enp1s0/type", "ether\n", "a decimal number"),
    ] {
        let (_dir, fake) = tree();
        fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 1, 0)
            .unwrap();
        fake.add_pf(&INTEL_82576, "0000:02:00.0", "enp2s0", 1, 0)
            .unwrap();
        fake.write(&format!("bus/pci/devices/0000:01:00.0/{file}"), garbage)
            .unwrap();
        let inventory = fake.sysfs().scan(&no_routes()).unwrap();
        assert_eq!(inventory.pfs.len(), 1, "{file}: the good PF stays");
        assert_eq!(inventory.pfs[0].address, addr("0000:02:00.0"));
        let text = inventory.problems[0].to_string();
        assert!(
            text.contains(file) && text.contains(garbage.trim()) && text.contains(expected),
            "{file}: {text}"
        );
    }
}

#[test]
fn garbage_in_the_device_list_is_reported() {
    let (_dir, fake) = tree();
    fake.write("bus/pci/devices/not-a-device/vendor", "0x8086\n")
        .unwrap();
    fake.add_pf(&INTEL_82576, "0000:01:00.0", "enp1s0", 1, 0)
        .unwrap();
    fake.link(
        "bus/pci/devices/0000:01:10.0/iommu_group",
        "../../../kernel/iommu_groups/x",
    )
    .unwrap();
    let inventory = fake.sysfs().scan(&no_routes()).unwrap();
    assert_eq!(inventory.pfs.len(), 1);
    assert_eq!(inventory.problems.len(), 2, "{:?}", inventory.problems);
    let all: Vec<String> = inventory.problems.iter().map(|p| p.to_string()).collect();
    assert!(all.iter().any(|p| p.contains("not-a-device")), "{all:?}");
    assert!(
        all.iter()
            .any(|p| p.contains("iommu_group") && p.contains("\"x\"")),
        "{all:?}"
    );
}

#[test]
fn a_missing_tree_is_an_error() {
    let err = Sysfs::new("/nonexistent/sys")
        .scan(&no_routes())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/sys/bus/pci/devices"),
        "{err}"
    );
}

#[test]
fn this_hosts_sysfs_scans_without_error() {
    // The machine's real /sys: whatever it has, reading it must work.
    Sysfs::default().scan(&no_routes()).unwrap();
}

/// The PCIe root complex comes from the function's path under
/// /sys/devices, as the kernel links `bus/pci/devices/<address>` there; a
/// tree that lays functions out flat has none.
#[test]
fn pcie_root_from_the_device_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::new(dir.path());
    let real = "devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";
    fake.write(&format!("{real}/vendor"), "0x8086\n").unwrap();
    fake.link("bus/pci/devices/0000:3b:00.0", &format!("../../../{real}"))
        .unwrap();
    fake.add_device("0000:5e:00.0", 0x8086, 0x159b, Some("ice"), 0)
        .unwrap();
    let sysfs = fake.sysfs();
    assert_eq!(
        sysfs.pcie_root(addr("0000:3b:00.0")).as_deref(),
        Some("pci0000:3a")
    );
    assert_eq!(sysfs.pcie_root(addr("0000:5e:00.0")), None);
}
