//! Preparing a claim for kubelet, once its allocation is known: each
//! device is checked (ours, healthy, not another claim's), a CDI spec is
//! written for the claim (upstream's `PCIDEVICE_*` variables with their
//! `_INFO`, vfio device nodes), the NPWG device-info files for Multus and
//! the CNI, and the checkpoint. Unprepare undoes it. Both are idempotent:
//! kubelet repeats them after its own restarts and ours.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::warn;

use super::checkpoint::{self, CheckpointError, PreparedClaim, PreparedDevice};
use super::claims::Allocated;
use super::slices::device_name;
use crate::core::container;
use crate::core::pool::{Member, Pins};
use crate::core::view::PoolView;
use crate::frontends::device_info;

/// The CDI kind of DRA devices; a claim's devices are named
/// `<claim uid>-<device>`.
pub const CDI_KIND: &str = "sriovnetwork.k8snetworkplumbingwg.io/vf";
const SPEC_PREFIX: &str = "sriov-dra-";

/// Where things go.
#[derive(Clone, Debug)]
pub struct Paths {
    pub cdi_dir: PathBuf,
    pub device_info_dir: PathBuf,
    /// Where device nodes are looked up (`/dev`).
    pub dev: PathBuf,
    pub checkpoint: PathBuf,
}

pub struct Preparer {
    /// This node's name: the pool every device of ours is in.
    node: String,
    paths: Paths,
    /// The pools served through DRA, as the daemon last routed them.
    pools: watch::Receiver<Option<Vec<PoolView>>>,
    prepared: BTreeMap<String, PreparedClaim>,
    /// The devices prepared claims hold, by the pool they came from: the
    /// daemon keeps them there.
    held: watch::Sender<Pins>,
}

