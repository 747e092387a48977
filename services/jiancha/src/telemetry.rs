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

/// What `jiancha probe` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Probe {
    /// `/healthz`: the process runs.
    Live,
    /// `/readyz`: every role in the process can serve.
    Ready,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha probe ready --config /etc/jiancha/jiancha.toml    # exit 0 when ready, 4 when not
  jiancha probe live --address 127.0.0.1:9464

For container health checks where no HTTP client is installed (the image's HEALTHCHECK).")]
pub struct ProbeArgs {
    /// Which probe.
    #[arg(value_enum)]
    probe: Probe,
    /// The configuration whose `metrics_listen` to ask (JIANCHA_METRICS_LISTEN works too).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The metrics listener's address, instead of the configuration's.
    #[arg(long)]
    address: Option<String>,
}

/// A probe that answered "not ready" (or not at all).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProbeFailed(pub String);

/// Asks the local metrics listener's `/healthz` or `/readyz`; prints the answer.
pub fn probe(args: ProbeArgs) -> Result<()> {
    let listen = match args.address {
        Some(a) => a,
        None => Config::load(args.config.as_deref())?.metrics_listen,
    };
    // A listener on every address is asked on loopback.
    let address = listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
    let path = match args.probe {
        Probe::Live => "healthz",
        Probe::Ready => "readyz",
    };
    let url = format!("http://{address}/{path}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
        let response = client.get(&url).send().await.map_err(|e| ProbeFailed(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        print!("{body}");
        if status.is_success() { Ok(()) } else { Err(ProbeFailed(format!("{url}: {status}")).into()) }
    })
}
