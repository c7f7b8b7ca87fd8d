//! The real `sriov` binary driven through the CNI protocol, as root. A fake
//! sysfs (through the test-only root) describes an Intel 82576 whose PF and
//! VF netdevs are veth links in a private "host" namespace; pods are named
//! namespaces; IPAM is Debian's real host-local plugin. What needs a real
//! VF (PF-side settings) is the emulated-NIC lab's job.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use sriovnet::fake::{FakeSysfs, INTEL_82576};

const CNI_PATH: &str = "/usr/lib/cni";

/// A named network namespace, deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new(role: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sriovt-{}-{role}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        Namespace(name)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }

    fn ip(&self, args: &str) -> String {
        let mut all = vec!["-n", &self.0];
        all.extend(args.split_whitespace());
        run("ip", &all)
    }

    fn links(&self) -> Vec<Value> {
        serde_json::from_str(&self.ip("-j link show")).unwrap()
    }

    fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A host with one PF (`fakepf0`, 0000:01:00.0) and two kernel VFs
/// (`fakepf0v0` at 0000:01:10.0, `fakepf0v1` at 0000:01:10.2).
struct Lab {
    root: tempfile::TempDir,
    fake: FakeSysfs,
    host: Namespace,
}

const VF0: &str = "0000:01:10.0";
const VF1: &str = "0000:01:10.2";

