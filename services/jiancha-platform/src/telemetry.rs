//! The Prometheus endpoint every role serves its metrics on.

/// Starts the Prometheus endpoint on `listen` (inside a Tokio runtime); returns the
/// address bound (`:0` picks a free port).
pub fn serve(listen: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| format!("metrics_listen `{listen}`: {e}"))?;
    let bound = std::net::TcpListener::bind(addr).map_err(|e| format!("metrics_listen `{listen}`: {e}"))?;
    let addr = bound.local_addr().map_err(|e| e.to_string())?;
    drop(bound);
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0])
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics endpoint on {addr}: {e}"))?;
    Ok(addr)
}
