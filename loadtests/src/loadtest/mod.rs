//! `jiancha loadtest`: what one node or a group of monitors holds, measured the way an
//! operator needs it before a rollout — an open-loop stream at a target rate, the
//! monitors' consume rate next to a plain consumer's on the same broker, event → alert
//! latency and timer lateness from HDR histograms, memory and CPU, and the live alerts
//! checked against `replay` of the very records the monitors read. docs/benchmarks.md.

pub mod infra;
pub mod measure;
pub mod report;
pub mod scenario;
pub mod stream;

use anyhow::{Context, Result, bail};
use infra::{Broker, MonitorProcess};
use jiancha_platform::Config;
use jiancha_platform::rules::load_rules;
use measure::{OffsetWatch, Second, Shared};
use scenario::{Profile, Scenario, ScenarioError};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use stream::{Planned, StreamSpec};

/// Where the broker comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// librdkafka's mock cluster inside this process: nothing to install.
    Embedded,
    /// A Tansu broker started for the run (`--tansu`, `JIANCHA_TANSU` or ~/.cache/jiancha/tansu).
    Tansu,
    /// Any Kafka at `--kafka-bootstrap`, with the `[kafka]` settings of `--config`.
    Kafka,
}

/// How events enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ingest {
    /// Straight to the event topic, as a department system with a Kafka client would.
    Kafka,
    /// Through the gRPC gateway (unary Submit over TLS with each department's token),
    /// run in this process.
    Grpc,
}

/// The command line of `jiancha loadtest`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha loadtest --rate 2000 --duration 30s --out results/
  jiancha loadtest --scenario loadtests/scenarios/workday.toml --out results/workday
  jiancha loadtest --broker tansu --monitors 2 --rate 5000 --duration 1m --out results/tansu
  jiancha loadtest --find-max --rate 5000 --out results/max
  jiancha loadtest --kafka-bootstrap kafka:9092 --config /etc/jiancha/jiancha.toml --monitors 0 \\
      --monitor-pid $(pidof jiancha) --rate 500 --duration 5m --out results/prod

Writes result.json (the OpenMessaging Benchmark result fields plus `jiancha`), report.md
and plots (rates.svg, latency.svg, latency-cdf.svg) into --out. Exit 0 when the run
completed and the live alerts equal replay's (or the check could not be made: see
report.md), 5 when they differ. docs/benchmarks.md explains every figure.")]
pub struct LoadtestArgs {
    /// The scenario (TOML, see loadtests/scenarios/); the flags below override it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Events a second (the peak of a workday profile; the first step of --find-max).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to send ("30s", "5m").
    #[arg(long)]
    pub duration: Option<String>,
    /// How many events to send (instead of, or as well as, --duration).
    #[arg(long)]
    pub events: Option<u64>,
    /// The arrival profile.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// The stream's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Items whose deadline falls inside the run (timer lateness); 0 for none.
    #[arg(long)]
    pub probes: Option<usize>,
    /// The output folder (made if absent).
    #[arg(long, default_value = "loadtest-results")]
    pub out: PathBuf,
    /// The broker.
    #[arg(long, value_enum, default_value = "embedded")]
    pub broker: BrokerKind,
    /// A running Kafka (implies --broker kafka).
    #[arg(long)]
    pub kafka_bootstrap: Option<String>,
    /// A configuration file: its `[kafka]` settings (TLS, SASL) for every client; with
    /// --monitors 0 also the running monitors' topics and group.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The Tansu binary.
    #[arg(long)]
    pub tansu: Option<PathBuf>,
    /// How events enter.
    #[arg(long, value_enum, default_value = "kafka")]
    pub ingest: Ingest,
    /// Monitor processes to start in one consumer group; 0 measures monitors already running.
    #[arg(long, default_value_t = 1)]
    pub monitors: usize,
    /// With --monitors 0: the running monitors' process ids, for their memory and CPU.
    #[arg(long)]
    pub monitor_pid: Vec<u32>,
    /// Partitions of the topics (when the load test makes them).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Raise the rate in steps until the monitors fall behind or p99 passes --max-p99.
    #[arg(long)]
    pub find_max: bool,
    /// Write the whole stream while the monitors are paused (SIGSTOP), then resume them
    /// (SIGCONT) and time how fast they drain it: the monitors' capacity measured the way
    /// the plain consumer's rate is, over a backlog, with nothing else on the machine.
    /// Write it within the group's session timeout (10 s): `--rate` high enough.
    #[arg(long, conflicts_with = "find_max")]
    pub backlog: bool,
    /// --find-max: how long each step sends.
    #[arg(long, default_value = "20s")]
    pub step_duration: String,
    /// --find-max: each step's rate is the last one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// --find-max: a step whose event → alert p99 passes this fails ("1s").
    #[arg(long, default_value = "1s")]
    pub max_p99: String,
    /// How long to wait for the monitors to catch up after sending.
    #[arg(long, default_value = "180s")]
    pub drain_timeout: String,
    /// No progress bar (a line every 5 s instead).
    #[arg(long)]
    pub no_progress: bool,
}