impl Preparer {
    /// Takes over the claims an earlier run prepared. A checkpoint that
    /// cannot be read (an I/O error) stops the daemon: starting without it
    /// would hand held devices out again. One that is not ours to parse is
    /// set aside (`checkpoint.bad-<seconds>`), and its claims are recovered
    /// from their CDI specs: their devices stay held, out of every pool,
    /// until kubelet unprepares them.
    pub fn new(
        node: String,
        paths: Paths,
        pools: watch::Receiver<Option<Vec<PoolView>>>,
    ) -> Result<Self, CheckpointError> {
        let prepared = match checkpoint::load(&paths.checkpoint) {
            Ok(prepared) => prepared,
            Err(e @ CheckpointError::Parse { .. }) => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = paths.checkpoint.with_extension(format!("bad-{seconds}"));
                let _ = std::fs::rename(&paths.checkpoint, &aside);
                let recovered = recover(&paths.cdi_dir, &node);
                warn!(
                    "{e}; set aside as {}; {} claims recovered from their CDI specs",
                    aside.display(),
                    recovered.len()
                );
                recovered
            }
            Err(e) => return Err(e),
        };
        let preparer = Preparer {
            node,
            paths,
            pools,
            prepared,
            held: watch::Sender::new(Pins::new()),
        };
        preparer.update_held();
        Ok(preparer)
    }

    /// The devices prepared claims hold, kept current.
    pub fn held(&self) -> watch::Receiver<Pins> {
        self.held.subscribe()
    }

    /// The claim as prepared before, if it still is (its CDI spec is there:
    /// a node reboot empties /var/run but not the checkpoint).
    pub fn already(&self, uid: &str) -> Option<PreparedClaim> {
        let claim = self.prepared.get(uid).filter(|c| {
            check_uid(uid).is_ok() && !c.devices.iter().any(|d| d.resource.is_empty())
        })?;
        spec_path(&self.paths.cdi_dir, uid)
            .exists()
            .then(|| claim.clone())
    }

    /// Prepares the claim `uid` with the devices it was allocated from our
    /// driver. The error names the device and why.
    pub fn prepare(
        &mut self,
        uid: &str,
        namespace: &str,
        name: &str,
        allocated: &[Allocated],
    ) -> Result<PreparedClaim, String> {
        check_uid(uid)?;
        if let Some(claim) = self.already(uid) {
            return Ok(claim);
        }
        let pools = self.pools.borrow().clone().unwrap_or_default();
        let members: HashMap<String, (&PoolView, &Member)> = pools
            .iter()
            .flat_map(|pool| {
                pool.members
                    .iter()
                    .map(move |m| (device_name(m.device.address), (pool, m)))
            })
            .collect();
        // Each device once, with every request it satisfies.
        let mut chosen: Vec<(&Allocated, Vec<String>, &PoolView, &Member)> = Vec::new();
        for result in allocated {
            if result.admin_access {
                return Err(format!(
                    "device {}: admin access is not supported by this driver",
                    result.device
                ));
            }
            if let Some(entry) = chosen.iter_mut().find(|c| c.0.device == result.device) {
                entry.1.push(result.request.clone());
                continue;
            }
            let known = (result.pool == self.node)
                .then(|| members.get(&result.device))
                .flatten();
            let Some(&(pool, member)) = known else {
                return Err(format!(
                    "device {} of pool {} is not a DRA device of node {}",
                    result.device, result.pool, self.node
                ));
            };
            let address = member.device.address.to_string();
            if !member.healthy {
                return Err(format!(
                    "device {} ({address}) is unhealthy: the link of its PF is down",
                    result.device
                ));
            }
            if let Some((other, _)) = self.prepared.iter().find(|(other, c)| {
                *other != uid && c.devices.iter().any(|d| d.pci_address == address)
            }) {
                return Err(format!(
                    "device {} ({address}) is prepared for claim {other}",
                    result.device
                ));
            }
            chosen.push((result, vec![result.request.clone()], pool, member));
        }

        let devices: Vec<PreparedDevice> = chosen
            .iter()
            .map(|(result, requests, pool, member)| PreparedDevice {
                requests: requests.clone(),
                pool: result.pool.clone(),
                device: result.device.clone(),
                pci_address: member.device.address.to_string(),
                resource: pool.config.resource_name(),
                cdi_device_id: format!("{CDI_KIND}={uid}-{}", result.device),
            })
            .collect();
        let spec = spec(
            uid,
            &chosen
                .iter()
                .map(|(r, _, pool, member)| (r.device.as_str(), *pool, *member))
                .collect::<Vec<_>>(),
            &self.paths.dev,
        );
        write_spec(&self.paths.cdi_dir, uid, &spec).map_err(|e| {
            format!(
                "CDI spec {}: {e}",
                spec_path(&self.paths.cdi_dir, uid).display()
            )
        })?;
        for (_, _, pool, member) in &chosen {
            device_info::write(
                &self.paths.device_info_dir,
                &pool.config.resource_name(),
                &[member],
            );
        }
        let claim = PreparedClaim {
            namespace: namespace.into(),
            name: name.into(),
            devices,
        };
        self.prepared.insert(uid.into(), claim.clone());
        if let Err(e) = checkpoint::save(&self.paths.checkpoint, &self.prepared) {
            // Unprepare after a restart would not know it: undo.
            self.remove(uid);
            return Err(e.to_string());
        }
        self.update_held();
        Ok(claim)
    }

    /// Undoes a claim's preparation; a claim not prepared (or forgotten
    /// with a bad checkpoint) is done already, its spec removed if any.
    pub fn unprepare(&mut self, uid: &str) -> Result<(), String> {
        check_uid(uid)?;
        let Some(claim) = self.remove(uid) else {
            return Ok(());
        };
        if let Err(e) = checkpoint::save(&self.paths.checkpoint, &self.prepared) {
            // Still held: kubelet retries, and the devices stay out of
            // other pools meanwhile.
            self.prepared.insert(uid.into(), claim);
            return Err(e.to_string());
        }
        self.update_held();
        Ok(())
    }

    /// Removes the claim's files and forgets it (in memory).
    fn remove(&mut self, uid: &str) -> Option<PreparedClaim> {
        let _ = std::fs::remove_file(spec_path(&self.paths.cdi_dir, uid));
        let claim = self.prepared.remove(uid)?;
        for device in &claim.devices {
            device_info::remove(
                &self.paths.device_info_dir,
                &device.resource,
                &device.pci_address,
            );
        }
        Some(claim)
    }

    fn update_held(&self) {
        let held: Pins = self
            .prepared
            .values()
            .flat_map(|c| &c.devices)
            .filter_map(|d| Some((d.pci_address.parse().ok()?, d.resource.clone())))
            .collect();
        self.held.send_if_modified(|current| {
            let changed = *current != held;
            *current = held;
            changed
        });
    }
}

