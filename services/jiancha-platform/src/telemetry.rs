//! The HTTP listener every role serves next to its work (`metrics_listen`):
//! `/metrics` (Prometheus text), `/healthz` (the process runs) and `/readyz` (every role
//! in the process can serve: [`crate::health`]). Histograms get the buckets their
//! service declares; the process's CPU, memory, file descriptors and threads and a
//! `jiancha_build_info` series are exported too (docs/metrics.md).

use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;

/// Metric: the version running, as a label of a series that is always 1.
pub const BUILD_INFO: &str = "jiancha_build_info";

/// Buckets (seconds) of work measured in microseconds: one event through the engine.
pub const MICROSECONDS: &[f64] = &[1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2];
/// Buckets (seconds) of a request or a round trip through the broker.
pub const REQUEST: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets (seconds) of long work: a restore, a timer fired late after a restart.
pub const LONG: &[f64] = &[0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// A histogram's name and its buckets.
pub type Histogram = (&'static str, &'static [f64]);

/// Starts the listener on `listen` (inside a Tokio runtime) with the buckets of
/// `histograms` (others get [`REQUEST`]); returns the address bound (`:0` picks a free
/// port).
pub async fn serve(listen: &str, histograms: &[Histogram]) -> Result<SocketAddr, String> {
    let addr: SocketAddr = listen.parse().map_err(|e| format!("metrics_listen `{listen}`: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("metrics_listen `{listen}`: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut builder = PrometheusBuilder::new().set_buckets(REQUEST).map_err(|e| e.to_string())?;
    for (name, buckets) in histograms.iter().chain(&[(crate::grpc_metrics::DURATION, REQUEST)]) {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets).map_err(|e| e.to_string())?;
    }
    let handle = builder.install_recorder().map_err(|e| format!("metrics recorder: {e}"))?;
    describe();
    let process = metrics_process::Collector::default();
    process.describe();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle: PrometheusHandle = handle.clone();
                let process = process.clone();
                async move {
                    process.collect();
                    handle.render()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "The metrics listener stopped");
        }
    });
    Ok(addr)
}

fn describe() {
    metrics::describe_gauge!(BUILD_INFO, "The version running (the value is always 1)");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::describe_gauge!(crate::health::READY, "1 while the role can serve (as /readyz says), 0 while not, by role");
    for (role, check) in crate::health::report().1 {
        metrics::gauge!(crate::health::READY, "role" => role).set(if check.ready { 1.0 } else { 0.0 });
    }
    crate::grpc_metrics::describe();
    metrics::describe_counter!(
        crate::server::CONNECTIONS_REFUSED,
        "gRPC connections closed at once because grpc.max_connections were open"
    );
}

async fn readyz() -> (StatusCode, String) {
    let (ready, checks) = crate::health::report();
    let mut body = String::new();
    for (role, check) in &checks {
        body.push_str(&format!("{role}: {} ({})\n", if check.ready { "ready" } else { "not ready" }, check.detail));
    }
    if checks.is_empty() {
        body.push_str("starting\n");
    }
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}