/// The live alerts differed from the replay's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Incorrect(pub String);

fn wall_ms() -> i64 {
    jiancha_platform::wall_clock().0
}

fn duration_arg(name: &str, text: &str) -> Result<Duration> {
    jiancha_core::time::parse_duration_ms(text).filter(|ms| *ms > 0).map(|ms| Duration::from_millis(ms as u64)).ok_or_else(|| {
        ScenarioError { file: "the command line".into(), message: format!("--{name} `{text}` is not a duration such as 30s") }.into()
    })
}

/// The instant `ms` (wall clock) as an `Instant`.
fn instant_of(ms: i64) -> Instant {
    let now = Instant::now();
    let delta = ms - wall_ms();
    if delta >= 0 {
        now + Duration::from_millis(delta as u64)
    } else {
        now.checked_sub(Duration::from_millis((-delta) as u64)).unwrap_or(now)
    }
}

/// What a run sets up once.
struct Rig {
    config: Config,
    broker: Broker,
    monitors: Vec<MonitorProcess>,
    pids: Vec<u32>,
    catalog: Arc<jiancha_core::Catalog>,
    rules_files: (Option<PathBuf>, Vec<PathBuf>),
    departments: Vec<String>,
    tag: String,
    gateway: Option<GrpcIngest>,
    /// The wall-clock instant the schedule starts, ms.
    start_ms: i64,
    /// The probes' deadline, ms.
    due: Option<i64>,
}

