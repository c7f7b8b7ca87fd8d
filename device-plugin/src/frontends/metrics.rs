//! The daemon's HTTP endpoint (`--metrics-addr`, off by default):
//! - `/metrics`: per pool, its devices, healthy devices, devices handed out,
//!   registrations and their failures, Allocate calls and errors; for the
//!   daemon, its rescans. OpenMetrics text, by `prometheus-client`.
//! - `/healthz`: the daemon's event loop answers (it runs on the same
//!   thread as everything else).
//! - `/readyz`: every pool with devices is served and registered; the body
//!   says which are not, and why.
//!
//! Served by axum, the HTTP stack tonic already brings.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::warn;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::core::view::PoolView;

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
    /// The pool's socket is served.
    pub serving: AtomicBool,
    /// Kubelet accepted the pool (since its last restart).
    pub registered: AtomicBool,
}

impl PoolCounters {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(flag: &AtomicBool, value: bool) {
        flag.store(value, Ordering::Relaxed);
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

impl PoolMetrics {
    fn devices(&self) -> usize {
        self.view.borrow().members.len()
    }
}

/// What a scrape reads: the pools as the config has them now.
#[derive(Debug)]
struct Scrape {
    daemon: Arc<DaemonCounters>,
    pools: watch::Receiver<Vec<PoolMetrics>>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.resource)
    }
}

/// A per-pool series: name (a counter's without `_total`, which the
/// encoder adds), help, type, and how to read it.
type Series = (
    &'static str,
    &'static str,
    MetricType,
    fn(&PoolMetrics) -> u64,
);

const POOL_SERIES: [Series; 7] = [
    (
        "sriov_dp_devices",
        "Devices in the pool.",
        MetricType::Gauge,
        |p| p.devices() as u64,
    ),
    (
        "sriov_dp_healthy_devices",
        "Healthy devices in the pool.",
        MetricType::Gauge,
        |p| p.view.borrow().members.iter().filter(|m| m.healthy).count() as u64,
    ),
    (
        "sriov_dp_allocated_devices",
        "Devices handed out by Allocate since start.",
        MetricType::Gauge,
        |p| p.counters.allocated.lock().map_or(0, |a| a.len() as u64),
    ),
    (
        "sriov_dp_registrations",
        "Registrations with kubelet.",
        MetricType::Counter,
        |p| p.counters.registrations.load(Ordering::Relaxed),
    ),
    (
        "sriov_dp_registration_failures",
        "Registration attempts kubelet refused or did not answer (each is retried).",
        MetricType::Counter,
        |p| p.counters.registration_failures.load(Ordering::Relaxed),
    ),
    (
        "sriov_dp_allocate_calls",
        "Allocate calls.",
        MetricType::Counter,
        |p| p.counters.allocate_calls.load(Ordering::Relaxed),
    ),
    (
        "sriov_dp_errors",
        "Failed Allocate calls and plugin-watcher registrations kubelet refused.",
        MetricType::Counter,
        |p| p.counters.errors.load(Ordering::Relaxed),
    ),
];

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools = self.pools.borrow();
        for (name, help, kind, read) in POOL_SERIES {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for pool in pools.iter() {
                let labels = [("resource", pool.resource.as_str())];
                let value = read(pool);
                let metric = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value).encode(metric)?,
                    _ => ConstGauge::new(value as i64).encode(metric)?,
                }
            }
        }
        let rescans = self.daemon.rescans.load(Ordering::Relaxed);
        let seconds = self.daemon.rescan_micros.load(Ordering::Relaxed) as f64 / 1e6;
        ConstCounter::new(rescans).encode(encoder.encode_descriptor(
            "sriov_dp_rescans",
            "Scans of the sysfs tree after start (SR-IOV link events, config changes).",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(seconds).encode(encoder.encode_descriptor(
            "sriov_dp_rescan_seconds",
            "Time those scans took.",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// Why the daemon is not ready: the pools with devices that are not
/// served, or not registered with kubelet.
fn not_ready(pools: &[PoolMetrics]) -> Vec<String> {
    pools
        .iter()
        .filter(|p| p.devices() > 0)
        .filter_map(|p| {
            let counters = &p.counters;
            if !counters.serving.load(Ordering::Relaxed) {
                Some(format!("{}: not served", p.resource))
            } else if !counters.registered.load(Ordering::Relaxed) {
                Some(format!("{}: not registered with kubelet", p.resource))
            } else {
                None
            }
        })
        .collect()
}

/// The endpoint's address could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("metrics on {address}: {source}")]
pub struct MetricsError {
    pub address: SocketAddr,
    pub source: std::io::Error,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `address` until the
/// daemon stops; `pools` follows the config.
pub async fn serve(
    address: SocketAddr,
    daemon: Arc<DaemonCounters>,
    pools: watch::Receiver<Vec<PoolMetrics>>,
) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError { address, source })?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        daemon,
        pools: pools.clone(),
    }));
    let registry = Arc::new(registry);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        )
                            .into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                        }
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let reasons = not_ready(&pools.borrow());
                async move {
                    if reasons.is_empty() {
                        (StatusCode::OK, "ready\n".to_string())
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, reasons.join("\n") + "\n")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!("the metrics endpoint stopped: {e}");
        }
    });
    Ok(())
}