impl Lab {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::new(root.path().join("sys"));
        fake.add_pf(&INTEL_82576, "0000:01:00.0", "fakepf0", 2, 0)
            .unwrap();
        fake.add_device("0000:00:03.0", 0x1af4, 0x1041, Some("virtio-pci"), -1)
            .unwrap();
        std::fs::create_dir_all(root.path().join("proc/net")).unwrap();
        let host = Namespace::new("host");
        host.ip("link add fakepf0 type veth peer name pfpeer");
        host.ip("link add fakepf0v0 type veth peer name peer0");
        host.ip("link add fakepf0v1 type veth peer name peer1");
        host.ip("link set fakepf0v0 mtu 1500 address 02:00:00:00:10:00");
        host.ip("link property add dev fakepf0v0 altname enp1s0f0v0");
        Lab { root, fake, host }
    }

    fn state_file(&self, device: &str) -> PathBuf {
        self.root
            .path()
            .join(format!("var/lib/cni/sriov/{device}.json"))
    }

    fn ipam_dir(&self) -> PathBuf {
        self.root.path().join("ipam")
    }

    /// Runs the plugin in the host namespace.
    fn cni(
        &self,
        command: &str,
        container: &str,
        netns: &str,
        ifname: &str,
        config: &Value,
    ) -> Output {
        self.cni_with_args(command, container, netns, ifname, "", config)
    }

    fn cni_with_args(
        &self,
        command: &str,
        container: &str,
        netns: &str,
        ifname: &str,
        args: &str,
        config: &Value,
    ) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.host.0, env!("CARGO_BIN_EXE_sriov")])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SRIOV_CNI_TEST_ROOT", self.root.path())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", CNI_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(config.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn config(&self, version: &str, device: &str) -> Value {
        json!({
            "cniVersion": version, "name": "sriov-test", "type": "sriov",
            "deviceID": device, "mtu": 1400,
            "ipam": {
                "type": "host-local", "subnet": "10.99.0.0/24", "gateway": "10.99.0.1",
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.50.0/24", "gw": "10.99.0.254"}],
                "dataDir": self.ipam_dir()
            }
        })
    }

    fn leases(&self) -> Vec<String> {
        let dir = self.ipam_dir().join("sriov-test");
        let mut leases: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        leases.retain(|l| l.starts_with("10."));
        leases
    }
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn ok(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.is_empty() {
        Value::Null
    } else {
        stdout_json(output)
    }
}

/// The CNI error a failed call printed: (code, msg).
fn failed(output: &Output) -> (u64, String) {
    assert!(
        !output.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let error = stdout_json(output);
    assert!(error["cniVersion"].is_string(), "{error}");
    (
        error["code"].as_u64().unwrap(),
        error["msg"].as_str().unwrap().to_string(),
    )
}

#[test]
fn version_lists_every_supported_spec() {
    let lab = Lab::new();
    let answer = ok(&lab.cni("VERSION", "", "", "", &json!({"cniVersion": "0.4.0"})));
    assert_eq!(answer["cniVersion"], "0.4.0");
    assert_eq!(
        answer["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn protocol_errors_are_json_with_the_specs_codes() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let add = |config: &Value| failed(&lab.cni("ADD", "c1", &pod.path(), "net1", config));

    let (code, msg) = add(&json!({"cniVersion": "0.2.0", "deviceID": VF0}));
    assert_eq!(code, 1, "{msg}");
    // Without CNI_COMMAND that is the error, whatever the config says.
    let (code, msg) = failed(&lab.cni(
        "",
        "c1",
        &pod.path(),
        "net1",
        &json!({"cniVersion": "0.2.0"}),
    ));
    assert_eq!((code, msg.as_str()), (4, "CNI_COMMAND is not set"));
    // An error answers in the version asked for, when it is one we speak.
    let output = lab.cni(
        "ADD",
        "c1",
        &pod.path(),
        "net1",
        &json!({"cniVersion": "1.0.0", "deviceID": VF0, "vlan": 5000}),
    );
    assert_eq!(stdout_json(&output)["cniVersion"], "1.0.0");
    // Keys differing only in case: the last wins, as in Go.
    let (code, msg) =
        add(&json!({"cniVersion": "1.0.0", "deviceID": VF0, "vlan": 1, "VLAN": 5000}));
    assert_eq!((code, msg.as_str()), (7, "vlan: 5000 is not in 0-4094"));
    let (code, msg) = add(&json!({"cniVersion": "1.0.0", "deviceID": VF0, "vlan": 5000}));
    assert_eq!((code, msg.as_str()), (7, "vlan: 5000 is not in 0-4094"));
    let (code, _) = failed(&lab.cni("ADD", "c1", &pod.path(), "net1", &json!("not an object")));
    assert_eq!(code, 6);
    let (code, msg) =
        failed(&lab.cni("FROB", "c1", &pod.path(), "net1", &lab.config("1.0.0", VF0)));
    assert_eq!(
        (code, msg.as_str()),
        (4, "CNI_COMMAND \"FROB\" is not a CNI command")
    );
    let (code, _) = failed(&lab.cni(
        "ADD",
        "../c1",
        &pod.path(),
        "net1",
        &lab.config("1.0.0", VF0),
    ));
    assert_eq!(code, 4);
    let (code, _) = failed(&lab.cni_with_args(
        "ADD",
        "c1",
        &pod.path(),
        "net1",
        "Bogus=1",
        &lab.config("1.0.0", VF0),
    ));
    assert_eq!(code, 4);
    let (code, msg) = failed(&lab.cni(
        "CHECK",
        "c1",
        &pod.path(),
        "net1",
        &lab.config("0.3.1", VF0),
    ));
    assert_eq!(code, 1, "{msg}");
    let (code, msg) = add(&json!({"cniVersion": "1.0.0"}));
    assert!(
        code == 7 && msg.starts_with("deviceID is missing"),
        "{code} {msg}"
    );
    let (code, _) = failed(&lab.cni(
        "ADD",
        "c1",
        "/var/run/netns/no-such-pod",
        "net1",
        &lab.config("1.0.0", VF0),
    ));
    assert_eq!(code, 3);
    assert!(lab.host.link("fakepf0v0").is_some(), "nothing moved");
}

#[test]
fn only_vfs_of_this_host_are_accepted() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    std::fs::write(
        lab.root.path().join("proc/net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         fakepf0v1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    )
    .unwrap();
    for (device, expected) in [
        ("0000:01:00.0", "is not an SR-IOV virtual function"),
        ("0000:00:03.0", "is not an SR-IOV virtual function"),
        ("0000:07:00.0", "does not exist"),
        (VF1, "carries the host's default route"),
    ] {
        let (code, msg) = failed(&lab.cni(
            "ADD",
            "c1",
            &pod.path(),
            "net1",
            &lab.config("1.0.0", device),
        ));
        assert_eq!(code, 100, "{device}: {msg}");
        assert!(
            msg.contains(expected) && msg.contains(device),
            "{device}: {msg}"
        );
    }
    assert!(lab.host.link("fakepf0").is_some() && lab.host.link("fakepf0v1").is_some());
    assert!(!lab.state_file(VF1).exists());
    assert!(pod.link("net1").is_none());
    // Every verb checks the device before it locks anything: no lock file
    // is ever made for an address that is not a VF of this host.
    for command in ["ADD", "DEL", "CHECK"] {
        let mut config = lab.config("1.0.0", "0000:01:00.0");
        config["prevResult"] = json!({"cniVersion": "1.0.0"});
        let (code, msg) = failed(&lab.cni(command, "c1", &pod.path(), "net1", &config));
        assert_eq!(code, 100, "{command}: {msg}");
    }
    ok(&lab.cni(
        "DEL",
        "c1",
        &pod.path(),
        "net1",
        &lab.config("1.0.0", "ffff:ff:1f.7"),
    ));
    let locks: Vec<_> = std::fs::read_dir(lab.root.path().join("var/lib/cni/sriov"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(locks.is_empty(), "{locks:?}");
}

#[test]
fn del_without_a_record_touches_no_device_in_the_host() {
    let lab = Lab::new();
    lab.host.ip("link set fakepf0 up");
    // CNI_NETNS is the host's own namespace (as the plugin sees it).
    let host_ns = format!("/var/run/netns/{}", lab.host.0);
    let (code, msg) = failed(&lab.cni(
        "DEL",
        "x",
        &host_ns,
        "fakepf0",
        &lab.config("1.0.0", "0000:01:00.0"),
    ));
    assert_eq!(code, 100, "{msg}");
    let flags = lab.host.link("fakepf0").unwrap()["flags"].clone();
    assert!(flags.as_array().unwrap().contains(&json!("UP")), "{flags}");
    // A VF in the host namespace is left alone too; a veth has no parent
    // device to be found by, so that half is lab scenario 13, on real VFs.
}

#[test]
fn del_of_another_ifname_leaves_the_attachment_alone() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let config = lab.config("1.0.0", VF0);
    ok(&lab.cni("ADD", "cd", &pod.path(), "net1", &config));
    ok(&lab.cni("DEL", "cd", &pod.path(), "net2", &config));
    assert!(pod.link("net1").is_some(), "DEL of net2 took net1 out");
    assert!(lab.state_file(VF0).exists());
    assert_eq!(lab.leases().len(), 1);
    ok(&lab.cni("DEL", "cd", &pod.path(), "net1", &config));
    assert!(pod.link("net1").is_none() && lab.host.link("fakepf0v0").is_some());
}

#[test]
fn del_releases_from_the_record_whatever_the_config_says_now() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let config = lab.config("1.0.0", VF0);
    ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    // The NAD was edited since: a value that no longer validates.
    let mut edited = config.clone();
    edited["vlan"] = json!(99999);
    edited["mtu"] = json!("big");
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &edited));
    assert!(!lab.state_file(VF0).exists() && lab.leases().is_empty());
    assert_eq!(lab.host.link("fakepf0v0").unwrap()["mtu"], 1500);

    // The IPAM plugin's binary is gone: the VF is released all the same,
    // the failure is reported, and a DEL once it is back finishes.
    ok(&lab.cni("ADD", "c2", &pod.path(), "net1", &config));
    let bin = lab.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut moved = config.clone();
    moved["ipam"]["type"] = json!("host-local-gone");
    let record = lab.state_file(VF0);
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(
        &record,
        text.replace("\"host-local\"", "\"host-local-gone\""),
    )
    .unwrap();
    let (code, msg) = failed(&lab.cni("DEL", "c2", &pod.path(), "net1", &moved));
    assert_eq!(code, 102, "{msg}");
    assert!(!record.exists(), "the VF is released");
    assert!(pod.link("net1").is_none() && lab.host.link("fakepf0v0").is_some());
    ok(&lab.cni("DEL", "c2", &pod.path(), "net1", &config));
    assert!(lab.leases().is_empty());
}

#[test]
fn a_failed_add_whose_rollback_completed_leaves_no_record() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let mut config = lab.config("1.0.0", VF0);
    config["ipam"] = json!({"type": "doesnotexist"});
    let (code, msg) = failed(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(code, 102, "{msg}");
    assert!(!lab.state_file(VF0).exists());
    ok(&lab.cni("ADD", "c2", &pod.path(), "net1", &lab.config("1.0.0", VF0)));
}

#[test]
fn del_takes_off_what_the_pod_stacked_on_the_vf() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let config = lab.config("1.0.0", VF0);
    let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    // VLANs are stacked the same way (IFLA_LINK), but neither this host's
    // kernel nor igb in the lab can make one on a VF: macvlans stand in.
    pod.ip("link add link net1 name mv0 type macvlan");
    pod.ip("link add link mv0 name mv1 type macvlan mode bridge");
    pod.ip("link set net1 promisc on allmulticast on");
    pod.ip("link property add dev net1 altname flannel.1");
    let mut checked = config.clone();
    checked["prevResult"] = result;
    let (code, msg) = failed(&lab.cni("CHECK", "c1", &pod.path(), "net1", &checked));
    assert_eq!(code, 104, "{msg}");
    for want in [
        "mv0 is stacked on net1",
        "mv1 is stacked on net1",
        "promiscuous",
        "all multicast",
    ] {
        assert!(msg.contains(want), "{msg}");
    }
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    let names = || -> Vec<String> {
        pod.links()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(), ["lo"], "the uppers went with the VF");
    let vf = lab.host.link("fakepf0v0").unwrap();
    assert_eq!(vf["altnames"], json!(["enp1s0f0v0"]), "{vf}");
    let flags = vf["flags"].as_array().unwrap();
    assert!(
        !flags.contains(&json!("PROMISC")) && !flags.contains(&json!("ALLMULTI")),
        "{vf}"
    );

    // A bridge port: taken out of the bridge; the pod's bridge stays.
    let result = ok(&lab.cni("ADD", "c2", &pod.path(), "net1", &config));
    pod.ip("link add br0 type bridge");
    pod.ip("link set net1 master br0");
    checked["prevResult"] = result;
    let (_, msg) = failed(&lab.cni("CHECK", "c2", &pod.path(), "net1", &checked));
    assert!(msg.contains("net1 is a port of br0"), "{msg}");
    ok(&lab.cni("DEL", "c2", &pod.path(), "net1", &config));
    assert_eq!(names(), ["lo", "br0"]);
    assert!(lab.host.link("fakepf0v0").unwrap().get("master").is_none());
}

#[test]
fn add_check_del_moves_configures_and_restores_exactly() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let config = lab.config("1.0.0", VF0);

    let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "net1");
    assert_eq!(result["interfaces"][0]["sandbox"], pod.path());
    assert_eq!(result["interfaces"][0]["mac"], "02:00:00:00:10:00");
    assert_eq!(
        result["ips"][0],
        json!({"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 0})
    );
    assert_eq!(lab.leases(), ["10.99.0.2"]);
    assert!(lab.state_file(VF0).exists());

    // In the pod: renamed, MTU, up, address, both routes; gone from the host.
    let net1 = pod.link("net1").expect("net1 in the pod");
    assert_eq!(net1["mtu"], 1400);
    assert!(net1["flags"].as_array().unwrap().contains(&"UP".into()));
    assert!(
        net1.get("altnames").is_none(),
        "host altnames do not follow into the pod"
    );
    assert!(pod.ip("-4 addr show dev net1").contains("10.99.0.2/24"));
    let routes = pod.ip("-4 route show");
    assert!(
        routes.contains("default via 10.99.0.1 dev net1"),
        "{routes}"
    );
    assert!(
        routes.contains("192.168.50.0/24 via 10.99.0.254 dev net1"),
        "{routes}"
    );
    assert!(lab.host.link("fakepf0v0").is_none());

    // CHECK passes, then reports the first thing that differs.
    let mut checked = config.clone();
    checked["prevResult"] = result.clone();
    ok(&lab.cni("CHECK", "c1", &pod.path(), "net1", &checked));
    pod.ip("route del 192.168.50.0/24");
    let (code, msg) = failed(&lab.cni("CHECK", "c1", &pod.path(), "net1", &checked));
    assert_eq!(
        (code, msg.as_str()),
        (104, "net1 lacks route 192.168.50.0/24 via 10.99.0.254")
    );
    pod.ip("addr flush dev net1");
    let (code, msg) = failed(&lab.cni("CHECK", "c1", &pod.path(), "net1", &checked));
    assert_eq!(
        (code, msg.as_str()),
        (104, "net1 lacks address 10.99.0.2/24")
    );

    // DEL puts the VF back as it was, releases the lease, drops the record.
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    let back = lab.host.link("fakepf0v0").expect("VF back in the host");
    assert_eq!(back["mtu"], 1500);
    assert_eq!(back["address"], "02:00:00:00:10:00");
    assert_eq!(back["altnames"], json!(["enp1s0f0v0"]));
    assert!(!back["flags"].as_array().unwrap().contains(&"UP".into()));
    assert!(pod.link("net1").is_none());
    assert!(lab.leases().is_empty());
    assert!(!lab.state_file(VF0).exists());

    // DEL again: nothing left to do, still success.
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
}

#[test]
fn every_version_gets_its_own_result_shape() {
    let lab = Lab::new();
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = Namespace::new("pod");
        let config = lab.config(version, VF0);
        let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        assert_eq!(
            ip.get("version").is_some(),
            version < "1.0.0",
            "{version}: {ip}"
        );
        assert_eq!(
            result["interfaces"][0].get("pciID").is_some(),
            version == "1.1.0",
            "{version}"
        );
        ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    }
}

#[test]
fn a_failure_after_the_move_rolls_everything_back() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    // The pod already has the interface name the runtime asks for.
    pod.ip("link add net1 type veth peer name other");
    let (code, msg) = failed(&lab.cni("ADD", "c1", &pod.path(), "net1", &lab.config("1.0.0", VF0)));
    assert_eq!(code, 103, "{msg}");
    assert!(msg.contains("already has an interface net1"), "{msg}");

    let back = lab.host.link("fakepf0v0").expect("VF back in the host");
    assert_eq!(back["altnames"], json!(["enp1s0f0v0"]));
    assert_eq!(back["mtu"], 1500);
    assert!(lab.leases().is_empty(), "the IPAM lease was released");
    assert!(!lab.state_file(VF0).exists());
    assert_eq!(pod.links().len(), 3, "lo, net1 and other, nothing more");
}