/// Runs the load test; the outcome is also written to `--out`.
pub fn run(args: LoadtestArgs, exe: &Path) -> Result<report::Outcome> {
    let mut scenario = match &args.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default(),
    };
    if let Some(r) = args.rate {
        scenario.arrival.rate = r;
    }
    if let Some(d) = &args.duration {
        scenario.arrival.duration = Some(d.clone());
    }
    if let Some(n) = args.events {
        scenario.arrival.events = Some(n);
        if args.duration.is_none() && args.scenario.is_none() {
            scenario.arrival.duration = None;
        }
    }
    if let Some(p) = args.profile {
        scenario.arrival.profile = p;
    }
    if let Some(s) = args.seed {
        scenario.seed = s;
    }
    if let Some(n) = args.probes {
        scenario.timers.probes = n;
    }
    scenario.check().map_err(|message| ScenarioError { file: "the command line".into(), message })?;
    if args.backlog {
        if args.monitors == 0 {
            bail!(ScenarioError {
                file: "the command line".into(),
                message: "--backlog pauses the monitors the load test starts: it needs --monitors 1 or more".into()
            });
        }
        // A timer probe measures how late a live stream's deadline is raised; the
        // monitors are paused on purpose here.
        scenario.timers.probes = 0;
    }
    if args.monitors == 0 && args.kafka_bootstrap.is_none() {
        bail!(ScenarioError {
            file: "the command line".into(),
            message: "--monitors 0 measures running monitors: name their broker with --kafka-bootstrap".into()
        });
    }
    let drain_timeout = duration_arg("drain-timeout", &args.drain_timeout)?;
    let max_p99 = duration_arg("max-p99", &args.max_p99)?;
    let step_duration = duration_arg("step-duration", &args.step_duration)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("making {}", args.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let probes = if args.monitors > 0 && !args.find_max { scenario.timers.probes } else { 0 };
    let mut rig = runtime.block_on(set_up(&args, &scenario, probes))?;
    let ticks = infra::clock_ticks();
    let result = drive(&args, &scenario, &mut rig, exe, probes, ticks, drain_timeout, max_p99, step_duration);
    if args.backlog {
        // A run that failed while they were paused leaves them stopped: a stopped
        // process cannot act on the SIGTERM below.
        let _ = signal_monitors(&rig, "-CONT");
    }
    for m in &mut rig.monitors {
        m.stop(Duration::from_secs(20));
    }
    let outcome = result?;
    outcome.write(&args.out)?;
    drop(rig);
    Ok(outcome)
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    while n > 0 {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

async fn set_up(args: &LoadtestArgs, scenario: &Scenario, probes: usize) -> Result<Rig> {
    let tag = base36((wall_ms() / 100) as u64 % 36u64.pow(6));
    let broker = match (&args.kafka_bootstrap, args.broker) {
        (Some(b), _) => Broker::External(b.clone()),
        (None, BrokerKind::Embedded) => Broker::embedded()?,
        (None, BrokerKind::Tansu) => Broker::tansu(&infra::tansu_binary(args.tansu.as_deref()), &args.out.join("broker"))?,
        (None, BrokerKind::Kafka) => {
            bail!(ScenarioError { file: "the command line".into(), message: "--broker kafka needs --kafka-bootstrap".into() })
        }
    };
    let mut config = Config::load(args.config.as_deref())?;
    config.kafka_bootstrap = broker.bootstrap();
    config.metrics_listen = String::new();
    let own = args.monitors > 0;
    if own {
        config.group_id = format!("jiancha-loadtest-{tag}");
        config.partitions = args.partitions;
        if matches!(broker, Broker::External(_)) {
            // Never the production topics: a run's own, named after it.
            let t = &mut config.topics;
            let p = format!("jiancha.loadtest.{tag}.");
            t.events = format!("{p}events");
            t.alerts = format!("{p}alerts");
            t.dead_letter = format!("{p}events.dlq");
            t.alerts_dead_letter = format!("{p}alerts.dlq");
            t.state = format!("{p}state");
            t.department_prefix = format!("{p}dept.");
        }
    }
    // The rules the monitors load: the scenario's catalog, plus the probe service.
    let (base_catalog, _) = load_rules(scenario.catalog.as_ref(), &scenario.calendars)?;
    let departments = jiancha_monitor::monitor::catalog_departments(&base_catalog);
    let first_department = departments.first().cloned().context("the catalog has no services")?;
    let rules_files = if own {
        let text = match &scenario.catalog {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            None => jiancha_platform::rules::DEMO_CATALOG.to_owned(),
        };
        let catalog_file = std::path::absolute(args.out.join("catalog.toml"))?;
        let extra = if probes > 0 { stream::probe_service(&first_department) } else { String::new() };
        std::fs::write(&catalog_file, text + &extra)?;
        let mut calendars: Vec<PathBuf> = scenario.calendars.iter().map(std::path::absolute).collect::<Result<_, _>>()?;
        if probes > 0 {
            calendars.push(std::path::absolute(args.out.join("probe-calendar.toml"))?);
        }
        (Some(catalog_file), calendars)
    } else {
        (scenario.catalog.clone(), scenario.calendars.clone())
    };
    config.catalog = rules_files.0.clone();
    config.calendars = rules_files.1.clone();
    // When the schedule starts: with probes, so that their deadline — on a minute
    // boundary, as office hours have minute precision — falls in the middle of the run.
    let duration_ms =
        if args.find_max { duration_arg("step-duration", &args.step_duration)?.as_millis() as i64 } else { scenario.duration_ms() };
    let prep_ms = 15_000 + 2_000 * args.monitors as i64;
    let now = wall_ms();
    let (start_ms, due) = if probes > 0 {
        let mut m = (now + prep_ms + duration_ms / 2).div_euclid(60_000) * 60_000 + 60_000;
        if m.rem_euclid(86_400_000) == 0 {
            m += 60_000;
        }
        ((now + prep_ms).max(m - duration_ms / 2), Some(m))
    } else {
        (now + prep_ms, None)
    };
    if let Some(d) = due.and_then(chrono::DateTime::from_timestamp_millis) {
        std::fs::write(args.out.join("probe-calendar.toml"), stream::probe_calendar(d))?;
    }
    let topics = config.topics.all(&departments);
    match &broker {
        Broker::Embedded(_) => broker.create_topics(&topics, args.partitions)?,
        _ if own => jiancha_platform::kafka::ensure_topics(&config, &departments).await?,
        _ => {}
    }
    let gateway = match args.ingest {
        Ingest::Kafka => None,
        Ingest::Grpc => Some(GrpcIngest::start(&config, &args.out, &departments).await?),
    };
    println!("broker: {} at {}", broker.describe(), broker.bootstrap());
    Ok(Rig {
        config,
        broker,
        monitors: Vec::new(),
        pids: args.monitor_pid.clone(),
        catalog: base_catalog,
        rules_files,
        departments,
        tag,
        gateway,
        start_ms,
        due,
    })
}

/// Starts the monitors (writing their configuration) once the probe calendar is known.
fn start_monitors(args: &LoadtestArgs, rig: &mut Rig, exe: &Path) -> Result<()> {
    if args.monitors == 0 {
        return Ok(());
    }
    let file = std::path::absolute(args.out.join("monitor.toml"))?;
    let text = toml::to_string(&rig.config).context("writing the monitors' configuration")?;
    std::fs::write(&file, format!("# Written by `jiancha loadtest` for this run's monitors.\n{text}"))?;
    for i in 0..args.monitors {
        let m = MonitorProcess::start(exe, &file, &args.out.join(format!("monitor-{i}.log")), i)?;
        rig.pids.push(m.child.id());
        rig.monitors.push(m);
    }
    Ok(())
}

/// Sends each monitor process a signal (`-STOP`, `-CONT`).
fn signal_monitors(rig: &Rig, signal: &str) -> Result<()> {
    rig.monitors.iter().try_for_each(|m| m.signal(signal))
}

fn check_monitors(rig: &mut Rig) -> Result<()> {
    for m in &mut rig.monitors {
        if let Some(status) = m.exited() {
            bail!("monitor {} exited ({status}) during the run; see its log monitor-{}.log", m.index, m.index);
        }
    }
    Ok(())
}

/// Whether the monitors have committed every record of the event topic, which holds at
/// least `at_least` (a broker slow to report its end offsets must not pass for caught up).
fn all_committed(watch: &OffsetWatch, at_least: i64) -> bool {
    match (watch.committed(), watch.ends()) {
        (Some(c), Some(e)) => e.iter().sum::<i64>() >= at_least && c.iter().zip(&e).all(|(c, e)| c >= e),
        _ => false,
    }
}

/// Records on the event topic by now: the warm-up's and every one the broker acknowledged
/// (less those the gateway refused).
fn on_topic(warm: usize, shared: &Shared) -> i64 {
    (warm as u64 + shared.acked.load(Ordering::Relaxed) - shared.refused_invalid.load(Ordering::Relaxed)) as i64
}

/// Waits until the monitors have committed everything on the event topic.
fn wait_committed(watch: &OffsetWatch, at_least: i64, rig: &mut Rig, timeout: Duration, what: &str) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if all_committed(watch, at_least) {
            return Ok(started.elapsed());
        }
        check_monitors(rig)?;
        if started.elapsed() > timeout {
            bail!("{what}: the monitors had not committed every record after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[allow(clippy::too_many_arguments)]
fn drive(
    args: &LoadtestArgs,
    scenario: &Scenario,
    rig: &mut Rig,
    exe: &Path,
    probes: usize,
    ticks: f64,
    drain_timeout: Duration,
    max_p99: Duration,
    step_duration: Duration,
) -> Result<report::Outcome> {
    let client = jiancha_platform::kafka::client_for(&rig.config.kafka_bootstrap, &rig.config);
    let topic = rig.config.topics.events.clone();
    let own = args.monitors > 0;

    // 1. The schedule and when it starts (set_up chose it).
    let duration_ms = if args.find_max { step_duration.as_millis() as i64 } else { scenario.duration_ms() };
    let (mut start_ms, due) = (rig.start_ms, rig.due);
    let due_utc = due.and_then(chrono::DateTime::from_timestamp_millis);
    // The rules of the check: what the monitors load.
    let (catalog, calendars) = load_rules(rig.rules_files.0.as_ref(), &rig.rules_files.1)?;
    // The stream's items come from the scenario's catalog: none of them is a probe.
    let sim_catalog = std::mem::replace(&mut rig.catalog, catalog.clone());
    let id_suffix = if own { String::new() } else { format!("-{}", rig.tag) };

    // 2. The monitors, and a warm-up that proves every partition is consumed.
    start_monitors(args, rig, exe)?;
    let warm_shared = Arc::new(Shared::new(Instant::now()));
    let producer = measure::producer(client.clone(), warm_shared.clone())?;
    let warm: Vec<Planned> = match due_utc {
        Some(d) => stream::probes(probes, &rig.departments[0], stream::PROBE_SERVICE, d, &rig.tag),
        None => {
            let svc = catalog.services().iter().find(|s| s.cancelled_on.is_none()).context("the catalog has no open service")?;
            let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
            stream::probes((args.partitions.max(1) * 8) as usize, &svc.department, &svc.code, tomorrow, &format!("warm{}", rig.tag))
        }
    };
    measure::send_open_loop(&producer, &topic, &warm, &warm_shared);
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30))?;
    let watch = OffsetWatch::new(client.clone(), &rig.config.group_id, &topic)?;
    let warm_took = wait_committed(&watch, warm.len() as i64, rig, Duration::from_secs(180), "warm-up")?;
    println!("warm-up: {} records committed by the monitors in {:.1} s", warm.len(), warm_took.as_secs_f64());
    if let Some(d) = due_utc {
        println!("timer probes: {probes} acceptance windows end at {} (UTC)", d.format("%H:%M:%S"));
    }

    // 3. The stream of the first part.
    let stream_of = |rate: Option<f64>, part: u32, start: i64| {
        let mut s = scenario.clone();
        if let Some(r) = rate {
            s.arrival.profile = Profile::Constant;
            s.arrival.rate = r;
            s.arrival.duration = Some(format!("{}ms", step_duration.as_millis()));
            s.arrival.events = None;
        }
        let schedule = s.schedule();
        stream::build(
            &sim_catalog,
            &calendars,
            &StreamSpec { scenario: &s, schedule: &schedule, start_ms: start, part, id_suffix: &id_suffix },
        )
    };
    let first_rate = args.find_max.then_some(scenario.arrival.rate);
    let building = Instant::now();
    let mut first = stream_of(first_rate, 0, start_ms);
    // How long building a step's stream took: the next step (more records) starts only
    // once its stream is built, or its first records would leave late, in a burst, and
    // count the generator's delay as the system's latency.
    let mut build_ms = building.elapsed().as_millis() as f64;
    // The same for the first: a large stream on a slow machine can take longer to build
    // than the set-up allowed, and would then leave in one burst. Without probes nothing
    // ties the start to the clock, so the stream is built again to start later.
    if due.is_none() && wall_ms() > start_ms - 500 {
        let late = wall_ms() - start_ms;
        start_ms = wall_ms() + 1000 + (build_ms * 1.5) as i64;
        println!(
            "the stream took {build_ms:.0} ms to build, {} ms past its start: built again to start {:.1} s from now",
            late.max(0),
            (start_ms - wall_ms()) as f64 / 1000.0
        );
        let building = Instant::now();
        first = stream_of(first_rate, 0, start_ms);
        build_ms = building.elapsed().as_millis() as f64;
    }
    let wait = start_ms - wall_ms();
    if wait > 1000 {
        println!(
            "starting in {:.0} s{}",
            wait as f64 / 1000.0,
            if due.is_some() { " (so that the probe deadline falls inside the run)" } else { "" }
        );
    }

    // 4. The readers and the sampler, then the producer.
    let shared = Arc::new(Shared::new(instant_of(start_ms)));
    let producer = Arc::new(measure::producer(client.clone(), shared.clone())?);
    let sent_at: Arc<RwLock<HashMap<String, u64>>> = Arc::new(RwLock::new(first.sent_at.clone()));
    let seconds: Arc<Mutex<Vec<Second>>> = Arc::new(Mutex::new(Vec::new()));
    let alerts_topic = rig.config.topics.alerts.clone();
    let reader = {
        let (client, shared, sent_at) = (client.clone(), shared.clone(), sent_at.clone());
        std::thread::spawn(move || measure::read_alerts(client, &alerts_topic, &sent_at, start_ms, &shared))
    };
    let sampler = {
        let (shared, seconds, pids) = (shared.clone(), seconds.clone(), rig.pids.clone());
        let watch = OffsetWatch::new(client.clone(), &rig.config.group_id, &topic)?;
        std::thread::spawn(move || measure::sample_seconds(&watch, &shared, &pids, ticks, &seconds))
    };
    let mut stream_info = json!({
        "items": first.items, "records": first.records.len(), "invalid": first.invalid, "late_reports": first.late,
        "warm_up_records": warm.len(), "timer_probes": probes,
    });
    let message_size = first.records.iter().map(|r| r.payload.len()).sum::<usize>() / first.records.len().max(1);
    let progress = Progress::new(args.no_progress);
    let mut total_sent = 0u64;
    let mut steps = Vec::new();
    let mut max_sustainable = None;
    let mut produce_end_us;
    // --backlog: when the monitors were resumed, and the records waiting for them then.
    let mut resumed_us = None;
    let mut waiting = None;
    // --backlog: the CPU each side had used when the monitors were resumed, and what each
    // used until they had committed the backlog.
    let mut cpu_at_resume = None;
    let mut drain_cpu = None;
    let mut drained = true;

    // Every record sent, for the replay when the broker no longer holds them all.
    let mut sent_log: Vec<Planned> = warm.clone();
    let mut part = 0u32;
    let mut current = first;
    let mut rate = scenario.arrival.rate;
    loop {
        let records = std::mem::take(&mut current.records);
        let n = records.len() as u64;
        total_sent += n;
        let step_start_us = records.first().map_or(0, |r| r.at_us);
        let step_first_second = seconds.lock().expect("lock").len();
        *shared.latency_window.lock().expect("lock") = measure::histogram();
        let step_latency_from = shared.latency.lock().expect("lock").clone();
        if args.backlog {
            // Paused as the first record is due, not through the wait before it: the
            // group's session timeout (10 s) must not run out while they are stopped.
            let wait = start_ms - wall_ms() - 20;
            if wait > 0 {
                std::thread::sleep(Duration::from_millis(wait as u64));
            }
            signal_monitors(rig, "-STOP")?;
        }
        let sender = {
            let shared = shared.clone();
            let topic = topic.clone();
            let grpc = rig.gateway.as_ref().map(GrpcIngest::handle);
            let producer = producer.clone();
            std::thread::spawn(move || {
                match grpc {
                    Some(g) => g.send_open_loop(&records, &shared),
                    None => measure::send_open_loop(&producer, &topic, &records, &shared),
                }
                records
            })
        };
        while !sender.is_finished() {
            progress.show(&shared, total_sent, &seconds);
            check_monitors(rig)?;
            std::thread::sleep(Duration::from_millis(200));
        }
        sent_log.extend(sender.join().map_err(|_| anyhow::anyhow!("the producer thread panicked"))?);
        // Acknowledged (or refused), then committed by the monitors.
        let started = Instant::now();
        while shared.acked.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < total_sent
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        produce_end_us = shared.now_us();
        if args.backlog {
            // The records the paused monitors had not committed: the whole stream when
            // the pause held.
            waiting = match (watch.ends(), watch.committed()) {
                (Some(e), Some(c)) => Some(e.iter().zip(&c).map(|(e, c)| (e - c).max(0)).sum::<i64>()),
                _ => None,
            };
            resumed_us = Some(shared.now_us());
            cpu_at_resume = Some(measure::CpuSplit::now(&rig.pids, rig.broker.pid(), ticks));
            signal_monitors(rig, "-CONT")?;
        }
        let step_end_second = seconds.lock().expect("lock").len();
        if !args.find_max {
            break;
        }
        // The step's verdict: lag over its second half, and p99.
        let (lag_mid, lag_end) = {
            let s = seconds.lock().expect("lock");
            let own: Vec<i64> = s[step_first_second..step_end_second].iter().map(|x| x.lag).filter(|l| *l >= 0).collect();
            (own.get(own.len() / 2).copied().unwrap_or(0), own.last().copied().unwrap_or(0))
        };
        let step_hist = {
            let mut h = shared.latency.lock().expect("lock").clone();
            let _ = h.subtract(&step_latency_from);
            h
        };
        let p99 = (!step_hist.is_empty()).then(|| step_hist.value_at_quantile(0.99) as f64 / 1000.0);
        let lag_growth = lag_end - lag_mid;
        let tolerated = (rate * 0.5).max(1000.0) as i64;
        let too_slow = lag_growth > tolerated || lag_end > 2 * tolerated;
        let too_late = p99.is_some_and(|p| p > max_p99.as_secs_f64() * 1000.0);
        let verdict = if too_slow {
            "fails: the monitors fell behind"
        } else if too_late {
            "fails: p99 over the bound"
        } else {
            "sustained"
        };
        println!(
            "step {part}: {rate:.0} events/s for {} s — lag {lag_mid} → {lag_end}, p99 {} — {verdict}",
            step_duration.as_secs(),
            p99.map_or("—".into(), |p| format!("{p:.1} ms"))
        );
        steps.push(json!({"rate": rate.round(), "started_s": step_start_us as f64 / 1e6, "lag_growth": lag_growth, "lag_end": lag_end, "p99_ms": p99, "verdict": verdict}));
        if too_slow || too_late || part >= 15 {
            break;
        }
        max_sustainable = Some(rate);
        // Let the monitors settle before the next step.
        if wait_committed(&watch, on_topic(warm.len(), &shared), rig, drain_timeout, "between steps").is_err() {
            drained = false;
            break;
        }
        part += 1;
        rate *= args.step_factor;
        let next_start = wall_ms() + 1000 + (build_ms * args.step_factor * 1.5) as i64;
        let start_offset_ms = next_start - start_ms;
        let building = Instant::now();
        let mut next = stream_of(Some(rate), part, next_start);
        build_ms = building.elapsed().as_millis() as f64;
        if wall_ms() > next_start {
            println!("the step's stream took {} ms longer to build than allowed: its first records leave late", wall_ms() - next_start);
        }
        for r in &mut next.records {
            r.at_us += start_offset_ms as u64 * 1000;
        }
        {
            let mut map = sent_at.write().expect("lock");
            for (id, at) in next.sent_at.drain() {
                map.insert(id, at + start_offset_ms as u64 * 1000);
            }
        }
        stream_info["records"] = json!(stream_info["records"].as_u64().unwrap_or(0) + next.records.len() as u64);
        stream_info["invalid"] = json!(stream_info["invalid"].as_u64().unwrap_or(0) + next.invalid as u64);
        stream_info["items"] = json!(stream_info["items"].as_u64().unwrap_or(0) + next.items as u64);
        current = next;
    }

    // 5. Drain: everything committed, the probes' deadline passed, the alerts read.
    let drain_started = Instant::now();
    let mut consume_end_us = None;
    loop {
        progress.show(&shared, total_sent, &seconds);
        check_monitors(rig)?;
        let committed = all_committed(&watch, on_topic(warm.len(), &shared));
        if committed && consume_end_us.is_none() {
            consume_end_us = Some(shared.now_us());
            drain_cpu = cpu_at_resume.map(|at| measure::CpuSplit::now(&rig.pids, rig.broker.pid(), ticks).since(at));
        }
        let probes_due = due.is_none_or(|d| wall_ms() > d + 3000);
        if committed && probes_due {
            break;
        }
        if drain_started.elapsed() > drain_timeout {
            drained = false;
            break;
        }
        // A backlog's drain is timed to its end: a fifth of a second would be a fifth of
        // a 200 000-record drain.
        std::thread::sleep(Duration::from_millis(if resumed_us.is_some() && consume_end_us.is_none() { 10 } else { 200 }));
    }
    // The alert reader takes what the monitors published before their commits.
    let alerts_end = OffsetWatch::new(client.clone(), "jiancha-loadtest-reader", &rig.config.topics.alerts)?.end().unwrap_or(0);
    let settle = Instant::now();
    while (shared.alerts.load(Ordering::Relaxed) as i64) < alerts_end && settle.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let until = wall_ms();
    shared.stop.store(true, Ordering::Relaxed);
    progress.finish();
    let live = reader.join().map_err(|_| anyhow::anyhow!("the alert reader panicked"))??;
    sampler.join().map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    let seconds = std::mem::take(&mut *seconds.lock().expect("lock"));
    for m in &mut rig.monitors {
        m.stop(Duration::from_secs(20));
    }

    // 6. The plain consumer over the same topic, and the replay of what it read.
    let (held, dropped) = watch.held().unwrap_or((0, -1));
    let (mut stored, raw_rate) = measure::read_all(client.clone(), &topic, held)?;
    println!("plain consumer: {} records at {raw_rate:.0} records/s", stored.len());
    let raw_records = stored.len();
    let complete = dropped == 0;
    let source = if complete {
        "the event topic, read back"
    } else if rig.gateway.is_none() {
        // The broker dropped the oldest (the embedded one keeps a few MB a partition):
        // the records as sent are the same bytes with the same timestamps.
        stored = sent_log
            .iter()
            .enumerate()
            .map(|(i, r)| measure::Stored {
                ts: r.ts_ms,
                partition: 0,
                offset: i as i64,
                content_type: Some(jiancha_platform::codec::JSON.as_bytes().to_vec()),
                payload: r.payload.clone(),
            })
            .collect();
        "the records as sent (the broker no longer held them all)"
    } else {
        ""
    };
    let dead_lettered = OffsetWatch::new(client.clone(), "jiancha-loadtest-reader", &rig.config.topics.dead_letter)?.end().unwrap_or(-1);
    let dropped_unread = shared.dropped_unread.load(Ordering::Relaxed);
    let (check, check_skipped) = if !drained {
        (None, Some("the monitors had not caught up when the drain timeout passed".to_owned()))
    } else if dropped_unread > 0 {
        // The monitors' consumer skips to the broker's start when its position was
        // dropped: what they applied is not the stream a replay would apply.
        (
            None,
            Some(format!(
                "the broker dropped up to {dropped_unread} records (retention; the embedded broker keeps about 5 MB a partition) before the monitors had committed them: they may never have read them, so no replay is the stream they saw"
            )),
        )
    } else if !own {
        (None, Some("the running monitors' earlier state is not known to a replay of this run's records".to_owned()))
    } else if source.is_empty() {
        (
            None,
            Some(format!("the broker no longer held the first {dropped} records the gateway published, whose arrival times only it knew")),
        )
    } else {
        let mut c = measure::check(&mut stored, catalog.clone(), calendars.clone(), until, &live, dead_lettered);
        c.replayed_from = source.to_owned();
        (Some(c), None)
    };
    let latency = shared.latency.lock().expect("lock").clone();
    let lateness = shared.lateness.lock().expect("lock").clone();
    let setup = json!({
        "scenario": args.scenario.as_ref().map_or("(default)".to_owned(), |p| p.display().to_string()),
        "profile": format!("{:?}", scenario.arrival.profile).to_lowercase(),
        "rate": scenario.arrival.rate,
        "duration_s": duration_ms as f64 / 1000.0,
        "seed": scenario.seed,
        "broker": rig.broker.describe(),
        "ingest": format!("{:?}", args.ingest).to_lowercase(),
        "monitors": if own { json!(args.monitors) } else { json!("running (not started by the load test)") },
        "partitions": args.partitions,
        "find_max": args.find_max,
        "backlog": args.backlog,
        "machine": machine(),
        "started": chrono::DateTime::from_timestamp_millis(start_ms).map(|t| t.to_rfc3339()),
    });
    let outcome = report::Outcome {
        setup,
        driver: rig.broker.kind().to_owned(),
        seconds,
        sent: total_sent,
        acked: shared.acked.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        first_error: shared.first_error.lock().expect("lock").clone(),
        produce_s: produce_end_us as f64 / 1e6,
        consume_s: consume_end_us.map_or(0.0, |us| us.saturating_sub(resumed_us.unwrap_or(0)) as f64 / 1e6),
        backlog: resumed_us.map(|_| waiting.unwrap_or(-1)),
        drain_cpu,
        drained,
        producer_behind_ms: shared.behind_us.load(Ordering::Relaxed) as f64 / 1000.0,
        message_size,
        latency,
        lateness,
        timer_alerts: live.timer_alerts,
        event_alerts: live.event_alerts,
        raw_rate,
        raw_records,
        check,
        check_skipped,
        steps,
        max_sustainable,
        monitors: args.monitors,
        partitions: args.partitions,
        stream: {
            let mut info = stream_info;
            if rig.gateway.is_some() {
                info["refused_invalid_by_gateway"] = json!(shared.refused_invalid.load(Ordering::Relaxed));
            }
            info["timer_alerts_by_kind"] = json!(live.timer_kinds);
            info["probe_alerts"] = json!(live.probe_alerts);
            info["slowest_timer_alerts"] = json!(
                live.slowest_timers
                    .iter()
                    .map(|(ms, item, kind, at)| json!({"lateness_ms": ms, "item_id": item, "kind": kind, "deadline": at}))
                    .collect::<Vec<_>>()
            );
            info
        },
    };
    Ok(outcome)
}

/// This machine, for the report.
fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_owned()));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb / 1024 / 1024);
    json!({"cpus": cpus, "cpu_model": model, "memory_gib": mem})
}

