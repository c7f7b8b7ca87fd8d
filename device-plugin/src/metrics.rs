//! The Prometheus endpoint (`--metrics-addr`, off by default): per pool,
//! its devices, healthy devices, devices handed out, registrations,
//! Allocate calls and errors, in the text exposition format.

use std::collections::HashSet;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::health::HEALTHY;
use crate::server::PoolView;

/// Counters of one pool, shared by its server and the daemon.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub registrations: AtomicU64,
    /// Registration attempts kubelet refused or did not answer.
    pub registration_failures: AtomicU64,
    pub allocate_calls: AtomicU64,
    pub errors: AtomicU64,
    /// Devices handed out by Allocate since start (kubelet does not say
    /// when a pod lets one go).
    pub allocated: Mutex<HashSet<String>>,
}

impl PoolCounters {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of the daemon as a whole.
#[derive(Debug, Default)]
pub struct DaemonCounters {
    /// Scans of the tree after the first: link events that concern SR-IOV,
    /// config changes.
    pub rescans: AtomicU64,
    pub rescan_micros: AtomicU64,
}

impl DaemonCounters {
    pub fn rescanned(&self, took: std::time::Duration) {
        self.rescans.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.rescan_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

pub struct PoolMetrics {
    pub resource: String,
    pub view: watch::Receiver<Arc<PoolView>>,
    pub counters: Arc<PoolCounters>,
}

/// One metric: name, type, help, and how to read it from a pool.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PoolMetrics) -> u64,
);

pub fn render(daemon: &DaemonCounters, pools: &[PoolMetrics]) -> String {
    let mut out = String::new();
    let rescans = daemon.rescans.load(Ordering::Relaxed);
    let seconds = daemon.rescan_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP sriov_dp_rescans_total Scans of the sysfs tree after start (SR-IOV link events, config changes).\n\
         # TYPE sriov_dp_rescans_total counter\nsriov_dp_rescans_total {rescans}\n\
         # HELP sriov_dp_rescan_seconds_total Time those scans took.\n\
         # TYPE sriov_dp_rescan_seconds_total counter\nsriov_dp_rescan_seconds_total {seconds}"
    );
    let series: [Series; 7] = [
        ("sriov_dp_devices", "gauge", "Devices in the pool.", |p| {
            p.view.borrow().members.len() as u64
        }),
        (
            "sriov_dp_healthy_devices",
            "gauge",
            "Healthy devices in the pool.",
            |p| {
                p.view
                    .borrow()
                    .health
                    .iter()
                    .filter(|h| **h == HEALTHY)
                    .count() as u64
            },
        ),
        (
            "sriov_dp_allocated_devices",
            "gauge",
            "Devices handed out by Allocate since start.",
            |p| p.counters.allocated.lock().map_or(0, |a| a.len() as u64),
        ),
        (
            "sriov_dp_registrations_total",
            "counter",
            "Registrations with kubelet.",
            |p| p.counters.registrations.load(Ordering::Relaxed),
        ),
        (
            "sriov_dp_registration_failures_total",
            "counter",
            "Registration attempts kubelet refused or did not answer (each is retried).",
            |p| p.counters.registration_failures.load(Ordering::Relaxed),
        ),
        (
            "sriov_dp_allocate_calls_total",
            "counter",
            "Allocate calls.",
            |p| p.counters.allocate_calls.load(Ordering::Relaxed),
        ),
        (
            "sriov_dp_errors_total",
            "counter",
            "Failed Allocate calls and plugin-watcher registrations kubelet refused.",
            |p| p.counters.errors.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for pool in pools {
            let _ = writeln!(
                out,
                "{name}{{resource=\"{}\"}} {}",
                pool.resource,
                value(pool)
            );
        }
    }
    out
}

/// Answers `GET /metrics` on `address` until the daemon stops; `pools`
/// follows the config.
pub async fn serve(
    address: SocketAddr,
    daemon: Arc<DaemonCounters>,
    pools: watch::Receiver<Vec<PoolMetrics>>,
) -> Result<(), String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("metrics on {address}: {e}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (pools, daemon) = (pools.clone(), daemon.clone());
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]);
                let (status, body) = match line.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                    ["GET", "/metrics"] => ("200 OK", render(&daemon, &pools.borrow())),
                    _ => ("404 Not Found", "only GET /metrics is served\n".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}
