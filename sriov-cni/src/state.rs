//! What ADD recorded about a VF before it changed anything: enough for DEL,
//! GC or a rollback to put the VF back exactly, after a crash or a reboot.
//!
//! One JSON file per VF, `<pci address>.json`, written atomically (write,
//! fsync, rename, fsync the directory), and one lock file per VF that every
//! command on that VF holds while it works.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sriovnet::{Link, PciAddress, VfState};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The network (the config's `name`): GC releases only its own.
    #[serde(default)]
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub device_id: String,
    pub pf: String,
    pub vf_index: u32,
    /// Bound to vfio-pci or uio: nothing was moved.
    pub userspace: bool,
    /// The VF as its PF reported it before ADD.
    pub pf_side: Option<PfSide>,
    /// The PF-side settings ADD made (`mac`, `vlan`, ...), to be undone.
    pub changed: Vec<String>,
    /// The MAC the pod was to get, if one was asked for.
    pub pod_mac: Option<String>,
    /// The VF netdev before ADD.
    pub netdev: Option<NetdevState>,
    /// `ipam.type` of the config ADD got. Release reads it from here, never
    /// by validating `config` again: an older version's record, or a config
    /// today's rules refuse, must still be released.
    #[serde(default)]
    pub ipam: Option<String>,
    /// The network config ADD got, for the IPAM plugin's DEL.
    pub config: String,
    pub cni_path: String,
    pub device_info_file: Option<PathBuf>,
    /// `resetOnRelease`: a function reset of the VF on release.
    #[serde(default)]
    pub reset_on_release: bool,
}

impl Record {
    /// `ipam`, or for a record written before it was kept, what the config
    /// names, read leniently.
    pub fn ipam_plugin(&self) -> Option<String> {
        self.ipam.clone().or_else(|| {
            crate::config::NetConf::parse_for_del(self.config.as_bytes())
                .ok()?
                .ipam
        })
    }

    /// `network`, or the config's name for an older record.
    pub fn network_name(&self) -> String {
        if !self.network.is_empty() {
            return self.network.clone();
        }
        crate::config::NetConf::parse_for_del(self.config.as_bytes())
            .map(|c| c.name)
            .unwrap_or_default()
    }

