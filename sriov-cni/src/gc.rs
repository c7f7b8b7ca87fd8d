//! GC: release every recorded attachment the runtime no longer knows.

use crate::config::NetConf;
use crate::host::Host;
use crate::log::Log;
use crate::release::release;
use crate::state::Store;
use crate::Result;

pub fn gc(conf: &NetConf, host: &Host, log: &Log) -> Result<()> {
    let store = Store::new(&host.state_dir);
    let mut first_failure = None;
    for record in store.all()? {
        let valid = conf
            .valid_attachments
            .iter()
            .any(|(id, ifname)| *id == record.container_id && *ifname == record.ifname);
        if valid {
            continue;
        }
        let Ok(device) = record.device_id.parse() else {
            continue;
        };
        let _lock = store.lock(device)?;
        // Another call may have released it while we waited.
        let Some(record) = store.load(&record.device_id)? else {
            continue;
        };
        log.info(&format!(
            "GC: releasing {} of container {}",
            record.device_id, record.container_id
        ));
        if let Err(e) = release(host, &store, &record, "", log) {
            log.error(&format!("GC: {}: {e}", record.device_id));
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}
