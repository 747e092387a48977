//! The metrics listener of every role (`metrics_listen`): `/metrics`, `/healthz`,
//! `/readyz`, with the histogram buckets and metric descriptions of every service, so
//! that `up` (all roles in one process) and each role alone export the same names.

use anyhow::Result;
use jiancha_platform::Config;
use std::net::SocketAddr;
use tracing::warn;

/// Serves the listener unless `metrics_listen` is empty; when the default address is
/// taken (a second instance on the host), a free port.
pub async fn serve(config: &Config) -> Result<Option<SocketAddr>> {
    if config.metrics_listen.is_empty() {
        return Ok(None);
    }
    let histograms =
        [jiancha_monitor::telemetry::HISTOGRAMS, jiancha_accountability::service::HISTOGRAMS, jiancha_console::HISTOGRAMS].concat();
    let addr = match jiancha_platform::telemetry::serve(&config.metrics_listen, &histograms).await {
        Ok(addr) => addr,
        Err(e) if config.metrics_listen == Config::default().metrics_listen => {
            warn!(error = %e, "Metrics address busy; using a free port");
            jiancha_platform::telemetry::serve("127.0.0.1:0", &histograms).await.map_err(anyhow::Error::msg)?
        }
        Err(e) => return Err(anyhow::Error::msg(e)),
    };
    jiancha_monitor::telemetry::describe();
    jiancha_gateway::describe();
    jiancha_accountability::service::describe();
    jiancha_console::describe();
    println!("metrics: http://{addr}/metrics (probes: /healthz, /readyz)");
    Ok(Some(addr))
}
