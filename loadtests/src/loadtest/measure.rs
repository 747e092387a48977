//! The measuring parts of a run: the open-loop producer, the alert reader (latency,
//! timer lateness, final alert states), the per-second sampler (rates, lag, memory,
//! CPU), the plain consumer (raw rate) and the replay check.

use super::infra::{ProcSample, sample};
use super::stream::Planned;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use jiancha_platform::codec;
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Microseconds, 1 µs to 1 hour, three significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// Counters shared by the run's threads.
#[derive(Debug)]
pub struct Shared {
    /// The instant the schedule counts from.
    pub t0: Instant,
    /// Records handed to the producer.
    pub sent: AtomicU64,
    /// Records the broker acknowledged.
    pub acked: AtomicU64,
    /// Records the broker refused.
    pub failed: AtomicU64,
    /// The first refusal.
    pub first_error: Mutex<Option<String>>,
    /// Invalid records the gRPC gateway refused (INVALID_ARGUMENT), as it must.
    pub refused_invalid: AtomicU64,
    /// How far behind its schedule the producer has been at worst, µs.
    pub behind_us: AtomicU64,
    /// Alert updates read.
    pub alerts: AtomicU64,
    /// Event → alert latency since the start, µs.
    pub latency: Mutex<Histogram<u64>>,
    /// The same, since the sampler last took it.
    pub latency_window: Mutex<Histogram<u64>>,
    /// Timer lateness (publication − deadline), µs, for deadlines inside the run.
    pub lateness: Mutex<Histogram<u64>>,
    /// The most records, at any sample, that the broker had dropped from the start of
    /// the event topic (retention) before the monitors had committed them: they may never
    /// have read them.
    pub dropped_unread: AtomicU64,
    /// Stop the readers.
    pub stop: AtomicBool,
}

impl Shared {
    /// New counters for a run whose schedule starts at `t0`.
    pub fn new(t0: Instant) -> Shared {
        Shared {
            t0,
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            refused_invalid: AtomicU64::new(0),
            behind_us: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            latency_window: Mutex::new(histogram()),
            dropped_unread: AtomicU64::new(0),
            lateness: Mutex::new(histogram()),
            stop: AtomicBool::new(false),
        }
    }