    pub fn is_for(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname == ifname
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PfSide {
    pub mac: String,
    pub vlan: u16,
    pub qos: u8,
    pub vlan_proto: String,
    pub spoof_check: bool,
    pub trust: bool,
    pub link_state: String,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

impl From<&VfState> for PfSide {
    fn from(s: &VfState) -> Self {
        PfSide {
            mac: s.mac.to_string(),
            vlan: s.vlan,
            qos: s.qos,
            vlan_proto: s.vlan_proto.to_string(),
            spoof_check: s.spoof_check,
            trust: s.trust,
            link_state: s.link_state.to_string(),
            min_tx_rate: s.min_tx_rate,
            max_tx_rate: s.max_tx_rate,
        }
    }
}

impl PfSide {
    pub fn to_state(&self, index: u32) -> Result<VfState> {
        let bad = |field: &str| Error::Decode(format!("state file: bad {field}"));
        Ok(VfState {
            index,
            mac: self.mac.parse().map_err(|_| bad("mac"))?,
            vlan: self.vlan,
            qos: self.qos,
            vlan_proto: self.vlan_proto.parse().map_err(|_| bad("vlan_proto"))?,
            spoof_check: self.spoof_check,
            trust: self.trust,
            link_state: self.link_state.parse().map_err(|_| bad("link_state"))?,
            min_tx_rate: self.min_tx_rate,
            max_tx_rate: self.max_tx_rate,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetdevState {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: u32,
    pub up: bool,
    pub altnames: Vec<String>,
    /// Modes a pod can turn on and the next tenant would inherit.
    #[serde(default)]
    pub promisc: bool,
    #[serde(default)]
    pub allmulti: bool,
}

impl From<&Link> for NetdevState {
    fn from(link: &Link) -> Self {
        NetdevState {
            name: link.name.clone(),
            mac: link.mac.map(|m| m.to_string()),
            mtu: link.mtu,
            up: link.up,
            altnames: link.altnames.clone(),
            promisc: link.promisc,
            allmulti: link.allmulti,
        }
    }
}

pub struct Store {
    dir: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{what} {}: {e}", path.display()))
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, device: &str) -> PathBuf {
        self.dir.join(format!("{device}.json"))
    }

    fn create_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))
    }

    /// Waits for and holds the VF's lock until the returned guard drops.
    /// The caller has checked that the device exists: no lock file is ever
    /// made for an address that is not a device of this host.
    pub fn lock(&self, device: PciAddress) -> Result<Flock<File>> {
        self.create_dir()?;
        let path = self.lock_path(device);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::Io(format!("lock {}: {errno}", path.display())))
    }

    /// The lock of a device that may be gone (its VF was removed): held if
    /// its lock file exists, else None (nothing of ours can race for it).
    pub fn lock_existing(&self, device: PciAddress) -> Result<Option<Flock<File>>> {
        let path = self.lock_path(device);
        match OpenOptions::new().write(true).open(&path) {
            Ok(file) => Flock::lock(file, FlockArg::LockExclusive)
                .map(Some)
                .map_err(|(_, errno)| Error::Io(format!("lock {}: {errno}", path.display()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("open", &path, e)),
        }
    }

    fn lock_path(&self, device: PciAddress) -> PathBuf {
        self.dir.join(format!("{device}.lock"))
    }

    pub fn load(&self, device: &str) -> Result<Option<Record>> {
        let path = self.path(device);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Decode(format!("state file {}: {e}", path.display()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    pub fn save(&self, record: &Record) -> Result<()> {
        self.create_dir()?;
        let path = self.path(&record.device_id);
        let temporary = self.dir.join(format!(".{}.json.tmp", record.device_id));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Io(e.to_string()))?;
        let mut file = File::create(&temporary).map_err(|e| io("create", &temporary, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", &temporary, e))?;
        fs::rename(&temporary, &path).map_err(|e| io("rename", &path, e))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("sync", &self.dir, e))
    }

    pub fn remove(&self, device: &str) -> Result<()> {
        let path = self.path(device);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every recorded attachment; a file that cannot be read is an error.
    pub fn all(&self) -> Result<Vec<Record>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &self.dir, e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| io("read", &self.dir, e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(device) = name.strip_suffix(".json").filter(|d| !d.starts_with('.')) {
                records.extend(self.load(device)?);
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            network: "net".into(),
            container_id: "c1".into(),
            ifname: "net1".into(),
            netns: "/var/run/netns/c1".into(),
            device_id: "0000:01:10.0".into(),
            pf: "enp1s0".into(),
            vf_index: 0,
            userspace: false,
            pf_side: Some(PfSide::from(&VfState::default())),
            changed: vec!["vlan".into()],
            pod_mac: None,
            netdev: None,
            ipam: None,
            config: "{}".into(),
            cni_path: "/opt/cni/bin".into(),
            device_info_file: None,
            reset_on_release: false,
        }
    }

    #[test]
    fn saves_atomically_loads_lists_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("sriov"));
        assert_eq!(store.load("0000:01:10.0").unwrap(), None);
        store.save(&record()).unwrap();
        assert_eq!(store.load("0000:01:10.0").unwrap(), Some(record()));
        assert_eq!(store.all().unwrap(), vec![record()]);
        let names: Vec<_> = fs::read_dir(dir.path().join("sriov"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["0000:01:10.0.json"], "no temporary file is left");
        store.remove("0000:01:10.0").unwrap();
        store.remove("0000:01:10.0").unwrap();
        assert!(store.all().unwrap().is_empty());
        let state = record().pf_side.unwrap().to_state(3).unwrap();
        assert_eq!(
            state,
            VfState {
                index: 3,
                ..VfState::default()
            }
        );
    }

    #[test]
    fn a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(dir.path().join("0000:01:10.0.json"), "{").unwrap();
        let err = store.load("0000:01:10.0").unwrap_err();
        assert!(err.to_string().contains("0000:01:10.0.json"), "{err}");
    }

    #[test]
    fn the_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let device: PciAddress = "0000:01:10.0".parse().unwrap();
        let held = store.lock(device).unwrap();
        let file = File::open(dir.path().join("0000:01:10.0.lock")).unwrap();
        let second = Flock::lock(file, FlockArg::LockExclusiveNonblock);
        assert!(second.is_err(), "a second lock must wait");
        drop(held);
        let file = File::open(dir.path().join("0000:01:10.0.lock")).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
