//! The tests' fake Kubernetes API server on the command line, for the lab:
//!
//!   fake-apiserver ADDRESS CLAIMS_DIR
//!
//! serves Node `worker-1`, ResourceSlices, and the ResourceClaims found as
//! `CLAIMS_DIR/<namespace>/<name>.json`, on ADDRESS (e.g. 127.0.0.1:6443,
//! plain HTTP); prints the node's published devices whenever they change,
//! as `slices GENERATION DEVICE=HEALTHY ...` (sorted; HEALTHY is the
//! device's `healthy` attribute), then the first device's attributes as
//! `attributes DEVICE NAME=VALUE ...` (sorted).

#[path = "../tests/common/apiserver.rs"]
mod apiserver;

use std::io::Write;
use std::process::ExitCode;

use apiserver::{Server, Shared, NODE};
use sriov_device_plugin::frontends::dra::DRIVER;

/// The line describing the node's slices now.
fn published(shared: &Shared) -> String {
    let server = shared.lock().unwrap_or_else(|e| e.into_inner());
    let slices: Vec<_> = server
        .slices
        .values()
        .filter(|s| s.spec.node_name.as_deref() == Some(NODE) && s.spec.driver == DRIVER)
        .collect();
    let generation = slices.iter().map(|s| s.spec.pool.generation).max();
    let mut devices: Vec<String> = slices
        .iter()
        .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
        .map(|d| {
            let healthy = d
                .attributes
                .and_then(|a| a.get(&format!("{DRIVER}/healthy"))?.bool);
            format!(
                "{}={}",
                d.name,
                healthy.map_or("?".into(), |h| h.to_string())
            )
        })
        .collect();
    devices.sort();
    let first = slices
        .iter()
        .flat_map(|s| s.spec.devices.clone().unwrap_or_default())
        .min_by(|a, b| a.name.cmp(&b.name));
    let attributes = first.map_or(String::new(), |d| {
        let values = d
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, a)| {
                let value = a
                    .string
                    .or(a.version)
                    .or(a.int.map(|i| i.to_string()))
                    .or(a.bool.map(|b| b.to_string()))
                    .unwrap_or_default();
                format!(" {name}={value}")
            });
        format!("\nattributes {}{}", d.name, values.collect::<String>())
    });
    format!(
        "slices {} {}{attributes}",
        generation.unwrap_or(0),
        devices.join(" ")
    )
}

async fn run(address: String, claims: String) -> Result<(), String> {
    let shared = Shared::new(std::sync::Mutex::new(Server {
        claims_dir: Some(claims.into()),
        ..Server::default()
    }));
    // An address, not a name: nothing to resolve.
    let address: std::net::SocketAddr = address
        .parse()
        .map_err(|e| format!("address {address}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("listen on {address}: {e}"))?;
    apiserver::serve_on(listener, shared.clone()).await;
    let mut last = String::new();
    loop {
        let now = published(&shared);
        if now != last {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{now}");
            let _ = out.flush();
            last = now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, claims] = args.as_slice() else {
        eprintln!("usage: fake-apiserver ADDRESS CLAIMS_DIR");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(run(address.clone(), claims.clone())),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-apiserver: {e}");
            ExitCode::FAILURE
        }
    }
}