    /// Microseconds since `t0` (0 before it).
    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Waits for the instant `due` (µs since `t0`) of an open-loop send, sleeping, and
    /// records how late the send leaves. It never spins: a sleep overshoots by some tens
    /// of microseconds, and the records due meanwhile go out at once on waking (their
    /// latency is counted from their scheduled instants all the same), so the generator
    /// leaves the cores to the system under test instead of burning one in
    /// `sched_yield` at high rates.
    pub fn wait_until(&self, due: u64) {
        loop {
            let now = self.now_us();
            if now >= due {
                self.behind_us.fetch_max(now - due, Ordering::Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_micros(due - now));
        }
    }
}

/// Counts the broker's acknowledgements.
#[derive(Debug)]
pub struct Acks(pub Arc<Shared>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_error.lock().expect("lock");
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// The producer of a run (idempotent, acks=all, as department systems should write).
pub fn producer(client: ClientConfig, shared: Arc<Shared>) -> Result<ThreadedProducer<Acks>> {
    let mut c = client;
    c.set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    c.create_with_context(Acks(shared)).context("creating the load producer")
}

/// Sends `records` at their instants (open loop: a late send is not rescheduled, and
/// latency counts from the instant it was due). Blocks until the last is handed over.
pub fn send_open_loop(producer: &ThreadedProducer<Acks>, topic: &str, records: &[Planned], shared: &Shared) {
    for r in records {
        shared.wait_until(r.at_us);
        let headers = OwnedHeaders::new().insert(Header { key: codec::CONTENT_TYPE, value: Some(codec::JSON) });
        let mut record = BaseRecord::to(topic).key(r.key.as_str()).payload(r.payload.as_slice()).timestamp(r.ts_ms).headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    record = back;
                    if !matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull)) {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        let mut first = shared.first_error.lock().expect("lock");
                        first.get_or_insert_with(|| e.to_string());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// The last update of each alert as read from the alert topic, encoded, with what the
/// run needs to know of it.
#[derive(Debug, Default)]
pub struct AlertLog {
    /// alert_id → the last update's bytes.
    pub last: HashMap<String, Vec<u8>>,
    /// Updates read.
    pub updates: u64,
    /// Alerts whose first update had a triggering event sent by this run (latency samples).
    pub event_alerts: u64,
    /// Timer alerts whose deadline fell inside the run.
    pub timer_alerts: u64,
    /// Their kinds.
    pub timer_kinds: std::collections::BTreeMap<String, u64>,
    /// Those of the probe items.
    pub probe_alerts: u64,
    /// The latest few (lateness ms, item, kind, deadline), to look into.
    pub slowest_timers: Vec<(i64, String, String, String)>,
}

/// Reads the alert topic from its beginning until told to stop, timing each alert's
/// first update against its event's send instant, and each timer alert's publication
/// against its deadline.
pub fn read_alerts(
    client: ClientConfig,
    topic: &str,
    sent_at: &std::sync::RwLock<HashMap<String, u64>>,
    run_start_ms: i64,
    shared: &Shared,
) -> Result<AlertLog> {
    let consumer: BaseConsumer = client_consumer(client)?;
    assign_from_beginning(&consumer, topic)?;
    let mut log = AlertLog::default();
    let mut first_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            continue;
        };
        let Ok(msg) = msg else { continue };
        let receipt = shared.now_us();
        let Some(bytes) = msg.payload() else { continue };
        let Ok(alert) = jiancha_proto::v1::Alert::decode(bytes) else { continue };
        log.updates += 1;
        shared.alerts.fetch_add(1, Ordering::Relaxed);
        if alert.status == jiancha_proto::v1::AlertStatus::Fired as i32 && first_seen.insert(alert.alert_id.clone()) {
            // A deadline's alert (CALENDAR_MISSING has no deadline: it says a year's notice is missing).
            let timer =
                jiancha_proto::alert_kind(alert.kind).is_some_and(|k| k.is_timer() && k != jiancha_core::AlertKind::CalendarMissing);
            let sent = alert.event_id.as_deref().and_then(|id| sent_at.read().expect("lock").get(id).copied());
            if let Some(at) = sent {
                let us = receipt.saturating_sub(at).max(1);
                let _ = shared.latency.lock().expect("lock").record(us);
                let _ = shared.latency_window.lock().expect("lock").record(us);
                log.event_alerts += 1;
            } else if timer {
                let deadline = jiancha_core::Timestamp::parse_rfc3339(&alert.triggered_at).map(|t| t.0).unwrap_or(i64::MIN);
                let published = msg.timestamp().to_millis();
                if let Some(published) = published.filter(|_| deadline >= run_start_ms) {
                    let us = ((published - deadline).max(0) as u64 * 1000).max(1);
                    let _ = shared.lateness.lock().expect("lock").record(us);
                    log.timer_alerts += 1;
                    let kind = jiancha_proto::alert_kind(alert.kind).map_or("?", |k| k.as_str());
                    *log.timer_kinds.entry(kind.to_owned()).or_default() += 1;
                    if alert.item_id.as_deref().is_some_and(|i| i.starts_with(super::stream::PROBE_PREFIX)) {
                        log.probe_alerts += 1;
                    }
                    let late_ms = published - deadline;
                    if log.slowest_timers.len() < 5 || log.slowest_timers.last().is_some_and(|l| l.0 < late_ms) {
                        log.slowest_timers.push((
                            late_ms,
                            alert.item_id.clone().unwrap_or_default(),
                            kind.to_owned(),
                            alert.triggered_at.clone(),
                        ));
                        log.slowest_timers.sort_by_key(|t| std::cmp::Reverse(t.0));
                        log.slowest_timers.truncate(5);
                    }
                }
            }
        }
        log.last.insert(alert.alert_id.clone(), bytes.to_vec());
    }
    Ok(log)
}

fn client_consumer(client: ClientConfig) -> Result<BaseConsumer> {
    let mut c = client;
    // Short fetch waits: the reader's own delay stays out of the latency it measures.
    c.set("group.id", "jiancha-loadtest-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10");
    c.create().context("creating a reader")
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).with_context(|| format!("metadata of {topic}"))?;
    Ok(md.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default())
}

fn assign_from_beginning(consumer: &BaseConsumer, topic: &str) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions_of(consumer, topic)? {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).with_context(|| format!("reading {topic}"))?;
    Ok(())
}

/// Reads a group's committed offsets and the topic's end offsets.
pub struct OffsetWatch {
    group: BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
}

