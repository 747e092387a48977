//! `jiancha accountability`, `jiancha audit verify`, `jiancha report`, and the
//! accountability service's part in `jiancha up`.

use crate::up::Extra;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use jiancha_accountability::stats::{self, GroupBy};
use jiancha_accountability::store::Store;
use jiancha_platform::Config;
use std::path::{Path, PathBuf};

/// Settings shared by the accountability subcommands.
#[derive(Args, Debug)]
pub struct DbFlags {
    /// Configuration (TOML; see docs/accountability.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// `postgres://user:password@host/db` or `sqlite://FILE` (else `accountability.database`, or JIANCHA_DATABASE).
    #[arg(long)]
    database: Option<String>,
    /// The service catalog (service names, calendars); the demo catalog when absent.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// An extra calendar file (repeatable).
    #[arg(long = "calendar")]
    calendars: Vec<PathBuf>,
}

impl DbFlags {
    fn config(&self) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.database {
            c.accountability.database = d.clone();
        }
        if let Some(v) = &self.catalog {
            c.catalog = Some(v.clone());
        }
        if !self.calendars.is_empty() {
            c.calendars = self.calendars.clone();
        }
        Ok(c)
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha accountability --kafka-bootstrap kafka:9092 --database postgres://jiancha@db/jiancha --config /etc/jiancha/jiancha.toml
  jiancha accountability --kafka-bootstrap 127.0.0.1:9092 --database sqlite://cases.db --plaintext --auth-secret-file jwt.secret

Consumes jiancha.alerts (every YELLOW and RED alert opens one case; a retraction closes it)
and jiancha.monitor.state (item figures for the statistics), escalates unreplied YELLOW
cases after 5 working days (督办), and serves jiancha.v1.AccountabilityService and
StatsService with the gateway's TLS and tokens. Migrations are applied at start.")]
pub struct ServeArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    security: crate::grpc::SecurityFlags,
    #[command(flatten)]
    db: DbFlags,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let mut c = args.db.config()?;
    if let Some(v) = args.kafka_bootstrap {
        c.kafka_bootstrap = v;
    }
    if let Some(v) = args.listen {
        c.accountability.listen = v;
    }
    args.security.apply(&mut c);
    c.validate()?;
    crate::grpc::run_until_signal(c, |c, shutdown| async move {
        let running = jiancha_accountability::service::start(c, shutdown).await?;
        println!("accountability grpc: {}", running.addr);
        Ok(async move { running.wait().await.map_err(anyhow::Error::from) })
    })
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Checks the audit log's hash chain, every case (all its columns, comments and
    /// attachments) against its newest entry, and that no case of the log is missing;
    /// names the first bad entry, or prints the head hash to publish.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    db: DbFlags,
    /// A head published earlier, `SEQ:HASH`: the log must still hold that entry with that
    /// hash (so nothing up to it was changed or removed, the newest entries included).
    #[arg(long)]
    head: Option<String>,
}

pub fn audit(args: AuditArgs) -> Result<()> {
    let AuditCommand::Verify(v) = args.command;
    let c = v.db.config()?;
    let published = match &v.head {
        None => None,
        Some(text) => {
            let (seq, hash) = text.split_once(':').context("--head is SEQ:HASH, as `audit verify` prints it")?;
            Some((seq.parse::<i64>().context("--head: SEQ is a number")?, hash.to_owned()))
        }
    };
    let (result, at_published) = crate::live::runtime()?.block_on(async {
        let store = Store::open(&c.accountability.database).await?;
        let at = match &published {
            Some((seq, _)) => store.audit_entries(seq - 1, None, 1).await?.into_iter().find(|e| e.seq == *seq).map(|e| e.hash),
            None => None,
        };
        Ok::<_, anyhow::Error>((store.verify_audit().await?, at))
    })?;
    let head = match result {
        Ok(head) => head,
        Err(b) => return Err(crate::exit::VerificationFailed(format!("audit log broken at {b}")).into()),
    };
    if let Some((seq, hash)) = &published {
        match at_published {
            Some(found) if found == *hash => {}
            Some(found) => {
                return Err(crate::exit::VerificationFailed(format!(
                    "audit log broken at audit entry {seq}: its hash is {found}, not the published {hash}"
                ))
                .into());
            }
            None => {
                return Err(crate::exit::VerificationFailed(format!(
                    "audit log broken at audit entry {seq}: the published head is missing (entries removed)"
                ))
                .into());
            }
        }
    }
    println!("audit log intact: {} entries, every case matches its newest entry", head.entries);
    println!("head: {}:{}", head.seq, head.hash);
    Ok(())
}

