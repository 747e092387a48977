//! The live subcommands: `monitor`, `up`, `produce`, `alerts`.

use anyhow::{Context, Result};
use clap::Args;
use jiancha_core::time::parse_duration_ms;
use jiancha_platform::Config;
use std::path::PathBuf;
use std::time::Duration;

/// Settings shared by `monitor` and `up`; each overrides the config file and environment.
#[derive(Args, Debug)]
pub struct MonitorFlags {
    /// Monitor configuration (TOML; see docs/monitor.md). Then JIANCHA_* variables, then these flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The service catalog (TOML); the demo catalog when absent. Reloaded when it changes.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// An extra calendar file (repeatable). Reloaded when it changes.
    #[arg(long = "calendar")]
    calendars: Vec<PathBuf>,
    /// Consumer group of the monitors.
    #[arg(long)]
    group_id: Option<String>,
    /// Prometheus endpoint address (`127.0.0.1:9464`; `127.0.0.1:0` picks a free port).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Partitions of the topics created when absent.
    #[arg(long)]
    partitions: Option<i32>,
}

impl MonitorFlags {
    fn config(&self, bootstrap: Option<&str>) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref())?;
        if let Some(b) = bootstrap {
            c.kafka_bootstrap = b.to_owned();
        }
        if let Some(v) = &self.catalog {
            c.catalog = Some(v.clone());
        }
        if !self.calendars.is_empty() {
            c.calendars = self.calendars.clone();
        }
        if let Some(v) = &self.group_id {
            c.group_id = v.clone();
        }
        if let Some(v) = &self.metrics_listen {
            c.metrics_listen = v.clone();
        }
        if let Some(v) = self.partitions {
            c.partitions = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha monitor --kafka-bootstrap 127.0.0.1:9092
  jiancha monitor --kafka-bootstrap kafka:9092 --catalog /etc/jiancha/catalog.toml --calendar /etc/jiancha/shenzhen.toml

Consumes jiancha.events (JSON or protobuf, see docs/events.md), publishes alert updates to
jiancha.alerts, invalid records to jiancha.events.dlq, item states to the compacted
jiancha.monitor.state. Stops cleanly on SIGTERM or Ctrl-C.")]
pub struct MonitorArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    #[command(flatten)]
    flags: MonitorFlags,
}