impl std::fmt::Debug for OffsetWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetWatch").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl OffsetWatch {
    /// Watches `group` on `topic`.
    pub fn new(client: ClientConfig, group: &str, topic: &str) -> Result<OffsetWatch> {
        let mut c = client;
        c.set("group.id", group).set("enable.auto.commit", "false");
        let group: BaseConsumer = c.create().context("creating the offset watcher")?;
        let partitions = partitions_of(&group, topic)?;
        Ok(OffsetWatch { group, topic: topic.to_owned(), partitions })
    }

    /// Each partition's start and end offsets (None when the broker did not answer in time).
    pub fn watermarks(&self) -> Option<Vec<(i64, i64)>> {
        self.partitions.iter().map(|&p| self.group.fetch_watermarks(&self.topic, p, Duration::from_secs(5)).ok()).collect()
    }

    /// The sum of the end offsets.
    pub fn end(&self) -> Option<i64> {
        Some(self.watermarks()?.iter().map(|w| w.1).sum())
    }

    /// The end offset of each partition.
    pub fn ends(&self) -> Option<Vec<i64>> {
        Some(self.watermarks()?.into_iter().map(|w| w.1).collect())
    }

    /// The committed offsets per partition (0 where nothing is committed yet).
    pub fn committed(&self) -> Option<Vec<i64>> {
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let c = self.group.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
        Some(c.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).collect())
    }

    /// The records the topic still holds (end − start, summed), and how many it has
    /// dropped from its start (retention; the embedded broker keeps a few MB a partition).
    pub fn held(&self) -> Option<(i64, i64)> {
        let marks = self.watermarks()?;
        Some((marks.iter().map(|(low, high)| high - low).sum(), marks.iter().map(|w| w.0).sum()))
    }
}

/// Records the broker has dropped from the start of a topic (retention) that the group
/// had not committed: each partition's start offset past its committed one, summed.
fn dropped_uncommitted(marks: &[(i64, i64)], committed: &[i64]) -> u64 {
    marks.iter().zip(committed).map(|((low, _), c)| (low - c).max(0) as u64).sum()
}

/// One second of a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Second {
    /// Seconds since the schedule's start.
    pub t: f64,
    /// Records acknowledged by the broker in this second.
    pub produced: u64,
    /// Records the monitors committed in this second (processed, effects acknowledged).
    pub consumed: i64,
    /// Records not yet committed by the monitors.
    pub lag: i64,
    /// Alert updates read in this second.
    pub alerts: u64,
    /// Event → alert latency of the alerts read in this second, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Maximum, ms.
    pub max_ms: Option<f64>,
    /// The monitors' resident memory, summed, bytes.
    pub monitor_rss: u64,
    /// The monitors' CPU in this second, cores.
    pub monitor_cpu: f64,
}

/// The CPU each side of a run has used, seconds: taken when `--backlog`'s monitors are
/// resumed and when they have committed the backlog, the difference is the drain's.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CpuSplit {
    /// The monitors.
    pub monitors_s: f64,
    /// This process: the embedded broker when there is one, the alert reader, the sampler.
    pub load_test_s: f64,
    /// A broker the run started as a process of its own (Tansu).
    pub broker_s: Option<f64>,
}

impl CpuSplit {
    /// What each side has used so far.
    pub fn now(monitors: &[u32], broker: Option<u32>, ticks: f64) -> CpuSplit {
        CpuSplit {
            monitors_s: super::infra::cpu_of(monitors, ticks),
            load_test_s: super::infra::cpu_of(&[std::process::id()], ticks),
            broker_s: broker.map(|b| super::infra::cpu_of(&[b], ticks)),
        }
    }

    /// What each side used since `then`.
    pub fn since(self, then: CpuSplit) -> CpuSplit {
        CpuSplit {
            monitors_s: self.monitors_s - then.monitors_s,
            load_test_s: self.load_test_s - then.load_test_s,
            broker_s: self.broker_s.zip(then.broker_s).map(|(now, then)| now - then),
        }
    }
}