/// The live line: a bar on a terminal, a log line every 5 s elsewhere.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Instant>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} sent  {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Progress { bar, last_line: Mutex::new(Instant::now()) }
    }

    fn show(&self, shared: &Shared, total: u64, seconds: &Mutex<Vec<Second>>) {
        if Instant::now() < shared.t0 {
            return;
        }
        let sent = shared.sent.load(Ordering::Relaxed);
        let last = seconds.lock().expect("lock").last().cloned().unwrap_or_default();
        let msg = format!(
            "{} rec/s in, {} rec/s consumed, lag {}, p99 {}",
            last.produced,
            last.consumed,
            last.lag.max(0),
            last.p99_ms.map_or("—".into(), |p| format!("{p:.1} ms"))
        );
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(sent);
                b.set_message(msg);
            }
            None => {
                let mut at = self.last_line.lock().expect("lock");
                if at.elapsed() >= Duration::from_secs(5) {
                    *at = Instant::now();
                    eprintln!("{:>6.1} s  {sent}/{total} sent  {msg}", shared.t0.elapsed().as_secs_f64());
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// The gRPC gateway in this process, and a way to send to it.
struct GrpcIngest {
    handle: GrpcHandle,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// What the sending thread needs: the runtime, a channel per department.
#[derive(Clone)]
struct GrpcHandle {
    runtime: tokio::runtime::Handle,
    clients: Arc<
        HashMap<
            String,
            jiancha_proto::v1::ingest_service_client::IngestServiceClient<
                tonic::service::interceptor::InterceptedService<tonic::transport::Channel, jiancha_platform::auth::Bearer>,
            >,
        >,
    >,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl GrpcIngest {
    async fn start(config: &Config, out: &Path, departments: &[String]) -> Result<GrpcIngest> {
        use jiancha_platform::auth::{Bearer, Role};
        use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
        let refs: Vec<&str> = departments.iter().map(String::as_str).collect();
        let local = jiancha_platform::local::prepare(&std::path::absolute(out.join("gateway"))?, "jiancha", &refs, 24 * 3600)
            .map_err(anyhow::Error::msg)?;
        let mut config = config.clone();
        config.grpc.listen = "127.0.0.1:0".into();
        local.apply(&mut config);
        config.grpc.rate_per_caller = 1e9;
        config.grpc.burst_per_caller = 1e9;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let gateway = jiancha_gateway::start(config, shutdown).await?;
        let ca = std::fs::read(&local.ca_cert)?;
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", gateway.addr.port()))?.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .identity(Identity::from_pem(std::fs::read(&local.client_cert)?, std::fs::read(&local.client_key)?))
                .domain_name("localhost"),
        )?;
        let mut clients = HashMap::new();
        for d in departments {
            let (_, _, f) = local
                .tokens
                .iter()
                .find(|(r, dept, _)| *r == Role::Department && dept.as_deref() == Some(d.as_str()))
                .with_context(|| format!("no token for {d}"))?;
            let token = std::fs::read_to_string(f)?;
            let channel = endpoint.connect().await?;
            clients.insert(
                d.clone(),
                jiancha_proto::v1::ingest_service_client::IngestServiceClient::with_interceptor(channel, Bearer(Some(token))),
            );
        }
        println!("ingest: the gRPC gateway at {} (TLS, one token per department)", gateway.addr);
        Ok(GrpcIngest {
            handle: GrpcHandle {
                runtime: tokio::runtime::Handle::current(),
                clients: Arc::new(clients),
                in_flight: Arc::new(tokio::sync::Semaphore::new(512)),
            },
            _stop: stop,
        })
    }

    fn handle(&self) -> GrpcHandle {
        self.handle.clone()
    }
}

impl GrpcHandle {
    /// Unary Submit per record at its instant (at most 512 in flight: a send that waits
    /// for a slot is late, and its latency counts from its instant). A record that does
    /// not parse goes as an event without its occurrence, which the gateway must refuse.
    fn send_open_loop(&self, records: &[Planned], shared: &Arc<Shared>) {
        for r in records {
            shared.wait_until(r.at_us);
            let event = match jiancha_core::parse_json_event(&r.payload) {
                Ok(j) => jiancha_proto::v1::Event::from(&j.event),
                Err(_) => jiancha_proto::v1::Event {
                    event_id: format!("{}-bad", r.key),
                    item_id: r.key.clone(),
                    department_code: r.department.clone(),
                    ..Default::default()
                },
            };
            let Some(client) = self.clients.get(&r.department).cloned() else {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Ok(permit) = self.runtime.block_on(self.in_flight.clone().acquire_owned()) else { break };
            let shared2 = shared.clone();
            let invalid = r.invalid;
            self.runtime.spawn(async move {
                let mut client = client;
                let answer = client.submit(jiancha_proto::v1::SubmitRequest { event: Some(event) }).await;
                match answer {
                    Ok(_) => {
                        shared2.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    // An invalid record refused with INVALID_ARGUMENT is the gateway doing its job.
                    Err(s) if invalid && s.code() == tonic::Code::InvalidArgument => {
                        shared2.acked.fetch_add(1, Ordering::Relaxed);
                        shared2.refused_invalid.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => {
                        shared2.failed.fetch_add(1, Ordering::Relaxed);
                        let mut first = shared2.first_error.lock().expect("lock");
                        first.get_or_insert_with(|| format!("{}: {}", s.code(), s.message()));
                    }
                }
                drop(permit);
            });
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