pub fn monitor(args: MonitorArgs) -> Result<()> {
    let config = args.flags.config(args.kafka_bootstrap.as_deref())?;
    runtime()?.block_on(async move {
        crate::telemetry::serve(&config).await?;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let deadline = config.shutdown();
        let mut task = tokio::spawn(jiancha_monitor::monitor::run(config, shutdown));
        tokio::select! {
            result = &mut task => return result.context("monitor task")?.map_err(anyhow::Error::from),
            _ = jiancha_platform::lifecycle::wait_for_signal() => {}
        }
        jiancha_platform::lifecycle::force_exit_after(deadline);
        // Stop polling, flush the effects, commit the offsets, then exit.
        let _ = stop.send(true);
        task.await.context("monitor task")?.map_err(anyhow::Error::from)
    })
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha up                                   # embedded broker + monitor + simulator
  jiancha up --no-simulator                    # then feed it: jiancha produce --kafka-bootstrap ADDR --file events.jsonl
  jiancha up --kafka-bootstrap 127.0.0.1:9092  # use an external broker instead

The embedded broker (librdkafka's mock cluster) keeps everything in memory: nothing is durable.")]
pub struct UpArgs {
    /// Use this broker instead of the embedded one.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// Do not simulate department systems.
    #[arg(long)]
    no_simulator: bool,
    /// Where the local TLS certificates, token secret, tokens and the editable catalog are written.
    #[arg(long, default_value = ".jiancha")]
    state_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_listen: String,
    /// The console's listen address (a free port when taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    console_listen: String,
    #[command(flatten)]
    flags: MonitorFlags,
}

pub fn up(args: UpArgs) -> Result<()> {
    let mut config = args.flags.config(None)?;
    config.grpc.listen = args.grpc_listen;
    let (gateway_addr, gateway_ready) = tokio::sync::oneshot::channel();
    let (accountability_addr, accountability_ready) = tokio::sync::oneshot::channel();
    let (config, gateway, setup) = crate::grpc::up_gateway(config, &args.state_dir, gateway_addr)?;
    let (config, accountability) = crate::accountability::up_accountability(config, &args.state_dir, accountability_addr)?;
    let (config, console) =
        crate::console::up_console(config, &args.state_dir, &setup, args.console_listen, gateway_ready, accountability_ready)?;
    runtime()?.block_on(crate::up::up(config, args.kafka_bootstrap, !args.no_simulator, vec![gateway, accountability, console]))?;
    Ok(())
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha produce --kafka-bootstrap 127.0.0.1:9092 --file deploy/demo/events.jsonl
  jiancha produce --kafka-bootstrap 127.0.0.1:9092 --file today.jsonl --skip-invalid

Each line goes to jiancha.events (or, with --department-topics, to its department's input
topic jiancha.dept.CODE.events) with key = item_id and record timestamp = received_at,
else occurred_at. Lines that fail validation are reported here and still sent (the monitor
sends them to jiancha.events.dlq with the reason) unless --skip-invalid.")]
pub struct ProduceArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka_bootstrap: String,
    /// A configuration file whose `[kafka]` settings (TLS, SASL) the producer uses.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Send each event to its department's input topic, as that department's system would.
    #[arg(long)]
    department_topics: bool,
    /// Events, one JSON object a line.
    #[arg(long)]
    file: PathBuf,
    /// The event topic.
    #[arg(long, default_value = "jiancha.events")]
    topic: String,
    /// Do not send lines that fail validation.
    #[arg(long)]
    skip_invalid: bool,
}

pub fn produce(args: ProduceArgs) -> Result<()> {
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let config = Config::load(args.config.as_deref())?;
    config.validate()?;
    let to = if args.department_topics {
        crate::tools::Destination::DepartmentTopics { topics: config.topics.clone(), fallback: args.topic.clone() }
    } else {
        crate::tools::Destination::Topic(args.topic.clone())
    };
    let client = jiancha_platform::kafka::client_for(&args.kafka_bootstrap, &config);
    let report = runtime()?.block_on(crate::tools::produce(client, &to, std::io::BufReader::new(file), args.skip_invalid))?;
    let target = if args.department_topics { "the departments' input topics".to_owned() } else { args.topic };
    eprintln!("sent {} records to {target} ({} failed validation)", report.sent, report.invalid);
    Ok(())
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha alerts --kafka-bootstrap 127.0.0.1:9092                  # everything so far, then exit
  jiancha alerts --kafka-bootstrap 127.0.0.1:9092 --follow         # and keep watching
  jiancha alerts --kafka-bootstrap 127.0.0.1:9092 --idle-exit 10s  # until 10 s pass with nothing new

Prints jiancha.alerts as JSON lines in the replay format; the last update of an alert_id is its state.")]
pub struct AlertsArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka_bootstrap: String,
    /// A configuration file whose `[kafka]` settings (TLS, SASL) the consumer uses.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Keep printing new alerts.
    #[arg(long)]
    follow: bool,
    /// Stop after this long without a new alert ("10s").
    #[arg(long, value_parser = parse_idle)]
    idle_exit: Option<Duration>,
    /// The alert topic.
    #[arg(long, default_value = "jiancha.alerts")]
    topic: String,
}

fn parse_idle(text: &str) -> Result<Duration, String> {
    parse_duration_ms(text).map(|ms| Duration::from_millis(ms as u64)).ok_or_else(|| format!("`{text}` is not a duration such as 10s"))
}

pub fn alerts(args: AlertsArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let config = Config::load(args.config.as_deref())?;
    config.validate()?;
    let client = jiancha_platform::kafka::client_for(&args.kafka_bootstrap, &config);
    crate::tools::print_alerts(client, &args.topic, args.follow, args.idle_exit, &mut out)?;
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}