/// Samples every second until told to stop; returns the seconds.
pub fn sample_seconds(watch: &OffsetWatch, shared: &Shared, pids: &[u32], ticks: f64, out: &Mutex<Vec<Second>>) {
    // Seconds count from the schedule's start.
    while Instant::now() < shared.t0 && !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing is scheduled before t0: every acknowledgement of the run falls in a second.
    let mut last_acked = 0;
    let mut last_alerts = shared.alerts.load(Ordering::Relaxed);
    let mut last_committed: Option<i64> = watch.committed().map(|c| c.iter().sum());
    let mut last_cpu: HashMap<u32, f64> = pids.iter().filter_map(|&p| sample(p, ticks).map(|s| (p, s.cpu_s))).collect();
    let mut next = shared.t0.max(Instant::now()) + Duration::from_secs(1);
    loop {
        // The last sample is taken when told to stop (a part of a second).
        let stopping = shared.stop.load(Ordering::Relaxed);
        let now = Instant::now();
        if now < next && !stopping {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next += Duration::from_secs(1);
        let acked = shared.acked.load(Ordering::Relaxed);
        let alerts = shared.alerts.load(Ordering::Relaxed);
        // One fetch of each: the committed offsets and the watermarks serve the rate, the
        // lag and the records dropped unread alike.
        let (committed_each, marks) = (watch.committed(), watch.watermarks());
        if let (Some(c), Some(w)) = (&committed_each, &marks) {
            shared.dropped_unread.fetch_max(dropped_uncommitted(w, c), Ordering::Relaxed);
        }
        let committed: Option<i64> = committed_each.map(|c| c.iter().sum());
        let end: Option<i64> = marks.map(|w| w.iter().map(|w| w.1).sum());
        let window = std::mem::replace(&mut *shared.latency_window.lock().expect("lock"), histogram());
        let ms = |q: f64| (!window.is_empty()).then(|| window.value_at_quantile(q) as f64 / 1000.0);
        let (mut rss, mut cpu) = (0, 0.0);
        for &pid in pids {
            if let Some(ProcSample { rss: r, cpu_s }) = sample(pid, ticks) {
                rss += r;
                if let Some(prev) = last_cpu.insert(pid, cpu_s) {
                    cpu += cpu_s - prev;
                }
            }
        }
        let consumed = match (committed, last_committed) {
            (Some(c), Some(l)) => (c - l).max(0),
            _ => 0,
        };
        if committed.is_some() {
            last_committed = committed;
        }
        let second = Second {
            t: (shared.t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            produced: acked - last_acked,
            consumed,
            lag: match (end, last_committed) {
                (Some(e), Some(c)) => (e - c).max(0),
                _ => -1,
            },
            alerts: alerts - last_alerts,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: (!window.is_empty()).then(|| window.max() as f64 / 1000.0),
            monitor_rss: rss,
            monitor_cpu: cpu,
        };
        last_acked = acked;
        last_alerts = alerts;
        out.lock().expect("lock").push(second);
        if stopping {
            break;
        }
    }
}

/// One record of the event topic as the monitors read it.
#[derive(Debug)]
pub struct Stored {
    /// Record timestamp (the arrival).
    pub ts: i64,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Content type header.
    pub content_type: Option<Vec<u8>>,
    /// The value.
    pub payload: Vec<u8>,
}

/// A plain consumer over the whole topic: its rate is what the broker delivers. Keeps
/// the records for the replay check.
pub fn read_all(client: ClientConfig, topic: &str, expected: i64) -> Result<(Vec<Stored>, f64)> {
    let mut c = client;
    c.set("group.id", format!("jiancha-loadtest-raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Tansu answered nothing for a partition whose next batch was larger than the
        // fetch's limit (after a find-max step that overloaded it, the producer's batches
        // grow): with librdkafka's 1 MiB the reader stopped at 6 261 of 24 407 records, in
        // two runs out of two; with these it read them all.
        .set("max.partition.fetch.bytes", "16777216")
        .set("fetch.max.bytes", "67108864")
        // As the monitor does: with librdkafka's 1 s the reader, having filled its 64 MB
        // queue, waited up to a second before fetching again, and its rate over a
        // 200 000-record topic came out anywhere from 170 000 to 900 000 records/s.
        .set("fetch.queue.backoff.ms", jiancha_platform::kafka::FETCH_QUEUE_BACKOFF_MS);
    let consumer: BaseConsumer = c.create().context("creating the plain consumer")?;
    assign_from_beginning(&consumer, topic)?;
    let mut out = Vec::with_capacity(expected.max(0) as usize);
    // Timed from the first record: joining and the first fetch are not the rate.
    let mut started: Option<Instant> = None;
    let mut idle = Instant::now();
    while (out.len() as i64) < expected {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = Instant::now();
                started.get_or_insert(idle);
                let content_type = m.headers().and_then(|h| {
                    use rdkafka::message::Headers as _;
                    h.iter().find(|h| h.key == codec::CONTENT_TYPE).and_then(|h| h.value.map(<[u8]>::to_vec))
                });
                out.push(Stored {
                    ts: m.timestamp().to_millis().unwrap_or(0),
                    partition: m.partition(),
                    offset: m.offset(),
                    content_type,
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
            Some(Err(e)) => tracing::warn!(error = %e, "plain consumer"),
            None if idle.elapsed() > Duration::from_secs(30) => {
                anyhow::bail!("the plain consumer read {} of {expected} records and then nothing for 30 s", out.len())
            }
            None => {}
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let rate = if secs > 0.0 { out.len().saturating_sub(1) as f64 / secs } else { 0.0 };
    Ok((out, rate))
}

/// The live alerts against `replay` of the same records.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Check {
    /// Alerts standing in the replay.
    pub expected: usize,
    /// Alerts standing on the alert topic.
    pub live: usize,
    /// Standing in the replay, not live.
    pub missing: usize,
    /// Standing live, not in the replay.
    pub extra: usize,
    /// Standing in both with a different last update (level, instant, texts).
    pub differing: usize,
    /// A few ids of each, to look into.
    pub examples: Vec<String>,
    /// Records the replay found invalid.
    pub invalid_in_replay: usize,
    /// Records on the dead-letter topic.
    pub dead_lettered: i64,
    /// What was replayed.
    pub replayed_from: String,
}

/// Replays the stored records in arrival order (the record timestamps, as the monitors
/// take them) up to `until`, and compares the standing alerts with the live ones.
pub fn check(
    stored: &mut [Stored],
    catalog: Arc<jiancha_core::Catalog>,
    calendars: jiancha_core::Calendars,
    until: i64,
    live: &AlertLog,
    dead_lettered: i64,
) -> Check {
    stored.sort_by_key(|s| (s.ts, s.partition, s.offset));
    let mut replay = jiancha_core::Replay::new(jiancha_core::Engine::new(catalog, calendars));
    let mut last: HashMap<String, jiancha_core::Alert> = HashMap::new();
    let mut sink = |a: jiancha_core::Alert| {
        last.insert(a.alert_id.clone(), a);
    };
    let mut invalid = 0;
    for s in stored.iter() {
        match codec::decode(s.content_type.as_deref(), Some(&s.payload), usize::MAX) {
            Ok(event) => {
                replay.arrive(&event, jiancha_core::Timestamp(s.ts), &mut sink);
            }
            Err(_) => invalid += 1,
        }
    }
    replay.finish(Some(jiancha_core::Timestamp(until)), &mut sink);
    let standing = |bytes: &Vec<u8>| {
        jiancha_proto::v1::Alert::decode(bytes.as_slice()).is_ok_and(|a| a.status == jiancha_proto::v1::AlertStatus::Fired as i32)
    };
    let expected: HashMap<&String, Vec<u8>> = last
        .iter()
        .filter(|(_, a)| a.status == jiancha_core::AlertStatus::Fired)
        .map(|(id, a)| (id, jiancha_proto::v1::Alert::from(a).encode_to_vec()))
        .collect();
    let live_standing: HashMap<&String, &Vec<u8>> = live.last.iter().filter(|(_, b)| standing(b)).collect();
    let mut c =
        Check { expected: expected.len(), live: live_standing.len(), invalid_in_replay: invalid, dead_lettered, ..Check::default() };
    for (id, bytes) in &expected {
        match live_standing.get(id) {
            None => {
                c.missing += 1;
                if c.examples.len() < 10 {
                    c.examples.push(format!("missing {id}"));
                }
            }
            Some(l) if *l != bytes => {
                c.differing += 1;
                if c.examples.len() < 10 {
                    c.examples.push(format!("differing {id}"));
                }
            }
            Some(_) => {}
        }
    }
    for id in live_standing.keys() {
        if !expected.contains_key(id) {
            c.extra += 1;
            if c.examples.len() < 10 {
                c.examples.push(format!("extra {id}"));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::stream;
    use chrono::TimeZone;

    #[test]
    fn a_drain_s_cpu_is_each_side_s_difference_and_a_broker_counts_only_when_sampled_both_times() {
        let then = CpuSplit { monitors_s: 1.0, load_test_s: 2.0, broker_s: Some(0.5) };
        let now = CpuSplit { monitors_s: 1.75, load_test_s: 2.25, broker_s: Some(1.5) };
        assert_eq!(now.since(then), CpuSplit { monitors_s: 0.75, load_test_s: 0.25, broker_s: Some(1.0) });
        assert_eq!(CpuSplit { broker_s: None, ..now }.since(then).broker_s, None);
        // This process is sampled as the load test's side.
        let here = CpuSplit::now(&[], None, crate::loadtest::infra::clock_ticks());
        assert_eq!(here.monitors_s, 0.0);
        assert!(here.load_test_s >= 0.0 && here.broker_s.is_none());
    }

    #[test]
    fn records_dropped_unread_are_those_before_a_start_past_the_committed_offset() {
        // Partition 0 dropped 10 unread, 1 dropped only what was committed, 2 nothing.
        assert_eq!(dropped_uncommitted(&[(110, 500), (40, 500), (0, 0)], &[100, 60, 0]), 10);
        assert_eq!(dropped_uncommitted(&[(0, 5)], &[5]), 0);
    }

    /// Three probe items due at `due`, as stored records, and the rules that know the probe service.
    fn probe_run() -> (Vec<Stored>, Arc<jiancha_core::Catalog>, jiancha_core::Calendars, i64) {
        let due = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 16, 37, 0).single().expect("instant");
        let mut calendars = jiancha_core::Calendars::builtin();
        calendars.insert(jiancha_core::calendar::Calendar::from_toml(&stream::probe_calendar(due)).expect("calendar"));
        let text = jiancha_platform::rules::DEMO_CATALOG.to_owned() + &stream::probe_service("SCJG");
        let catalog = Arc::new(jiancha_core::Catalog::from_toml(&text, &calendars).expect("catalog"));
        let stored = stream::probes(3, "SCJG", stream::PROBE_SERVICE, due, "t")
            .into_iter()
            .enumerate()
            .map(|(i, p)| Stored { ts: p.ts_ms, partition: 0, offset: i as i64, content_type: None, payload: p.payload })
            .collect();
        (stored, catalog, calendars, due.timestamp_millis() + 1000)
    }

    /// The replay's own alerts, as the alert topic would carry them.
    fn replayed(stored: &[Stored], catalog: Arc<jiancha_core::Catalog>, calendars: jiancha_core::Calendars, until: i64) -> AlertLog {
        let mut replay = jiancha_core::Replay::new(jiancha_core::Engine::new(catalog, calendars));
        let mut log = AlertLog::default();
        let mut sink = |a: jiancha_core::Alert| {
            log.last.insert(a.alert_id.clone(), jiancha_proto::v1::Alert::from(&a).encode_to_vec());
        };
        for s in stored {
            let e = codec::decode(None, Some(&s.payload), usize::MAX).expect("valid");
            replay.arrive(&e, jiancha_core::Timestamp(s.ts), &mut sink);
        }
        replay.finish(Some(jiancha_core::Timestamp(until)), &mut sink);
        log
    }

    #[test]
    fn the_check_finds_missing_extra_and_differing_alerts() {
        let (mut stored, catalog, calendars, until) = probe_run();
        let good = replayed(&stored, catalog.clone(), calendars.clone(), until);
        assert_eq!(good.last.len(), 3);
        let c = check(&mut stored, catalog.clone(), calendars.clone(), until, &good, 0);
        assert_eq!((c.expected, c.live, c.missing, c.extra, c.differing), (3, 3, 0, 0, 0));

        // One alert never published, one retracted, one with another text, one too many.
        let mut bad = AlertLog::default();
        let mut ids: Vec<&String> = good.last.keys().collect();
        ids.sort();
        let mut retracted = jiancha_proto::v1::Alert::decode(good.last[ids[1]].as_slice()).expect("alert");
        retracted.status = jiancha_proto::v1::AlertStatus::Retracted as i32;
        bad.last.insert(ids[1].clone(), retracted.encode_to_vec());
        let mut changed = jiancha_proto::v1::Alert::decode(good.last[ids[2]].as_slice()).expect("alert");
        changed.triggered_at = "2026-12-05T16:38:00Z".into();
        bad.last.insert(ids[2].clone(), changed.encode_to_vec());
        let mut stray = changed.clone();
        stray.alert_id = "not-from-this-stream".into();
        bad.last.insert(stray.alert_id.clone(), stray.encode_to_vec());
        let c = check(&mut stored, catalog, calendars, until, &bad, 0);
        assert_eq!((c.missing, c.extra, c.differing), (2, 1, 1), "{c:?}");
    }
}