/// Report formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// One row per department or service.
    Csv,
    /// The whole report.
    Json,
    /// A page with a ranking table and charts.
    Html,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha report --period 2025-03 --format csv --database postgres://jiancha@db/jiancha
  jiancha report --period 2025-Q1 --format html --output 2025-Q1.html
  jiancha report --period 2025-03-01..2025-03-15 --group-by service --format json

The 绩效评估通报 of DOMAIN §7: per department (or service) received, accepted, decided,
on time, early, overdue, working days used (mean and p90), share of the promised limit
used, alerts by level, LATE_REPORT share, dispositions, repeat-offender marks, score and rank.")]
pub struct ReportArgs {
    /// `2025-03` (month), `2025-Q1` (quarter), `2025` (year) or `2025-03-01..2025-03-15`.
    #[arg(long)]
    period: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// `department` or `service`.
    #[arg(long, default_value = "department")]
    group_by: String,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    db: DbFlags,
}

pub fn report(args: ReportArgs) -> Result<()> {
    let c = args.db.config()?;
    let (catalog, calendars) = jiancha_platform::rules::load_rules(c.catalog.as_ref(), &c.calendar_files())?;
    let period = stats::parse_period(&args.period, calendars.default_calendar().tz()).map_err(anyhow::Error::msg)?;
    let group_by = GroupBy::parse(&args.group_by).map_err(anyhow::Error::msg)?;
    let started = std::time::Instant::now();
    let report = crate::live::runtime()?.block_on(async {
        let store = Store::open(&c.accountability.database).await?;
        stats::report(&store, &catalog, &period, group_by, &c.accountability.weights).await
    })?;
    let text = match args.format {
        Format::Csv => report.to_csv(),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Html => report.to_html(),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!("report {} ({} rows) in {:.2} s", report.period, report.rows.len(), started.elapsed().as_secs_f64());
    Ok(())
}

/// The accountability service inside `jiancha up`, on SQLite under `state_dir` (fresh
/// each start, like the embedded broker), sharing the gateway's TLS and tokens.
pub fn up_accountability(
    mut config: Config,
    state_dir: &Path,
    addr: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
) -> Result<(Config, Extra)> {
    if config.accountability.database == Config::default().accountability.database {
        let file = state_dir.join("accountability.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        config.accountability.database = format!("sqlite://{}", file.display());
    }
    let extra: Extra = Box::new(move |mut config: Config, shutdown| {
        Box::pin(async move {
            let running = match jiancha_accountability::service::start(config.clone(), shutdown.clone()).await {
                Ok(r) => r,
                Err(jiancha_accountability::service::ServiceError::Config(e)) if e.contains("accountability.listen") => {
                    config.accountability.listen = "127.0.0.1:0".into();
                    jiancha_accountability::service::start(config.clone(), shutdown).await.map_err(|e| e.to_string())?
                }
                Err(e) => {
                    eprintln!("jiancha: the accountability service could not start: {e}");
                    return Err(e.to_string());
                }
            };
            let database = jiancha_accountability::service::redact(&config.accountability.database);
            println!("accountability grpc: {} (cases in {database})", running.addr);
            let _ = addr.send(running.addr);
            running.wait().await.map_err(|e| e.to_string())
        })
    });
    Ok((config, extra))
}
