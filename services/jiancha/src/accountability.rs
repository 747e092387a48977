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
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  jiancha report --period 2025-03 --format csv --database postgres://jiancha@db/jiancha
  jiancha report --period 2025-Q1 --format html --output 2025-Q1.html
  jiancha report --period 2025-03-01..2025-03-15 --group-by service --format json
  jiancha report publish --period 2026-11
  jiancha report list
  jiancha report show '监察绩效通报〔2026〕3号' --format xlsx --output 2026-11.xlsx

The 绩效评估通报 of DOMAIN §7: per department (or service) received, accepted, decided,
on time, early, overdue, working days used (mean and p90), share of the promised limit
used, alerts by level, LATE_REPORT share, dispositions, repeat-offender marks, score and rank.
Without a subcommand: the figures as they are now. `publish` stores a numbered, immutable
report (通报) of a month or a quarter; `show` gives it back byte for byte."
)]
pub struct ReportArgs {
    #[command(subcommand)]
    action: Option<ReportAction>,
    /// `2025-03` (month), `2025-Q1` (quarter), `2025` (year) or `2025-03-01..2025-03-15`.
    #[arg(long)]
    period: Option<String>,
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

/// Published reports (通报).
#[derive(Subcommand, Debug)]
pub enum ReportAction {
    /// Publish the report of a month (2026-11) or a quarter (2026-Q4): prints its number on the last line.
    Publish(PublishArgs),
    /// List the published reports, newest first.
    List(ListReportsArgs),
    /// Print a published report, byte for byte as published.
    Show(ShowReportArgs),
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// `2026-11` (month) or `2026-Q4` (quarter).
    #[arg(long)]
    period: String,
    #[command(flatten)]
    db: DbFlags,
}

#[derive(Args, Debug)]
pub struct ListReportsArgs {
    #[command(flatten)]
    db: DbFlags,
}

#[derive(Args, Debug)]
pub struct ShowReportArgs {
    /// The report's number, as `list` prints it.
    number: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    format: PublishedFormat,
    /// Write here instead of standard output (an XLSX goes to a file or a pipe).
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    db: DbFlags,
}

/// Formats of a published report.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PublishedFormat {
    /// The page (A4 landscape when printed).
    Html,
    /// UTF-8 with a byte-order mark, for Excel and WPS.
    Csv,
    /// The snapshot.
    Json,
    /// A workbook.
    Xlsx,
}

impl PublishedFormat {
    fn as_str(self) -> &'static str {
        match self {
            PublishedFormat::Html => "html",
            PublishedFormat::Csv => "csv",
            PublishedFormat::Json => "json",
            PublishedFormat::Xlsx => "xlsx",
        }
    }
}

fn write_out(output: Option<&Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    match output {
        Some(path) => std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

pub fn report(args: ReportArgs) -> Result<()> {
    match args.action {
        Some(ReportAction::Publish(a)) => return publish(a),
        Some(ReportAction::List(a)) => return list_reports(a),
        Some(ReportAction::Show(a)) => return show_report(a),
        None => {}
    }
    let Some(period_text) = &args.period else {
        anyhow::bail!(crate::exit::UsageError("jiancha report: give --period (or a subcommand: publish, list, show)".into()));
    };
    let c = args.db.config()?;
    let (catalog, calendars) = jiancha_platform::rules::load_rules(c.catalog.as_ref(), &c.calendar_files())?;
    let period = stats::parse_period(period_text, calendars.default_calendar().tz()).map_err(anyhow::Error::msg)?;
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
    write_out(args.output.as_deref(), text.as_bytes())?;
    eprintln!("report {} ({} rows) in {:.2} s", report.period, report.rows.len(), started.elapsed().as_secs_f64());
    Ok(())
}

fn publish(args: PublishArgs) -> Result<()> {
    let c = args.db.config()?;
    let (catalog, calendars) = jiancha_platform::rules::load_rules(c.catalog.as_ref(), &c.calendar_files())?;
    let zone = calendars.default_calendar().tz();
    let (published, new) = crate::live::runtime()?.block_on(async {
        let store = Store::open(&c.accountability.database).await?;
        let now = jiancha_platform::wall_clock().0;
        anyhow::Ok(
            jiancha_accountability::publish::publish(
                &store,
                &catalog,
                zone,
                &args.period,
                &c.accountability.weights,
                &c.accountability.reports,
                now,
            )
            .await?,
        )
    })?;
    let issued = jiancha_core::Timestamp(published.issued_at).to_rfc3339_in(zone);
    if new {
        println!("published {} ({}, {issued}, audit head {})", published.period, published.issued_by, published.audit_head);
    } else {
        println!("{} was published before ({issued}); nothing changed", published.period);
    }
    println!("{}", published.number);
    Ok(())
}

fn list_reports(args: ListReportsArgs) -> Result<()> {
    let c = args.db.config()?;
    let (_, calendars) = jiancha_platform::rules::load_rules(c.catalog.as_ref(), &c.calendar_files())?;
    let zone = calendars.default_calendar().tz();
    let reports = crate::live::runtime()?.block_on(async {
        let store = Store::open(&c.accountability.database).await?;
        anyhow::Ok(jiancha_accountability::publish::list(&store).await?)
    })?;
    for r in &reports {
        println!("{}\t{}\t{}\t{}", r.number, r.period, jiancha_core::Timestamp(r.issued_at).to_rfc3339_in(zone), r.sha256);
    }
    if reports.is_empty() {
        eprintln!("no report published yet (jiancha report publish --period 2026-11)");
    }
    Ok(())
}

fn show_report(args: ShowReportArgs) -> Result<()> {
    let c = args.db.config()?;
    let file = crate::live::runtime()?.block_on(async {
        let store = Store::open(&c.accountability.database).await?;
        anyhow::Ok(jiancha_accountability::publish::file(&store, &args.number, args.format.as_str()).await?)
    })?;
    let Some((_, _, bytes)) = file else {
        anyhow::bail!(crate::exit::UsageError(format!("no published report is numbered `{}` (jiancha report list)", args.number)));
    };
    write_out(args.output.as_deref(), &bytes)
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