/// The claims whose CDI specs are in `dir`, as far as the specs tell: the
/// uid from the file name and each device from its CDI name. Their
/// requests and pools are unknown (an empty resource keeps a device out
/// of every pool): they can be unprepared, not prepared again.
fn recover(dir: &Path, node: &str) -> BTreeMap<String, PreparedClaim> {
    let mut claims = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return claims;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(uid) = file
            .strip_prefix(SPEC_PREFIX)
            .and_then(|f| f.strip_suffix(".json"))
        else {
            continue;
        };
        let Ok(spec) = std::fs::read(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_slice::<Value>(&text).map_err(|e| e.to_string()))
        else {
            continue;
        };
        let devices = spec["devices"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                let device = d["name"].as_str()?.strip_prefix(uid)?.strip_prefix('-')?;
                Some(PreparedDevice {
                    requests: Vec::new(),
                    pool: node.to_string(),
                    device: device.to_string(),
                    pci_address: pci_address(device)?,
                    resource: String::new(),
                    cdi_device_id: format!("{CDI_KIND}={uid}-{device}"),
                })
            })
            .collect();
        claims.insert(
            uid.to_string(),
            PreparedClaim {
                namespace: String::new(),
                name: String::new(),
                devices,
            },
        );
    }
    claims
}

/// The PCI address a device is named after (`0000-3b-01-0`).
fn pci_address(device: &str) -> Option<String> {
    let [domain, bus, slot, function] = device.split('-').collect::<Vec<_>>()[..] else {
        return None;
    };
    let address = format!("{domain}:{bus}:{slot}.{function}");
    address
        .parse::<sriovnet::PciAddress>()
        .ok()
        .map(|a| a.to_string())
}

/// A claim's uid as Kubernetes makes them (a UUID): it names files, so
/// nothing else is taken.
pub fn check_uid(uid: &str) -> Result<(), String> {
    let fine = (1..=64).contains(&uid.len())
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    fine.then_some(()).ok_or_else(|| {
        format!(
            "claim uid \"{}\" is not a Kubernetes uid (letters, digits and '-')",
            uid.escape_default()
        )
    })
}

fn spec_path(dir: &Path, uid: &str) -> PathBuf {
    dir.join(format!("{SPEC_PREFIX}{uid}.json"))
}

/// A claim's CDI spec: a device per allocated device, with its pool's
/// `PCIDEVICE_*` variables (listing the claim's devices of that pool) and
/// its device nodes.
fn spec(uid: &str, chosen: &[(&str, &PoolView, &Member)], dev: &Path) -> Value {
    let devices: Vec<Value> = chosen
        .iter()
        .map(|(name, pool, member)| {
            let resource = pool.config.resource_name();
            let same_pool: Vec<&Member> = chosen
                .iter()
                .filter(|(_, p, _)| p.config.resource_name() == resource)
                .map(|(_, _, m)| *m)
                .collect();
            let env: Vec<String> =
                container::env(&resource, &same_pool, &pool.config.additional_info, dev)
                    .into_iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
            let nodes: Vec<Value> = container::device_nodes(member, dev)
                .iter()
                .map(|path| json!({ "path": path, "hostPath": path, "permissions": "rw" }))
                .collect();
            json!({
                "name": format!("{uid}-{name}"),
                "containerEdits": { "env": env, "deviceNodes": nodes },
            })
        })
        .collect();
    json!({ "cdiVersion": "0.6.0", "kind": CDI_KIND, "devices": devices })
}

fn write_spec(dir: &Path, uid: &str, spec: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = spec_path(dir, uid);
    // Not `.json`: a runtime reading the directory meanwhile skips it.
    let temporary = file.with_extension("tmp");
    std::fs::write(&temporary, spec.to_string())?;
    std::fs::rename(&temporary, &file)
}