#[test]
fn pf_side_settings_need_a_pf_that_reports_its_vfs() {
    // The veth standing in for the PF reports no VFs; a real PF does (lab).
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let mut config = lab.config("1.0.0", VF0);
    config["vlan"] = json!(100);
    let (code, msg) = failed(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(
        (code, msg.as_str()),
        (
            101,
            "fakepf0 reports no vf 0; its VF settings cannot be changed"
        )
    );
    assert!(lab.host.link("fakepf0v0").is_some());
    assert!(!lab.state_file(VF0).exists());
}

#[test]
fn del_survives_what_is_already_gone() {
    let lab = Lab::new();
    let config = lab.config("1.0.0", VF0);

    // The pod's namespace deleted before DEL. A veth dies with it, as a
    // VF netdev never does (it comes back to the host: the lab covers
    // that): while sysfs says the VF has a netdev driver, DEL refuses to
    // call it restored and keeps the record...
    let pod = Namespace::new("pod");
    ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    let path = pod.path();
    drop(pod);
    let (code, msg) = failed(&lab.cni("DEL", "c1", &path, "net1", &config));
    assert_eq!(code, 103, "{msg}");
    assert!(msg.contains("neither in the pod"), "{msg}");
    assert!(lab.state_file(VF0).exists());
    // ... until the VF is provably gone: its PCI device removed.
    std::fs::remove_dir_all(lab.fake.device_dir(VF0)).unwrap();
    ok(&lab.cni("DEL", "c1", &path, "net1", &config));
    assert!(!lab.state_file(VF0).exists());
    assert!(lab.leases().is_empty());

    // No record (the node rebooted): DEL still releases IPAM and succeeds.
    let pod = Namespace::new("pod");
    ok(&lab.cni("ADD", "c2", &pod.path(), "net1", &lab.config("1.0.0", VF1)));
    std::fs::remove_file(lab.state_file(VF1)).unwrap();
    ok(&lab.cni("DEL", "c2", &pod.path(), "net1", &lab.config("1.0.0", VF1)));
    assert!(lab.leases().is_empty());

    // No deviceID, no record, no netns: still success.
    let mut bare = lab.config("1.0.0", VF0);
    bare.as_object_mut().unwrap().remove("deviceID");
    ok(&lab.cni("DEL", "c9", "", "net1", &bare));
}

#[test]
fn a_vf_in_a_live_sandbox_is_refused_and_a_dead_ones_is_reclaimed() {
    let lab = Lab::new();
    let first = Namespace::new("pod");
    let second = Namespace::new("pod");
    let config = lab.config("1.0.0", VF0);
    ok(&lab.cni("ADD", "c1", &first.path(), "net1", &config));

    let (code, msg) = failed(&lab.cni("ADD", "c2", &second.path(), "net1", &config));
    assert_eq!(code, 11, "{msg}");
    assert!(msg.contains("c1") && msg.contains("still alive"), "{msg}");
    let (code, _) = failed(&lab.cni("ADD", "c1", &first.path(), "net1", &config));
    assert_eq!(code, 7, "the same attachment twice");

    // The sandbox dies without a DEL; a VF returns to the host when its
    // namespace goes (a veth would die with it, so move it out first).
    first.ip(&format!("link set net1 netns {}", lab.host.0));
    lab.host.ip("link set net1 name fakepf0v0");
    drop(first);
    // The next ADD reclaims it; a DEL of the old pod arriving late must
    // not touch the VF's new owner.
    ok(&lab.cni("ADD", "c2", &second.path(), "net1", &config));
    ok(&lab.cni("DEL", "c1", "/var/run/netns/gone", "net1", &config));
    assert!(second.link("net1").is_some(), "c2 keeps its VF");
    assert!(lab.state_file(VF0).exists());
    ok(&lab.cni("DEL", "c2", &second.path(), "net1", &config));
}

#[test]
fn gc_releases_what_the_runtime_no_longer_knows() {
    let lab = Lab::new();
    let (a, b) = (Namespace::new("pod"), Namespace::new("pod"));
    ok(&lab.cni("ADD", "ca", &a.path(), "net1", &lab.config("1.1.0", VF0)));
    ok(&lab.cni("ADD", "cb", &b.path(), "net1", &lab.config("1.1.0", VF1)));
    assert_eq!(lab.leases().len(), 2);

    let mut gc = lab.config("1.1.0", VF0);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ca", "ifname": "net1"}]);
    ok(&lab.cni("GC", "", "", "", &gc));
    assert!(lab.state_file(VF0).exists() && a.link("net1").is_some());
    assert!(!lab.state_file(VF1).exists() && b.link("net1").is_none());
    assert!(lab.host.link("fakepf0v1").is_some());
    assert_eq!(lab.leases(), ["10.99.0.2"]);
}

#[test]
fn gc_touches_only_its_own_network_and_only_with_a_list() {
    let lab = Lab::new();
    let (a, b) = (Namespace::new("pod"), Namespace::new("pod"));
    let mut net_b = lab.config("1.1.0", VF1);
    net_b["name"] = json!("net-b");
    ok(&lab.cni("ADD", "ca", &a.path(), "net1", &lab.config("1.1.0", VF0)));
    ok(&lab.cni("ADD", "cb", &b.path(), "net1", &net_b));
    let gc = |extra: Value| {
        let mut gc = lab.config("1.1.0", VF0);
        for (k, v) in extra.as_object().unwrap() {
            gc[k] = v.clone();
        }
        ok(&lab.cni("GC", "", "", "", &gc));
    };
    // No list at all: nothing is released.
    gc(json!({}));
    assert!(lab.state_file(VF0).exists() && lab.state_file(VF1).exists());
    // The older key alone lists ca: kept; net-b's cb is not this network's.
    gc(json!({"cni.dev/attachments": [{"containerID": "ca", "ifname": "net1"}]}));
    assert!(lab.state_file(VF0).exists() && a.link("net1").is_some());
    assert!(lab.state_file(VF1).exists() && b.link("net1").is_some());
    // An empty list releases this network's attachments only.
    gc(json!({"cni.dev/valid-attachments": []}));
    assert!(!lab.state_file(VF0).exists() && a.link("net1").is_none());
    assert!(lab.state_file(VF1).exists() && b.link("net1").is_some());
}

#[test]
fn userspace_vf_gets_pf_side_only_and_ipam_is_returned() {
    let lab = Lab::new();
    lab.fake.bind(VF1, "vfio-pci").unwrap();
    let pod = Namespace::new("pod");
    let config = lab.config("1.1.0", VF1);
    let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(result["interfaces"][0]["pciID"], VF1);
    assert_eq!(result["ips"][0]["address"], "10.99.0.2/24");
    assert_eq!(pod.links().len(), 1, "nothing moved into the pod");
    let record: Value =
        serde_json::from_slice(&std::fs::read(lab.state_file(VF1)).unwrap()).unwrap();
    assert_eq!(record["userspace"], true);
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    assert!(!lab.state_file(VF1).exists());
    assert!(lab.leases().is_empty());
}

#[test]
fn device_info_file_when_asked() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let info = lab.root.path().join("devinfo/net1.json");
    let mut config = lab.config("1.0.0", VF0);
    config["runtimeConfig"] = json!({"CNIDeviceInfoFile": info});
    ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    let written: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(
        written,
        json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": VF0, "pf-pci-address": "0000:01:00.0"}})
    );
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    assert!(!info.exists());
}

