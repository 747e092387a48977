//! The `jiancha` command line: one subcommand per role. Every subcommand drives the
//! same engine from `jiancha-core`. The binary is `src/main.rs`; this library lets the
//! workspace tests run the same CLI as a separate process.

mod accountability;
mod config_cmd;
mod console;
mod demo;
mod grpc;
mod live;
mod replay;
mod simulate;
mod telemetry;
pub mod tools;
pub mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The command line.
#[derive(Parser, Debug)]
#[command(name = "jiancha", version, about = "电子监察: real-time supervision of administrative approval deadlines and procedure")]
pub struct Cli {
    /// Log lines on stderr as `text` (for people) or `json` (one object a line, for log
    /// collectors). The level comes from JIANCHA_LOG (`info,rdkafka=warn,sqlx=warn`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The form of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay the embedded demo (a service centre's catalog, a few hundred items) and show its alerts.
    Demo(demo::DemoArgs),
    /// Run the engine over an events file on a virtual clock and print the alerts (the batch oracle).
    Replay(replay::ReplayArgs),
    /// Everything in one process: an embedded broker, the monitor and a simulator of department systems.
    Up(live::UpArgs),
    /// The live monitor: consume approval events from Kafka, publish alerts.
    Monitor(live::MonitorArgs),
    /// The gRPC gateway: event ingest, item timelines, live alerts, catalog (TLS, JWT roles).
    Gateway(grpc::GatewayArgs),
    /// The accountability queue: cases from alerts, 督办, audit log, statistics, over gRPC.
    Accountability(accountability::ServeArgs),
    /// The inspector console (web pages over the gRPC services); `console login` prints a login link.
    Console(console::ConsoleArgs),
    /// Check a configuration file, print the configuration, print the reference of every key.
    Config(config_cmd::ConfigArgs),
    /// Ask this host's metrics listener whether the process is alive or ready (health checks).
    Probe(telemetry::ProbeArgs),
    /// The audit log of the accountability queue.
    Audit(accountability::AuditArgs),
    /// The performance report (绩效评估通报) of a month, quarter, year or range of days.
    Report(accountability::ReportArgs),
    /// Sign a bearer token for the gRPC services.
    Token(grpc::TokenArgs),
    /// Publish an events file (JSON lines) to the event topic.
    Produce(live::ProduceArgs),
    /// Print the alert topic as JSON lines.
    Alerts(live::AlertsArgs),
    /// Generate a realistic event stream for a catalog, irregular handling mixed in.
    Simulate(simulate::SimulateArgs),
    /// Load-test the monitors: an open-loop stream at a target rate, latency, lag, memory, and the alerts checked against replay.
    Loadtest(jiancha_loadtest::loadtest::LoadtestArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = || tracing_subscriber::EnvFilter::try_from_env("JIANCHA_LOG").unwrap_or_else(|_| "info,rdkafka=warn,sqlx=warn".into());
    match cli.log_format {
        // Colours only for a terminal: a file, journald or a log collector gets plain text.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter()).with_writer(std::io::stderr).init(),
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Up(args) => live::up(args),
        Command::Monitor(args) => live::monitor(args),
        Command::Produce(args) => live::produce(args),
        Command::Gateway(args) => grpc::gateway(args),
        Command::Token(args) => grpc::token(args),
        Command::Accountability(args) => accountability::serve(args),
        Command::Console(args) => console::run(args),
        Command::Config(args) => config_cmd::run(args),
        Command::Probe(args) => telemetry::probe(args),
        Command::Audit(args) => accountability::audit(args),
        Command::Report(args) => accountability::report(args),
        Command::Alerts(args) => live::alerts(args),
        Command::Replay(args) => replay::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Loadtest(args) => loadtest(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jiancha: {err:#}");
            ExitCode::from(exit::of(&err))
        }
    }
}

/// `jiancha loadtest`: the monitors it starts are this binary's `monitor` subcommand.
fn loadtest(args: jiancha_loadtest::loadtest::LoadtestArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding this program to start monitors: {e}"))?;
    let out = args.out.clone();
    let outcome = jiancha_loadtest::loadtest::run(args, &exe)?;
    println!("{}", std::fs::read_to_string(out.join("report.md")).unwrap_or_default());
    println!("written: {}/result.json, report.md, rates.svg, latency.svg, latency-cdf.svg", out.display());
    if outcome.correct() == Some(false) {
        return Err(exit::VerificationFailed("the live alerts differ from replay of the same records (report.md)".into()).into());
    }
    Ok(())
}

/// Exit statuses: a script or a supervisor can tell why a command failed.
pub mod exit {
    use jiancha_platform::config::ConfigError;
    use jiancha_platform::kafka::KafkaFailure;
    use jiancha_platform::rules::RulesError;

    /// Anything not below.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (clap's own status).
    pub const USAGE: u8 = 2;
    /// The configuration, the catalog or a calendar is unusable: fix a file.
    pub const CONFIG: u8 = 3;
    /// A dependency is unavailable (the broker, the database, a service, a port): retry
    /// later. Also a clean stop that passed `shutdown_timeout`.
    pub const UNAVAILABLE: u8 = 4;
    /// A verification failed (`audit verify`): the data is not what it should be.
    pub const VERIFICATION: u8 = 5;

    /// A request that cannot be met as asked (no such report, a missing flag): exit 2.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct UsageError(pub String);

    /// A failed verification, told apart from a failure to verify.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct VerificationFailed(pub String);

    /// The status for an error, from the first cause in its chain that says.
    pub fn of(err: &anyhow::Error) -> u8 {
        use jiancha_accountability::service::ServiceError;
        use jiancha_gateway::GatewayError;
        use jiancha_monitor::monitor::MonitorError;
        for cause in err.chain() {
            if cause.is::<VerificationFailed>() {
                return VERIFICATION;
            }
            if cause.is::<UsageError>() {
                return USAGE;
            }
            if let Some(e) = cause.downcast_ref::<jiancha_accountability::publish::PublishError>() {
                return match e {
                    jiancha_accountability::publish::PublishError::Request(_) => USAGE,
                    jiancha_accountability::publish::PublishError::Audit(_) => VERIFICATION,
                    _ => UNAVAILABLE,
                };
            }
            if cause.is::<jiancha_loadtest::loadtest::scenario::ScenarioError>() {
                return USAGE;
            }
            if cause.is::<ConfigError>() || cause.is::<RulesError>() || cause.is::<jiancha_platform::auth::AuthConfigError>() {
                return CONFIG;
            }
            if cause.is::<crate::telemetry::ProbeFailed>() {
                return UNAVAILABLE;
            }
            if cause.is::<KafkaFailure>() || cause.is::<rdkafka::error::KafkaError>() || cause.is::<tonic::transport::Error>() {
                return UNAVAILABLE;
            }
            if let Some(e) = cause.downcast_ref::<MonitorError>() {
                return match e {
                    MonitorError::Config(_) | MonitorError::Rules(_) => CONFIG,
                    MonitorError::Kafka(_) => UNAVAILABLE,
                    _ => FAILURE,
                };
            }
            if let Some(e) = cause.downcast_ref::<GatewayError>() {
                return match e {
                    GatewayError::Config(_) | GatewayError::Rules(_) => CONFIG,
                    GatewayError::Kafka(_) | GatewayError::Transport(_) => UNAVAILABLE,
                };
            }
            if let Some(e) = cause.downcast_ref::<ServiceError>() {
                return match e {
                    ServiceError::Config(_) => CONFIG,
                    _ => UNAVAILABLE,
                };
            }
            if let Some(e) = cause.downcast_ref::<jiancha_console::ConsoleError>() {
                return match e {
                    jiancha_console::ConsoleError::Config(_) => CONFIG,
                    jiancha_console::ConsoleError::Bind { .. } => UNAVAILABLE,
                };
            }
            if cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                return CONFIG;
            }
        }
        FAILURE
    }
}
