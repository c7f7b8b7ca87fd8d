//! GC: release this network's recorded attachments that the runtime no
//! longer knows.

use crate::cni::Failures;
use crate::context::Ctx;
use crate::release::{release, Lease};
use crate::state::Store;
use crate::Result;

pub fn gc(ctx: &mut Ctx) -> Result<()> {
    // Without the list, the runtime said nothing of what is valid: an
    // empty answer is not "nothing is".
    let Some(valid) = ctx.conf.valid_attachments.clone() else {
        ctx.log
            .info("GC without cni.dev/valid-attachments: nothing is released");
        return Ok(());
    };
    let store = Store::new(&ctx.host.state_dir);
    let network = ctx.conf.name.clone();
    let mut failures = Failures::default();
    for record in store.all()? {
        let listed = valid.iter().any(|(id, ifname)| record.is_for(id, ifname));
        if listed || record.network_name() != network {
            continue;
        }
        let Ok(device) = record.device_id.parse() else {
            continue;
        };
        let _lock = store.lock_existing(device)?;
        // Another call may have released it while we waited.
        let Some(record) = store.load(&record.device_id)? else {
            continue;
        };
        if valid.iter().any(|(id, ifname)| record.is_for(id, ifname)) {
            continue;
        }
        ctx.log.info(&format!(
            "GC: releasing {} of container {} ({}) in network {network}",
            record.device_id, record.container_id, record.ifname
        ));
        failures.note(release(ctx, &store, &record, "", Lease::Release));
    }
    failures.into_result()
}