#[test]
fn status_says_whether_adds_can_be_served() {
    let lab = Lab::new();
    ok(&lab.cni("STATUS", "", "", "", &lab.config("1.1.0", VF0)));
    let mut config = lab.config("1.1.0", VF0);
    config["ipam"]["type"] = json!("no-such-ipam");
    let (code, msg) = failed(&lab.cni("STATUS", "", "", "", &config));
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains("no-such-ipam"), "{msg}");
    let _ = Path::new(CNI_PATH);
}

#[test]
fn static_ipam_and_runtime_ips() {
    let lab = Lab::new();
    let pod = Namespace::new("pod");
    let mut config = json!({
        "cniVersion": "1.0.0", "name": "sriov-static", "type": "sriov", "deviceID": VF0,
        "ipam": {
            "type": "static",
            "addresses": [{"address": "10.77.0.5/24", "gateway": "10.77.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]
        }
    });
    let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(result["ips"][0]["address"], "10.77.0.5/24");
    assert!(pod.ip("-4 addr show dev net1").contains("10.77.0.5/24"));
    assert!(pod
        .ip("-4 route show")
        .contains("default via 10.77.0.1 dev net1"));
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));

    // runtimeConfig.ips reaches the plugin, which gives them instead.
    config["runtimeConfig"] = json!({"ips": ["10.78.0.9/24"]});
    let result = ok(&lab.cni("ADD", "c1", &pod.path(), "net1", &config));
    assert_eq!(
        result["ips"],
        json!([{"address": "10.78.0.9/24", "interface": 0}])
    );
    assert!(pod.ip("-4 addr show dev net1").contains("10.78.0.9/24"));
    ok(&lab.cni("DEL", "c1", &pod.path(), "net1", &config));
    assert!(lab.host.link("fakepf0v0").is_some());
}
