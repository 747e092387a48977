//! The live monitor: one engine per assigned partition number of the event topics,
//! driven by the same core code as `jiancha replay`.
//!
//! Delivery: at-least-once processing with idempotent effects and an outbox. Each
//! commit writes the changed items' states (each with the alert updates of its changes
//! in its outbox), then the alert updates, then the offsets, each step acknowledged
//! before the next; a monitor restoring after a crash publishes the outboxes again. A
//! crash replays at most the uncommitted records, which the restored state recognises
//! as duplicates or which produce the same alert updates under the same deterministic
//! ids (docs/monitor.md).
//!
//! A receiving thread reads and decodes records (the consumer's callbacks run there); the
//! processing loop, a task, applies them to the engines; each commit is delivered by a
//! task of its own while the loop goes on, one commit at a time.

use crate::telemetry as m;
use jiancha_core::event::{EventType, InvalidReason, JsonEvent};
use jiancha_core::{Calendars, Catalog, Effect, Engine, ItemRef, TimerQueue, Timestamp};
use jiancha_platform::Config;
use jiancha_platform::codec;
use jiancha_platform::kafka::{KafkaFailure, ensure_topics};
use jiancha_platform::rules::{RulesError, RulesWatch};
use prost::Message as _;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Why the monitor stopped.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] jiancha_platform::config::ConfigError),
    /// The catalog or a calendar is invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// Kafka refused an operation.
    #[error(transparent)]
    Kafka(#[from] KafkaFailure),
    /// The task delivering a commit's effects stopped.
    #[error("delivering a commit's effects: {0}")]
    Delivery(String),
    /// A changelog record could not be read.
    #[error("restoring partition {partition}: {message}")]
    Restore {
        /// The partition.
        partition: i32,
        /// Why.
        message: String,
    },
}

fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> MonitorError {
    move |source| MonitorError::Kafka(KafkaFailure { context, source })
}

/// The departments whose input topics the monitor creates when absent: those of the
/// catalog's services.
pub fn catalog_departments(catalog: &Catalog) -> Vec<String> {
    let mut codes: Vec<String> = catalog.services().iter().map(|s| s.department.to_string()).collect();
    codes.sort();
    codes.dedup();
    codes
}

/// A partition of one event topic: the trusted topic, or a department's input topic.
type TopicPartition = (String, i32);

/// What the consumer's callbacks share with the processing loop: the engines too, so
/// that a revocation hands over everything processed (the loop holds the lock while it
/// applies a batch; the callbacks run on the receiving thread, inside the consumer's poll).
#[derive(Default)]
struct Shared {
    /// The engines of the partitions this instance owns, with what they did since the
    /// last commit started. This map, `processed` and `generations` are looked up for
    /// every record: keyed by partition number, hashed with Fx, not SipHash.
    engines: FxHashMap<i32, PartitionEngine>,
    /// Next offset to commit per partition and event topic, for the records processed
    /// since the last commit started.
    processed: FxHashMap<i32, Vec<(String, i64)>>,
    /// The offsets of the commit being delivered: committed once its changelog records
    /// and alert updates are acknowledged.
    committing: HashMap<TopicPartition, i64>,
    /// The changelog records of the commit being delivered, until its task sends them.
    staged_changelog: Changelog,
    /// The alert updates of the commit being delivered, sent once its changelog records
    /// are acknowledged.
    staged_alerts: Vec<jiancha_proto::v1::Alert>,
    /// Whether the delivery task is handing staged records to the producer (outside the
    /// lock); a revocation waits for it on [`Handing::done`].
    handing: bool,
    /// Event topic partitions assigned since the loop last looked.
    assigned: Vec<TopicPartition>,
    /// Event topic partitions revoked since the loop last looked.
    revoked: Vec<TopicPartition>,
    /// Per partition, how many times it was revoked: a record read before its
    /// partition's revocation (still on its way to the loop) is left to the next owner.
    generations: FxHashMap<i32, u64>,
    /// Consumer lag per event topic partition, from the client's statistics.
    lag: HashMap<TopicPartition, i64>,
    /// The event topic partitions assigned now (kept by the rebalance callbacks).
    owned: HashSet<TopicPartition>,
    /// Whether the group has assigned partitions (none, maybe) to this instance yet.
    rebalanced: bool,
    /// Changelog records queued outside the engines' own changes (a restore rewriting
    /// records under their new keys), for the next commit.
    changelog: HashMap<Vec<u8>, Pending>,
}

/// What one commit writes: changelog records (the newest state of each item changed
/// since the previous commit started, carrying in its outbox the alert updates of those
/// changes), then the alert updates, then the offsets.
#[derive(Default)]
struct Batch {
    /// One record per key.
    changelog: Changelog,
    alerts: Vec<jiancha_proto::v1::Alert>,
    offsets: HashMap<TopicPartition, i64>,
}

/// The lock of [`Shared`] with the condition a revocation waits on while the delivery
/// task hands staged records to the producer.
struct Handing {
    shared: Mutex<Shared>,
    done: Condvar,
    /// How many revocations changed [`Shared::generations`]: the receiving thread reads
    /// the generations again only when this moved, instead of taking the lock (which the
    /// loop holds while it applies a batch) for every record.
    revocations: AtomicU64,
}

impl Handing {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("shared state")
    }

    /// Takes staged records under the lock and sends them outside it (encoding the alert
    /// updates and handing records to the producer are the costly part, and the loop goes
    /// on meanwhile); a revocation waits until they are with the producer, so that its
    /// flush covers them.
    fn hand_over<T>(
        &self,
        take: impl FnOnce(&mut Shared) -> T,
        send: impl FnOnce(T) -> Result<(), MonitorError>,
    ) -> Result<(), MonitorError> {
        let staged = {
            let mut shared = self.lock();
            shared.handing = true;
            take(&mut shared)
        };
        let sent = send(staged);
        self.lock().handing = false;
        self.done.notify_all();
        sent
    }
}

/// A changelog record waiting for the next commit.
struct Pending {
    /// Changelog partition.
    partition: i32,
    /// The item's state with its outbox; None for a tombstone.
    state: Option<StateRecord>,
}

/// A changelog record queued outside the engines' changes (a restore's rewrite): the
/// item's state, encoded straight from the engine (`jiancha_proto::encode_state`), and
/// the alert updates of its outbox, appended when the commit's [`Changelog`] is written
/// (the outbox is the message's last field).
struct StateRecord {
    state: Vec<u8>,
    outbox: Vec<jiancha_proto::v1::Alert>,
}

impl StateRecord {
    fn of(state: jiancha_core::engine::StateRef<'_>) -> StateRecord {
        let mut bytes = Vec::with_capacity(512);
        jiancha_proto::encode_state(state, &mut bytes);
        StateRecord { state: bytes, outbox: Vec::new() }
    }
}

/// A commit's changelog records, keys and values encoded into one buffer: a commit of
/// tens of thousands of records allocates (and frees, on the delivery task's thread)
/// one buffer, not a key and a value each.
#[derive(Default)]
struct Changelog {
    bytes: Vec<u8>,
    records: Vec<ChangelogRecord>,
}

/// One record of a [`Changelog`]: where its key and value are in the buffer.
struct ChangelogRecord {
    partition: i32,
    key: Span,
    /// None for a tombstone.
    value: Option<Span>,
}

impl Changelog {
    /// Starts a record with the key `key` writes; where it is.
    fn key(&mut self, key: impl FnOnce(&mut Vec<u8>)) -> Span {
        Span::written(&mut self.bytes, key)
    }

    /// Ends the record started with `key`: its value written by `value`, or a tombstone.
    fn value(&mut self, partition: i32, key: Span, value: Option<impl FnOnce(&mut Vec<u8>)>) {
        let value = value.map(|value| Span::written(&mut self.bytes, value));
        self.records.push(ChangelogRecord { partition, key, value });
    }

    /// The records, each as its partition, key and value.
    fn iter(&self) -> impl Iterator<Item = (i32, &[u8], Option<&[u8]>)> {
        self.records.iter().map(|r| (r.partition, r.key.of_batch(&self.bytes), r.value.map(|v| v.of_batch(&self.bytes))))
    }
}

/// The order that keeps the changelog and the alert topic in agreement without
/// transactions: first the changelog records (each with the alert updates of its changes
/// in its outbox), acknowledged; then the alert updates. A crash before the first step
/// loses both (the uncommitted records are processed again, or a timer fires again if
/// its alert still holds); a crash between the steps leaves updates in outboxes, which
/// the next owner publishes again on restore.
///
/// The records of one step carry one timestamp, the wall clock when the step hands them
/// to the producer: librdkafka would otherwise read the clock for each of them
/// (`gettimeofday`, about 2 % of a drain's samples).
fn write_changelog(producer: &EffectProducer, topic: &str, records: Changelog, tally: &Arc<Tally>) -> Result<(), MonitorError> {
    let now = jiancha_platform::wall_clock().0;
    for (partition, key, value) in records.iter() {
        let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(topic, tally.clone()).partition(partition).key(key).timestamp(now);
        if let Some(value) = value {
            record = record.payload(value);
        }
        send(producer, record)?;
    }
    Ok(())
}

/// Sends a commit's alert updates, with one timestamp as [`write_changelog`]'s records:
/// the wall clock when they are handed to the producer.
fn publish_alerts(
    producer: &EffectProducer,
    topic: &str,
    alerts: Vec<jiancha_proto::v1::Alert>,
    tally: &Arc<Tally>,
) -> Result<(), MonitorError> {
    let now = jiancha_platform::wall_clock().0;
    for alert in alerts {
        let bytes = alert.encode_to_vec();
        let headers = OwnedHeaders::new().insert(Header { key: codec::CONTENT_TYPE, value: Some(codec::PROTOBUF) });
        let record = BaseRecord::with_opaque_to(topic, tally.clone()).key(alert.alert_id.as_bytes()).payload(&bytes).headers(headers);
        send(producer, record.timestamp(now))?;
    }
    Ok(())
}

impl Shared {
    /// Partition `p`'s generation: how many times it was revoked.
    fn generation(&self, p: i32) -> u64 {
        self.generations.get(&p).copied().unwrap_or(0)
    }

    /// Whether a record read at `generation` of partition `p` is still this instance's.
    fn current(&self, p: i32, generation: u64) -> bool {
        self.generation(p) == generation
    }

    /// The offset after a record goes with the next commit.
    fn note_processed(&mut self, received: &Received) {
        let offsets = self.processed.entry(received.partition).or_default();
        match offsets.iter_mut().find(|(topic, _)| **topic == *received.topic) {
            Some((_, next)) => *next = received.offset + 1,
            None => offsets.push((received.topic.to_string(), received.offset + 1)),
        }
    }

    /// Everything processed since the last commit started, as one batch: each changed
    /// item exported once (however many events changed it), its alert updates in its
    /// outbox.
    fn take_batch(&mut self) -> Batch {
        let mut batch = Batch::default();
        // The records under keys no engine change produced: a restore's rewrites and the
        // retired items' tombstones, nearly always none. A changed item's record takes
        // the place of the one under its key, and its outbox (older first).
        let mut others = std::mem::take(&mut self.changelog);
        for (p, offsets) in self.processed.drain() {
            batch.offsets.extend(offsets.into_iter().map(|(topic, next)| ((topic, p), next)));
        }
        let changelog = &mut batch.changelog;
        let changed: usize = self.engines.values().map(|pe| pe.changed.len()).sum();
        changelog.records.reserve(changed + others.len());
        changelog.bytes.reserve(changed * 512);
        for (&p, pe) in self.engines.iter_mut() {
            // The monitor retires items right after a commit starts, so no update of
            // theirs is pending: the tombstone loses no outbox.
            for key in pe.retired.drain(..) {
                others.insert(key, Pending { partition: p, state: None });
            }
            // Each update in the outbox of its item, found by its handle: only the few
            // items with updates are looked up, not every changed one hashed by its key.
            let mut outboxes: FxHashMap<ItemRef, Vec<jiancha_proto::v1::Alert>> = FxHashMap::default();
            for alert in pe.updates.drain(..) {
                let update = jiancha_proto::v1::Alert::from(&alert);
                if let (Some(department), Some(item)) = (&alert.department_code, &alert.item_id)
                    && let Some(item) = pe.engine.find(department, item)
                {
                    outboxes.entry(item).or_default().push(update.clone());
                }
                batch.alerts.push(update);
            }
            for item in pe.changed.drain() {
                let Some(state) = pe.engine.state(item) else { continue };
                let key = changelog.key(|buf| jiancha_proto::put_state_key(state.department_code(), state.item_id(), buf));
                let earlier =
                    if others.is_empty() { None } else { others.remove(key.of_batch(&changelog.bytes)).and_then(|pending| pending.state) };
                let outbox = outboxes.remove(&item);
                changelog.value(
                    p,
                    key,
                    Some(|buf: &mut Vec<u8>| {
                        jiancha_proto::encode_state(state, buf);
                        if let Some(earlier) = earlier {
                            jiancha_proto::encode_outbox(&earlier.outbox, buf);
                        }
                        if let Some(outbox) = outbox {
                            jiancha_proto::encode_outbox(&outbox, buf);
                        }
                    }),
                );
            }
        }
        for (key, pending) in others {
            let key = Span::of(&key, &mut changelog.bytes);
            changelog.value(
                pending.partition,
                key,
                pending.state.map(|record| {
                    move |buf: &mut Vec<u8>| {
                        buf.extend_from_slice(&record.state);
                        jiancha_proto::encode_outbox(&record.outbox, buf);
                    }
                }),
            );
        }
        batch
    }
}

/// The lag of engine partition `p`: the largest lag of its event topics, once every one
/// of them is known. A partition whose lag is not known yet may hide a backlog: until
/// then the partition's clock is its records' time, not the wall clock.
fn lag_of(owned: &HashSet<TopicPartition>, lags: &HashMap<TopicPartition, i64>, p: i32) -> Option<i64> {
    let mut lag: Option<i64> = None;
    for tp in owned.iter().filter(|(_, q)| *q == p) {
        let known = *lags.get(tp)?;
        lag = Some(lag.map_or(known, |l| l.max(known)));
    }
    lag
}

struct MonitorContext {
    shared: Arc<Handing>,
    producer: Arc<EffectProducer>,
    topics: jiancha_platform::config::Topics,
}

impl ClientContext for MonitorContext {
    /// librdkafka's lines as tracing events (as rdkafka does by default), and a reset past
    /// records the broker deleted unread counted and logged as the loss it is.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", "librdkafka: {fac} {line}")
            }
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", "librdkafka: {fac} {line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(target: "librdkafka", "librdkafka: {fac} {line}"),
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", "librdkafka: {fac} {line}"),
        }
        if let Some(reset) = crate::offset_reset::parse(fac, line) {
            reset.report();
        }
    }

    fn stats(&self, stats: Statistics) {
        let mut shared = self.shared.lock();
        for (name, topic) in &stats.topics {
            if !self.topics.is_event_topic(name) {
                continue;
            }
            for (id, p) in &topic.partitions {
                // An empty partition has no backlog, whatever the client reports before
                // its first fetch.
                let lag = if p.consumer_lag >= 0 {
                    p.consumer_lag
                } else if p.hi_offset == 0 {
                    0
                } else {
                    continue;
                };
                if *id >= 0 {
                    shared.lag.insert((name.clone(), *id), lag);
                }
            }
        }
        let partitions: HashSet<i32> = shared.lag.keys().map(|(_, p)| *p).collect();
        for p in partitions {
            if let Some(lag) = lag_of(&shared.owned, &shared.lag, p) {
                metrics::gauge!(m::CONSUMER_LAG, "partition" => p.to_string()).set(lag as f64);
            }
        }
    }
}

impl ConsumerContext for MonitorContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Hand over cleanly, in the commit's order: the commit being delivered
            // finished (its changelog records acknowledged, then its alert updates), then
            // everything processed since as one more commit, then the offsets of both,
            // so the next owner restores a changelog that holds everything committed.
            // The lock is held throughout, once the delivery task has handed what it took
            // to the producer: it finds the rest of its commit sent.
            let mut shared = self.shared.lock();
            while shared.handing {
                shared = self.shared.done.wait(shared).expect("shared state");
            }
            let staged_changelog = std::mem::take(&mut shared.staged_changelog);
            let staged_alerts = std::mem::take(&mut shared.staged_alerts);
            let Batch { changelog, alerts, offsets } = shared.take_batch();
            // Each step is flushed before the next (the flush waits for every record the
            // producer holds), so the tally every record must carry is never awaited.
            let tally = Arc::new(Tally::default());
            let flush = || self.producer.flush(Duration::from_secs(60)).map_err(|e| e.to_string());
            let handed_over = write_changelog(&self.producer, &self.topics.state, staged_changelog, &tally)
                .map_err(|e| e.to_string())
                .and_then(|()| flush())
                .and_then(|()| publish_alerts(&self.producer, &self.topics.alerts, staged_alerts, &tally).map_err(|e| e.to_string()))
                .and_then(|()| flush())
                .and_then(|()| write_changelog(&self.producer, &self.topics.state, changelog, &tally).map_err(|e| e.to_string()))
                .and_then(|()| flush())
                .and_then(|()| publish_alerts(&self.producer, &self.topics.alerts, alerts, &tally).map_err(|e| e.to_string()))
                .and_then(|()| flush());
            if let Err(e) = handed_over {
                warn!(error = %e, "Hand-over write failed; the next owner will reprocess");
            }
            // Every update published: the next owner need not publish outboxes again.
            let partitions: HashSet<i32> = list.elements().iter().map(|e| e.partition()).collect();
            for p in partitions {
                let marker = BaseRecord::<[u8], [u8], _>::with_opaque_to(&self.topics.state, tally.clone())
                    .partition(p)
                    .key(jiancha_proto::HANDOVER_KEY)
                    .payload(b"");
                if let Err(e) = send(&self.producer, marker) {
                    warn!(error = %e, partition = p, "Hand-over marker not written; the next owner will publish outboxes again");
                }
            }
            if let Err(e) = flush() {
                warn!(error = %e, "Flush before revoke failed; the next owner will reprocess");
            }
            let mut delivered = std::mem::take(&mut shared.committing);
            for (tp, next) in offsets {
                let at = delivered.entry(tp).or_insert(next);
                *at = (*at).max(next);
            }
            for el in list.elements() {
                let tp = (el.topic().to_owned(), el.partition());
                shared.lag.remove(&tp);
                shared.owned.remove(&tp);
                // The exporter cannot drop a series: a partition that left reads 0 here,
                // and its new owner reports its lag.
                metrics::gauge!(m::CONSUMER_LAG, "partition" => tp.1.to_string()).set(0.0);
                *shared.generations.entry(tp.1).or_default() += 1;
                self.shared.revocations.fetch_add(1, Ordering::Release);
                // Handed over: no timer of it fires here any more.
                shared.engines.remove(&tp.1);
                shared.revoked.push(tp);
            }
            // Both commits are acknowledged now: all their offsets go.
            let mut commit = TopicPartitionList::new();
            for ((topic, p), next) in delivered {
                let _ = commit.add_partition_offset(&topic, p, Offset::Offset(next));
            }
            if commit.count() > 0
                && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
            {
                warn!(error = %e, "Commit on revoke failed; the next owner will reprocess");
            }
            info!(partitions = ?list.elements().iter().map(|e| format!("{}:{}", e.topic(), e.partition())).collect::<Vec<_>>(), "Partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut shared = self.shared.lock();
            shared.rebalanced = true;
            for el in list.elements() {
                let tp = (el.topic().to_owned(), el.partition());
                shared.owned.insert(tp.clone());
                shared.assigned.push(tp);
            }
            info!(partitions = ?list.elements().iter().map(|e| format!("{}:{}", e.topic(), e.partition())).collect::<Vec<_>>(), "Partitions assigned");
        }
    }
}

/// One partition's engine and its timers. Partition p's engine handles partition p of
/// every event topic (the trusted one and each department's) and owns changelog
/// partition p: the topics have the same partition count and the range assignor gives
/// one member partition p of all of them.
struct PartitionEngine {
    engine: Engine,
    timers: TimerQueue,
    /// Timestamp of the latest record consumed.
    last_record: Option<i64>,
    /// Whether the partition's lag was within `catch_up_lag` when the loop last looked
    /// (the client reports lag once a second; the loop looks every tick).
    caught_up: bool,
    /// Items changed since the last commit started (the engine's own slot numbers:
    /// hashed with Fx, as the engine hashes them).
    changed: FxHashSet<ItemRef>,
    /// Alert updates since the last commit started, in order.
    updates: Vec<jiancha_core::Alert>,
    /// Changelog keys of the items retired since the last commit started.
    retired: Vec<Vec<u8>>,
}

impl PartitionEngine {
    fn new(engine: Engine, timers: TimerQueue) -> Self {
        PartitionEngine {
            engine,
            timers,
            last_record: None,
            caught_up: false,
            changed: FxHashSet::default(),
            updates: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The partition's clock: the wall clock `wall` (less the grace) once caught up;
    /// while catching up on a backlog, the timestamp of the records it consumes (DOMAIN
    /// §5, the live clock).
    fn clock(&self, wall: i64, grace_ms: i64) -> Option<i64> {
        if self.caught_up { Some(wall - grace_ms) } else { self.last_record }
    }
}

/// The processing loop's working state: the event topic partitions it owns, and the
/// dead letters and republished updates handed to the producer since the last commit
/// started (the engines are in [`Shared`]).
struct Processor {
    config: Config,
    producer: Arc<EffectProducer>,
    shared: Arc<Handing>,
    /// Event topic partitions assigned to this instance.
    owned: HashSet<TopicPartition>,
    effects: Vec<Effect>,
    /// Events consumed, by type (indexed by [`jiancha_core::EventType`]), and duplicates:
    /// handles registered once, not looked up by name for every record.
    consumed: [metrics::Counter; EventType::ALL.len()],
    duplicates: metrics::Counter,
    /// Processing time per record (each batch's mean, recorded for each of its records).
    processing: metrics::Histogram,
    /// Batches applied, back to the receiving thread (see [`Processor::process_batch`]).
    returned: std::sync::mpsc::Sender<ReceivedBatch>,
    /// The acknowledgements of the records handed to the producer since the last commit
    /// started (dead letters, republished updates): its first step waits for them too.
    pending: Arc<Tally>,
    grace_ms: i64,
    /// Records processed since the last commit started.
    uncommitted: usize,
    /// Timestamp of the oldest of them.
    oldest: Option<i64>,
}

/// Why a record is refused, for its dead letter.
struct Refusal<'a> {
    reason: InvalidReason,
    field: Option<&'a str>,
    message: String,
}

impl Processor {
    /// Applies a batch of records under one hold of the lock: each event to its
    /// partition's engine, or a dead letter. The clocks are read once for the batch: the
    /// wall clock (a caught-up partition's clock, the time of a record without one) and
    /// the processing time, recorded as the batch's mean for each of its records.
    ///
    /// The batch goes back to the receiving thread afterwards, to be filled again there:
    /// its texts and buffers were allocated there and are used again, and freeing them
    /// on this thread, the busier one, went through the allocator's cross-thread path.
    fn process_batch(&mut self, batch: ReceivedBatch) -> Result<(), MonitorError> {
        let started = Instant::now();
        let wall = jiancha_platform::wall_clock().0;
        let handing = self.shared.clone();
        let mut shared = handing.lock();
        for received in batch.records() {
            self.process(&mut shared, received, &batch.bytes, wall)?;
        }
        drop(shared);
        let records = batch.len;
        self.processing.record_many(started.elapsed().as_secs_f64() / records.max(1) as f64, records);
        // The receiving thread gone, the batch is dropped here.
        let _ = self.returned.send(batch);
        Ok(())
    }

    /// Applies one record (its key and value in `bytes`): an event to its partition's
    /// engine, or a dead letter. A record read before its partition was revoked is left
    /// alone: the revocation handed over everything processed before it, and the next
    /// owner reads it again.
    fn process(&mut self, shared: &mut Shared, received: &Received, bytes: &[u8], wall: i64) -> Result<(), MonitorError> {
        let p = received.partition;
        if !shared.current(p, received.generation) {
            return Ok(());
        }
        let record_ts = received.timestamp.unwrap_or(wall);
        if p >= self.config.partitions {
            let message =
                format!("partition {p} of {} has no changelog partition (the changelog has {})", received.topic, self.config.partitions);
            let ts = received.timestamp.unwrap_or(0);
            self.dead_letter(received, bytes, ts, Refusal { reason: InvalidReason::Malformed, field: None, message })?;
            self.processed(shared, received);
            return Ok(());
        }
        let bound = self.config.topics.department_of_topic(&received.topic);
        match received.decoded() {
            Err(bad) => {
                let refusal = Refusal { reason: bad.reason, field: bad.field, message: bad.message.clone() };
                self.dead_letter(received, bytes, record_ts, refusal)?;
            }
            // DOMAIN §2: on a department's input topic the department is the producer's.
            Ok(event) if bound.is_some_and(|d| d != event.department_code) => {
                let message = format!(
                    "field `department_code` is `{}` but the record was written to the input topic of department `{}`; a department may only report its own items",
                    event.department_code,
                    bound.unwrap_or_default()
                );
                self.dead_letter(
                    received,
                    bytes,
                    record_ts,
                    Refusal { reason: InvalidReason::DepartmentMismatch, field: Some("department_code"), message },
                )?;
            }
            Ok(event) => {
                let Some(pe) = shared.engines.get_mut(&p) else { return Ok(()) };
                pe.last_record = Some(pe.last_record.map_or(record_ts, |t| t.max(record_ts)));
                let now = pe.clock(wall, self.grace_ms).unwrap_or(record_ts);
                // Timers due by now fire before the event is applied.
                fire_due(pe, now, &mut self.effects);
                let applied = pe.engine.apply(event, Timestamp(record_ts), Timestamp(now), &mut self.effects);
                carry_out(p, pe, &mut self.effects);
                // With its effects, under the same hold of the lock: a revocation hands
                // over both or neither.
                self.processed(shared, received);
                self.consumed[event.event_type() as usize].increment(1);
                debug!(partition = p, offset = received.offset, item = %event.item_id, event = %event.event_id, ?applied, "Event");
                if applied == jiancha_core::Applied::Duplicate {
                    self.duplicates.increment(1);
                }
                if applied == jiancha_core::Applied::Retired {
                    let message = format!(
                        "item `{}` of department `{}` is not held and this {} occurred before the retention window ({}): the item was closed and retired, so its history is not there to apply the event to",
                        event.item_id,
                        event.department_code,
                        event.event_type().as_str(),
                        self.config.closed_item_retention
                    );
                    self.dead_letter(
                        received,
                        bytes,
                        record_ts,
                        Refusal { reason: InvalidReason::ItemRetired, field: Some("item_id"), message },
                    )?;
                }
                return Ok(());
            }
        }
        self.processed(shared, received);
        Ok(())
    }

    /// Notes that a record is processed: its offset goes with the next commit, and it
    /// counts towards starting one.
    fn processed(&mut self, shared: &mut Shared, received: &Received) {
        shared.note_processed(received);
        self.uncommitted += 1;
        if let Some(ts) = received.timestamp {
            self.oldest.get_or_insert(ts);
        }
    }

    /// Sends a refused record, byte for byte, to the dead-letter topic with its reason.
    fn dead_letter(&mut self, received: &Received, bytes: &[u8], record_ts: i64, refusal: Refusal<'_>) -> Result<(), MonitorError> {
        let (topic, p, offset) = received.source();
        metrics::counter!(m::EVENTS_INVALID, "reason" => refusal.reason.as_str()).increment(1);
        warn!(topic, partition = p, offset, reason = refusal.reason.as_str(), message = %refusal.message, "Invalid record sent to the dead-letter topic");
        let headers =
            jiancha_platform::kafka::dead_letter_headers_at(refusal.reason.as_str(), refusal.field, &refusal.message, received.source());
        let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(&self.config.topics.dead_letter, self.pending.clone())
            .headers(headers)
            .timestamp(record_ts);
        if let Some(key) = received.key {
            record = record.key(key.of_batch(bytes));
        }
        if let Some(payload) = received.payload {
            record = record.payload(payload.of_batch(bytes));
        }
        send(&self.producer, record)
    }

    /// Fires every timer due on each partition's clock.
    fn fire_timers(&mut self) {
        let mut shared = self.shared.lock();
        for (p, pe) in shared.engines.iter_mut() {
            if let Some(now) = pe.clock(jiancha_platform::wall_clock().0, self.grace_ms) {
                fire_due(pe, now, &mut self.effects);
                carry_out(*p, pe, &mut self.effects);
            }
        }
    }

    /// Closed items past the retention window leave each partition's engine (at the
    /// partition's clock); their tombstones go to the changelog with the next commit.
    fn retire_closed(&mut self) {
        let mut shared = self.shared.lock();
        for (p, pe) in shared.engines.iter_mut() {
            if let Some(now) = pe.clock(jiancha_platform::wall_clock().0, self.grace_ms) {
                let retired = pe.engine.retire_closed(Timestamp(now), &mut self.effects);
                if retired > 0 {
                    metrics::counter!(m::ITEMS_RETIRED).increment(retired as u64);
                    info!(partition = p, items = retired, "Closed items past the retention window retired");
                }
                carry_out(*p, pe, &mut self.effects);
            }
        }
    }

    /// A new catalog and calendars: every partition's open items recomputed.
    fn replace_rules(&mut self, catalog: &Arc<Catalog>, calendars: &Calendars) {
        let mut shared = self.shared.lock();
        for (p, pe) in shared.engines.iter_mut() {
            let wall = jiancha_platform::wall_clock().0;
            let now = Timestamp(pe.clock(wall, self.grace_ms).unwrap_or(wall));
            pe.engine.replace_calendars(calendars.clone(), now, &mut self.effects);
            pe.engine.replace_catalog(catalog.clone(), now, &mut self.effects);
            carry_out(*p, pe, &mut self.effects);
        }
    }

    /// Each partition's clock mode from the lag the client last reported.
    fn update_clocks(&mut self) {
        let mut shared = self.shared.lock();
        let shared = &mut *shared;
        for (p, pe) in shared.engines.iter_mut() {
            let lag = lag_of(&shared.owned, &shared.lag, *p);
            pe.caught_up = lag.is_some_and(|lag| lag <= self.config.catch_up_lag);
        }
    }

    /// Stages what was processed since the last commit started — the changed items'
    /// states, the alert updates, the offsets — for [`deliver`] (dead letters and
    /// republished updates were handed to the producer already).
    fn start_commit(&mut self) -> Result<InFlight, MonitorError> {
        let mut shared = self.shared.lock();
        let batch = shared.take_batch();
        shared.staged_changelog = batch.changelog;
        shared.staged_alerts = batch.alerts;
        shared.committing = batch.offsets;
        drop(shared);
        let pending = std::mem::take(&mut self.pending);
        let delivery = tokio::spawn(deliver(self.producer.clone(), self.shared.clone(), self.config.topics.clone(), pending));
        let oldest = self.oldest.take();
        self.uncommitted = 0;
        Ok(InFlight { delivery, oldest })
    }

    /// Takes the assignments and revocations the callbacks recorded: an engine is
    /// restored when the first of its event topic partitions arrives (the revocation
    /// itself dropped the engines it handed over).
    fn take_rebalances(&mut self, catalog: &Arc<Catalog>, calendars: &Calendars) -> Result<(), MonitorError> {
        let (assigned, revoked) = {
            let mut s = self.shared.lock();
            (std::mem::take(&mut s.assigned), std::mem::take(&mut s.revoked))
        };
        for tp in revoked {
            self.owned.remove(&tp);
        }
        for tp in assigned {
            let p = tp.1;
            if p >= self.config.partitions {
                error!(topic = %tp.0, partition = p, partitions = self.config.partitions,
                    "An event topic has more partitions than the changelog; its extra partitions cannot be kept apart and are dead-lettered");
                continue;
            }
            self.owned.insert(tp);
            self.restore(p, catalog, calendars)?;
        }
        Ok(())
    }

    /// Restores partition `p`'s engine from the changelog, unless it is there already.
    /// Records written before department isolation are rewritten under their new key.
    fn restore(&mut self, p: i32, catalog: &Arc<Catalog>, calendars: &Calendars) -> Result<(), MonitorError> {
        if self.shared.lock().engines.contains_key(&p) {
            return Ok(());
        }
        let started = Instant::now();
        let mut engine = Engine::new(catalog.clone(), calendars.clone());
        engine.set_retention(self.config.retention());
        let mut timers = TimerQueue::default();
        let restored = read_changelog(p, &self.config, &mut engine, &mut timers)?;
        let took = started.elapsed();
        metrics::histogram!(m::RESTORE).record(took.as_secs_f64());
        metrics::counter!(m::RESTORED_ITEMS).increment(restored.items as u64);
        info!(
            partition = p,
            items = restored.items,
            legacy = restored.legacy.len(),
            republished = restored.outbox.len(),
            seconds = took.as_secs_f64(),
            "Partition restored from the changelog"
        );
        // After a crash some updates of the outboxes may not have reached the alert
        // topic: publish them again (the same updates under the same ids).
        publish_alerts(&self.producer, &self.config.topics.alerts, restored.outbox, &self.pending)?;
        let mut shared = self.shared.lock();
        for (old_key, item) in &restored.legacy {
            if let Some(state) = engine.state(*item) {
                let key = jiancha_proto::state_key(state.department_code(), state.item_id());
                shared.changelog.insert(key, Pending { partition: p, state: Some(StateRecord::of(state)) });
            }
            // The tombstone lets compaction drop the record under its old key.
            shared.changelog.insert(old_key.clone(), Pending { partition: p, state: None });
        }
        // Revoked while it was read (the callbacks run on the receiving thread): the next
        // owner restores it.
        if shared.owned.iter().any(|(_, q)| *q == p) {
            shared.engines.insert(p, PartitionEngine::new(engine, timers));
        }
        Ok(())
    }
}

/// The monitor, running until `shutdown` turns true.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), MonitorError> {
    config.validate()?;
    let (mut rules_watch, mut catalog, mut calendars) = RulesWatch::load(&config)?;
    ensure_topics(&config, &catalog_departments(&catalog)).await?;

    let producer: Arc<EffectProducer> = jiancha_platform::kafka::client(&config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "600000")
        .create_with_context(Acknowledgements)
        .map(Arc::new)
        .map_err(kafka("producer"))?;
    let shared = Arc::new(Handing { shared: Mutex::new(Shared::default()), done: Condvar::new(), revocations: AtomicU64::new(0) });
    let context = MonitorContext { shared: shared.clone(), producer: producer.clone(), topics: config.topics.clone() };
    let mut consumer_config = jiancha_platform::kafka::consumer(&config);
    if let Some(id) = &config.group_instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let consumer: Arc<BaseConsumer<MonitorContext>> = consumer_config
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Partition p of every event topic to one member: the engine of p sees them all.
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", config.rebalance().as_millis().max(10_000).to_string())
        .set("heartbeat.interval.ms", "1000")
        // A broker that answers a fetch only when its wait runs out (the embedded one,
        // Tansu) would otherwise hold each new record up to 500 ms (librdkafka's
        // default); Apache Kafka answers as soon as a record arrives either way.
        .set("fetch.wait.max.ms", "50")
        .create_with_context(context)
        .map(Arc::new)
        .map_err(kafka("consumer"))?;
    jiancha_platform::health::set(READINESS, false, "joining the consumer group");
    let pattern = config.topics.department_pattern();
    consumer.subscribe(&[&config.topics.events, &pattern]).map_err(kafka("subscribe"))?;
    info!(bootstrap = %config.kafka_bootstrap, group = %config.group_id, topic = %config.topics.events, departments = %pattern, "Monitor started");

    // Records are read and decoded by a thread of their own, ahead of the engines.
    let (records_tx, mut records) = tokio::sync::mpsc::channel::<ReceivedBatch>(RECEIVED_AHEAD);
    let (returned, applied) = std::sync::mpsc::channel::<ReceivedBatch>();
    // It stops when the loop's end of the channel is dropped, however the loop ends.
    let receiving = {
        let (consumer, shared) = (consumer.clone(), shared.clone());
        let max_bytes = config.max_record_bytes;
        std::thread::Builder::new()
            .name("monitor-receive".into())
            .spawn(move || receive(&consumer, &shared, &records_tx, &applied, max_bytes))
            .map_err(|e| MonitorError::Delivery(format!("starting the receiving thread: {e}")))?
    };
    let mut pr = Processor {
        config: config.clone(),
        producer: producer.clone(),
        shared: shared.clone(),
        owned: HashSet::new(),
        effects: Vec::new(),
        consumed: EventType::ALL.map(|t| metrics::counter!(m::EVENTS_CONSUMED, "type" => t.as_str())),
        duplicates: metrics::counter!(m::EVENTS_DUPLICATE),
        processing: metrics::histogram!(m::PROCESSING),
        returned,
        pending: Arc::default(),
        grace_ms: config.grace().as_millis() as i64,
        uncommitted: 0,
        oldest: None,
    };
    // The commit being delivered: the loop goes on consuming meanwhile, and starts the
    // next commit when it is done.
    let mut in_flight: Option<InFlight> = None;
    let mut last_commit = Instant::now();
    let mut last_reload_check = Instant::now();
    // Retired items are looked for a tenth of the window apart, between a second and an hour.
    let retire_every = config.retention().map(|w| (w / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600)));
    let mut last_retire = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));

    loop {
        // Records processed while a commit is delivered wait in memory for the next one:
        // past a bound, the loop waits for the delivery before consuming more.
        let consuming = in_flight.is_none() || pr.uncommitted < MAX_UNCOMMITTED;
        let delivered = async {
            match in_flight.as_mut() {
                Some(f) => (&mut f.delivery).await,
                None => std::future::pending().await,
            }
        };
        let mut start_commit = false;
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            done = delivered => {
                let f = in_flight.take().expect("a commit in flight");
                done.map_err(|e| MonitorError::Delivery(e.to_string()))??;
                settled(&consumer, &shared, f.oldest, CommitMode::Async)?;
                start_commit = commit_due(pr.uncommitted, records.is_empty(), last_commit.elapsed() >= config.commit());
            }
            batch = records.recv(), if consuming => {
                let Some(batch) = batch else {
                    return Err(MonitorError::Delivery("the receiving thread stopped".into()));
                };
                pr.take_rebalances(&catalog, &calendars)?;
                // The engines of the batch's partitions restored first, outside the lock.
                let mut restored: Vec<i32> = Vec::new();
                for received in batch.records() {
                    let p = received.partition;
                    if p < config.partitions && !restored.contains(&p) {
                        restored.push(p);
                        pr.restore(p, &catalog, &calendars)?;
                    }
                }
                pr.process_batch(batch)?;
                start_commit = commit_due(pr.uncommitted, records.is_empty(), last_commit.elapsed() >= config.commit());
            }
            _ = tick.tick() => {
                pr.take_rebalances(&catalog, &calendars)?;
                pr.update_clocks();
                pr.fire_timers();
                start_commit = last_commit.elapsed() >= config.commit();
                if last_reload_check.elapsed() >= config.reload() {
                    last_reload_check = Instant::now();
                    if let Some(reloaded) = rules_watch.poll(&config) {
                        match reloaded {
                            Ok((new_catalog, new_calendars)) => {
                                catalog = new_catalog;
                                calendars = new_calendars;
                                pr.replace_rules(&catalog, &calendars);
                                if let Err(e) = ensure_topics(&config, &catalog_departments(&catalog)).await {
                                    warn!(error = %e, "Could not create the input topics of the catalog's departments");
                                }
                                metrics::counter!(m::RELOADS, "outcome" => "applied").increment(1);
                                info!("Catalog and calendars reloaded; open items recomputed");
                            }
                            Err(e) => {
                                metrics::counter!(m::RELOADS, "outcome" => "rejected").increment(1);
                                error!(error = %e, "Catalog or calendar change rejected; the previous one stays in force");
                            }
                        }
                    }
                }
                let (open, items) = shared.lock().engines.values().fold((0, 0), |(o, i), pe| (o + pe.engine.open_items(), i + pe.engine.len()));
                metrics::gauge!(m::OPEN_ITEMS).set(open as f64);
                metrics::gauge!(m::ITEMS).set(items as f64);
                report_readiness(&shared, &pr.owned, &config);
            }
        }
        if start_commit && in_flight.is_none() {
            in_flight = Some(pr.start_commit()?);
            last_commit = Instant::now();
            if let Some(every) = retire_every
                && last_retire.elapsed() >= every
            {
                last_retire = Instant::now();
                pr.retire_closed();
            }
        }
    }
    // The receiving thread stops within one poll of finding the loop's end of the channel
    // gone. What it read and had not handed over is left to be read again.
    drop(records);
    if tokio::task::spawn_blocking(move || receiving.join()).await.map_or(true, |joined| joined.is_err()) {
        warn!("The receiving thread ended in a panic");
    }
    jiancha_platform::health::set(READINESS, false, "stopping");
    info!("Shutting down: flushing effects and committing offsets");
    if let Some(f) = in_flight.take() {
        finish(&consumer, &shared, f, CommitMode::Sync).await?;
    }
    let last = pr.start_commit()?;
    finish(&consumer, &shared, last, CommitMode::Sync).await?;
    producer.flush(Duration::from_secs(30)).map_err(kafka("flush"))?;
    consumer.unsubscribe();
    info!("Monitor stopped");
    Ok(())
}

/// Batches of records read and decoded ahead of the engines (up to [`RECEIVE_BATCH`]
/// records each).
const RECEIVED_AHEAD: usize = 8;

/// The most records the receiving thread hands the loop at once: those the consumer holds
/// already when it has one, so that the loop takes the lock and wakes once a batch, not
/// once a record.
const RECEIVE_BATCH: usize = 512;

/// A record read and decoded by [`receive`]: what the loop needs of it, without the
/// client's copy of its headers (read once, for the content type).
struct Received {
    /// The event topic, shared by the records read from it.
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// The record's timestamp, when it has one.
    timestamp: Option<i64>,
    /// Where its key and value are in [`ReceivedBatch::bytes`], for a dead letter
    /// (refused now, or later by the engine).
    key: Option<Span>,
    payload: Option<Span>,
    /// Its partition's generation when it was read (see [`Shared::generations`]).
    generation: u64,
    /// The event read, when `invalid` is None; its texts' buffers are used again by the
    /// record read into this slot next.
    event: JsonEvent,
    /// Why the record is refused, when it is.
    invalid: Option<jiancha_core::InvalidEvent>,
    /// Whether the record's value was over [`KEPT_SLOT_BYTES`]: its event's texts may
    /// be long, and their buffers are not kept for the next record.
    large: bool,
}

impl Received {
    /// Topic, partition and offset, for a dead letter's headers.
    fn source(&self) -> (&str, i32, i64) {
        (&self.topic, self.partition, self.offset)
    }

    /// The event, or why the record is refused.
    fn decoded(&self) -> Result<&jiancha_core::Event, &jiancha_core::InvalidEvent> {
        match &self.invalid {
            None => Ok(&self.event.event),
            Some(invalid) => Err(invalid),
        }
    }
}

/// Where a record's key or value lies in its batch's bytes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// Copies `bytes` to the end of `into`.
    fn of(bytes: &[u8], into: &mut Vec<u8>) -> Span {
        Span::written(into, |into| into.extend_from_slice(bytes))
    }

    /// What `write` appends to `into`.
    fn written(into: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Span {
        let start = into.len();
        write(into);
        Span { start, len: into.len() - start }
    }

    fn of_batch(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start..self.start + self.len]
    }
}

/// Records read and decoded by the receiving thread, handed to the loop at once. The
/// batch comes back once applied and is filled again, slot by slot: each record is read
/// into the event of the one before it in its slot, and keys and values are copied into
/// one buffer, so that reading a record allocates nothing, mostly, and applying it frees
/// nothing.
#[derive(Default)]
struct ReceivedBatch {
    /// The first `len` are this batch's; those after are slots kept for the next.
    records: Vec<Received>,
    len: usize,
    bytes: Vec<u8>,
}

impl ReceivedBatch {
    fn records(&self) -> &[Received] {
        &self.records[..self.len]
    }
}

/// The most bytes a batch's buffer keeps for the next batch (a batch of large records
/// gives back what it grew beyond this).
const KEPT_BATCH_BYTES: usize = 4 << 20;

/// The longest record value whose event's text buffers a slot keeps for the next record.
const KEPT_SLOT_BYTES: usize = 4 << 10;

/// How long the receiving thread waits for a record before it looks whether the loop is
/// still there.
const RECEIVE_WAIT: Duration = Duration::from_millis(100);

/// Reads the event topics and decodes each record on a thread of its own, ahead of the
/// processing loop (the decoding is a good part of a record's cost), handing the records
/// over in batches of those already read. The consumer's rebalance callbacks run in
/// here, between records, and may block (a revocation flushes the producer and commits)
/// without holding up the runtime's workers.
///
/// A thread, not a task: as a task it shared the runtime's two workers with the loop, and
/// the runtime ran the loop, woken by each batch, on the receiving task's worker, so the
/// two often took turns on one core while the other stood idle (docs/performance.md).
fn receive(
    consumer: &BaseConsumer<MonitorContext>,
    shared: &Handing,
    records: &tokio::sync::mpsc::Sender<ReceivedBatch>,
    applied: &std::sync::mpsc::Receiver<ReceivedBatch>,
    max_bytes: usize,
) {
    let mut topics: Vec<Arc<str>> = Vec::new();
    let mut generations = Generations::default();
    while !records.is_closed() {
        // The batches the loop has applied are dropped here, where they were allocated;
        // the last one's buffers are used again.
        let mut batch = ReceivedBatch::default();
        while let Ok(done) = applied.try_recv() {
            batch = done;
        }
        batch.len = 0;
        batch.bytes.clear();
        if batch.bytes.capacity() > KEPT_BATCH_BYTES {
            batch.bytes = Vec::new();
        }
        let mut failed = None;
        let mut wait = RECEIVE_WAIT;
        while batch.len < RECEIVE_BATCH {
            match consumer.poll(wait) {
                Some(Ok(msg)) => {
                    if batch.len == batch.records.len() {
                        batch.records.push(Received::blank());
                    }
                    let slot = &mut batch.records[batch.len];
                    slot.read(shared, &mut generations, &mut topics, &msg, max_bytes, &mut batch.bytes);
                    batch.len += 1;
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
            // Only what the consumer holds already joins the batch.
            wait = Duration::ZERO;
        }
        if batch.len > 0 && records.blocking_send(batch).is_err() {
            return;
        }
        if let Some(e) = failed {
            warn!(error = %e, "Consume error; retrying");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The receiving thread's copy of [`Shared::generations`], read again whenever a
/// revocation moved them.
#[derive(Default)]
struct Generations {
    /// [`Handing::revocations`] when the copy was taken.
    seen: u64,
    of: FxHashMap<i32, u64>,
}

impl Generations {
    /// Partition `p`'s generation now. The revocation callbacks run on the receiving
    /// thread, inside the consumer's poll, so a record read after a revocation sees it.
    fn of(&mut self, shared: &Handing, p: i32) -> u64 {
        let now = shared.revocations.load(Ordering::Acquire);
        if now != self.seen {
            let s = shared.lock();
            self.of = s.generations.clone();
            self.seen = shared.revocations.load(Ordering::Acquire);
        }
        self.of.get(&p).copied().unwrap_or(0)
    }
}

impl Received {
    /// An empty slot.
    fn blank() -> Received {
        Received {
            topic: Arc::from(""),
            partition: 0,
            offset: 0,
            timestamp: None,
            key: None,
            payload: None,
            generation: 0,
            event: JsonEvent::blank(),
            invalid: None,
            large: false,
        }
    }

    /// Readies the slot for a record whose value is `len` bytes long. The buffers of an
    /// event read from a large record are dropped, not kept: texts run to 4 096
    /// characters, and every slot of every batch keeping such buffers after one burst of
    /// large records would hold on to hundreds of megabytes.
    fn reuse(&mut self, len: usize) {
        if self.large {
            self.event = JsonEvent::blank();
        }
        self.large = len > KEPT_SLOT_BYTES;
    }

    /// Reads a record into this slot: decoded (into the slot's event, whose texts'
    /// buffers are used again), with its partition's generation as the rebalance
    /// callbacks left it when the record was read; its key and value copied to `bytes`.
    fn read(
        &mut self,
        shared: &Handing,
        generations: &mut Generations,
        topics: &mut Vec<Arc<str>>,
        msg: &BorrowedMessage<'_>,
        max_bytes: usize,
        bytes: &mut Vec<u8>,
    ) {
        self.reuse(msg.payload_len());
        self.generation = generations.of(shared, msg.partition());
        let content_type =
            msg.headers().and_then(|h| h.iter().find(|h| h.key.eq_ignore_ascii_case(codec::CONTENT_TYPE)).and_then(|h| h.value));
        self.invalid = codec::decode_into(content_type, msg.payload(), max_bytes, &mut self.event).err();
        let topic = msg.topic();
        if *self.topic != *topic {
            self.topic = match topics.iter().find(|t| ***t == *topic) {
                Some(known) => known.clone(),
                None => {
                    let known: Arc<str> = topic.into();
                    topics.push(known.clone());
                    known
                }
            };
        }
        self.partition = msg.partition();
        self.offset = msg.offset();
        self.timestamp = msg.timestamp().to_millis();
        self.key = msg.key().map(|key| Span::of(key, bytes));
        self.payload = msg.payload().map(|payload| Span::of(payload, bytes));
    }
}

/// Records that start a commit at once when none is being delivered (otherwise one
/// starts every `commit_interval`).
const COMMIT_RECORDS: usize = 1000;

/// Whether the loop starts a commit now, none being delivered, with `uncommitted`
/// records processed since the last one started:
/// - 1 000 of them wait (at high rates, each commit carries what arrived while the
///   previous one was delivered);
/// - or the loop has applied every record read so far (`caught_up`): nothing is gained by
///   holding their effects back, and an alert goes out without waiting for the interval
///   (this also ends a backlog's drain without a wait of up to `commit_interval` and the
///   tick after it);
/// - or `commit_interval` has passed since the last one started.
///
/// The tick starts one too once the interval has passed, whatever waits.
fn commit_due(uncommitted: usize, caught_up: bool, interval_passed: bool) -> bool {
    uncommitted >= COMMIT_RECORDS || (uncommitted > 0 && (caught_up || interval_passed))
}

/// Records processed while a commit is delivered, past which the loop waits for it.
const MAX_UNCOMMITTED: usize = 50_000;

/// The monitor's name in `/readyz`.
pub const READINESS: &str = "monitor";

/// Ready: the group has assigned this instance its partitions, each is restored (the
/// processing loop restores on assignment) and within `catch_up_lag` records of the end.
fn report_readiness(shared: &Handing, owned: &HashSet<TopicPartition>, config: &Config) {
    let s = shared.lock();
    if !s.rebalanced {
        jiancha_platform::health::set(READINESS, false, "waiting for the group to assign partitions");
        return;
    }
    let engines: std::collections::BTreeSet<i32> = owned.iter().map(|(_, p)| *p).collect();
    let behind: Vec<String> = engines
        .iter()
        .filter_map(|&p| match lag_of(&s.owned, &s.lag, p) {
            Some(lag) if lag <= config.catch_up_lag => None,
            Some(lag) => Some(format!("partition {p} is {lag} records behind")),
            None => Some(format!("partition {p}'s lag is not known yet")),
        })
        .collect();
    if behind.is_empty() {
        jiancha_platform::health::set(READINESS, true, format!("{} partitions restored and caught up", engines.len()));
    } else {
        jiancha_platform::health::set(READINESS, false, format!("catching up: {}", behind.join("; ")));
    }
}

/// What [`read_changelog`] restored.
#[derive(Debug, Default)]
pub struct Restored {
    /// Items restored.
    pub items: usize,
    /// Items whose record was written before department isolation, keyed by item id
    /// alone: (that key, the item). The monitor rewrites them under their new key.
    pub legacy: Vec<(Vec<u8>, ItemRef)>,
    /// The alert updates to publish again: the outboxes of the restored items, unless the
    /// partition's last record is a clean hand-over.
    pub outbox: Vec<jiancha_proto::v1::Alert>,
}

/// Reads partition `p` of the changelog from the beginning to its high watermark into
/// `engine`.
pub fn read_changelog(p: i32, config: &Config, engine: &mut Engine, timers: &mut TimerQueue) -> Result<Restored, MonitorError> {
    let consumer: BaseConsumer = jiancha_platform::kafka::consumer(config)
        .set("group.id", format!("{}-restore", config.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(kafka("restore consumer"))?;
    let topic = &config.topics.state;
    let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).map_err(kafka("changelog watermarks"))?;
    if high <= low {
        return Ok(Restored::default());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(kafka("changelog assign"))?;
    consumer.assign(&tpl).map_err(kafka("changelog assign"))?;
    // The last record of each key; a tombstone removes the key.
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut clean = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => {
                clean = msg.key() == Some(jiancha_proto::HANDOVER_KEY);
                match (msg.key(), msg.payload()) {
                    (Some(key), _) if key == jiancha_proto::HANDOVER_KEY => {}
                    (Some(key), Some(value)) => {
                        latest.insert(key.to_vec(), value.to_vec());
                    }
                    (Some(key), None) => {
                        latest.remove(key);
                    }
                    _ => {}
                }
                if msg.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(kafka("reading changelog")(e)),
            None if Instant::now() > deadline => {
                return Err(MonitorError::Restore {
                    partition: p,
                    message: "the changelog did not reach its end within 10 minutes".into(),
                });
            }
            None => {}
        }
    }
    debug!(partition = p, low, high, records = latest.len(), "Changelog read");
    let mut states = Vec::with_capacity(latest.len());
    let mut outbox = Vec::new();
    for (key, value) in latest {
        if !clean {
            outbox.extend(jiancha_proto::v1::ItemState::decode(value.as_slice()).map(|s| s.outbox).unwrap_or_default());
        }
        let state = jiancha_proto::decode_state(&value).map_err(|e| MonitorError::Restore { partition: p, message: e.to_string() })?;
        let legacy = key != jiancha_proto::state_key(&state.department_code, &state.item_id);
        states.push((legacy, key, state));
    }
    // Records under old keys first, so that a record of the same item under its new key
    // (written later, so newer) is the one that stays.
    states.sort_by_key(|(legacy, _, _)| !legacy);
    let mut effects = Vec::new();
    let mut restored = Restored { items: 0, legacy: Vec::new(), outbox };
    for (legacy, key, state) in &states {
        let item = engine.import(state, &mut effects);
        if *legacy {
            restored.legacy.push((key.clone(), item));
        }
    }
    restored.items = engine.len();
    for e in &effects {
        timers.record(e);
    }
    Ok(restored)
}

fn fire_due(pe: &mut PartitionEngine, now: i64, effects: &mut Vec<Effect>) {
    // Read once a timer raises an alert: the loop calls this before every record.
    let mut wall = None;
    while let Some((item, at)) = pe.timers.pop_due(Timestamp(now), &pe.engine) {
        let before = effects.len();
        pe.engine.fire(item, at, effects);
        if effects[before..].iter().any(|e| matches!(e, Effect::Alert(_))) {
            let wall = *wall.get_or_insert_with(|| jiancha_platform::wall_clock().0);
            metrics::histogram!(m::TIMER_LATENESS).record(((wall - at.0).max(0)) as f64 / 1000.0);
        }
        // Timers set by this firing that are already due are popped by the loop.
        for e in &effects[before..] {
            pe.timers.record(e);
        }
    }
    pe.timers.compact(&pe.engine);
}

/// Notes the effects for the next commit: the alert updates and the changed items
/// (exported once when the commit starts), the retired items' tombstones. Records timers.
fn carry_out(p: i32, pe: &mut PartitionEngine, effects: &mut Vec<Effect>) {
    for effect in effects.drain(..) {
        match effect {
            Effect::Alert(alert) => {
                metrics::counter!(m::ALERTS, "kind" => alert.kind.as_str(), "level" => alert.level.as_str(), "status" => alert.status.as_str())
                    .increment(1);
                pe.updates.push(*alert);
            }
            Effect::ItemChanged { item } => {
                pe.changed.insert(item);
            }
            Effect::ItemRetired { department_code, item_id } => {
                pe.retired.push(jiancha_proto::state_key(&department_code, &item_id));
            }
            Effect::ItemIdShared { item, other_department } => {
                metrics::counter!(m::ITEM_ID_SHARED).increment(1);
                if let Some(state) = pe.engine.export(item) {
                    warn!(partition = p, item = %state.item_id, department = %state.department_code, other_department = %other_department,
                        "Two departments use the same item_id; their items are kept apart and no alert is raised for it");
                }
            }
            other => pe.timers.record(&other),
        }
    }
}

/// The producer of the monitor's effects: each record carries the [`Tally`] of the
/// step that waits for it.
type EffectProducer = ThreadedProducer<Acknowledgements>;

/// Counts each acknowledgement (or failure) into the record's [`Tally`]: a commit's step
/// waits for its count to reach zero, woken once, instead of holding a future (and a
/// channel) for every record.
struct Acknowledgements;

impl ClientContext for Acknowledgements {}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Arc<Tally>;

    fn delivery(&self, result: &DeliveryResult<'_>, tally: Arc<Tally>) {
        tally.acknowledged(result.as_ref().err().map(|(e, _)| e.clone()));
    }
}

/// The acknowledgements one step of a commit waits for: the records handed to the
/// producer with it and not yet acknowledged, and the first failure.
#[derive(Default)]
struct Tally {
    outstanding: AtomicUsize,
    failure: Mutex<Option<KafkaError>>,
    settled: tokio::sync::Notify,
}

impl Tally {
    /// A record about to be handed to the producer.
    fn add(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// A record acknowledged, or failed (it was not written, or given up).
    fn acknowledged(&self, failure: Option<KafkaError>) {
        if let Some(e) = failure {
            self.failure.lock().expect("tally").get_or_insert(e);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit when the step is not waiting yet.
            self.settled.notify_one();
        }
    }

    /// Waits until every record counted is acknowledged; the first failure, if any.
    async fn settled(&self) -> Result<(), MonitorError> {
        while self.outstanding.load(Ordering::Acquire) > 0 {
            self.settled.notified().await;
        }
        match self.failure.lock().expect("tally").take() {
            None => Ok(()),
            Some(e) => Err(kafka("effect delivery")(e)),
        }
    }
}

/// Hands a record to the producer, counted in its tally; waits while the producer's
/// queue is full.
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &EffectProducer,
    record: BaseRecord<'_, K, P, Arc<Tally>>,
) -> Result<(), MonitorError> {
    let mut record = record;
    record.delivery_opaque.add();
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, back)) => {
                back.delivery_opaque.acknowledged(None);
                return Err(kafka("produce")(e));
            }
        }
    }
}

/// A commit being delivered in the background while the loop goes on consuming.
struct InFlight {
    delivery: tokio::task::JoinHandle<Result<(), MonitorError>>,
    /// Timestamp of its oldest record.
    oldest: Option<i64>,
}

/// Delivers a started commit: sends its changelog records (their outboxes appended), waits for them
/// (and the dead letters and republished updates before them) to be acknowledged, then
/// encodes and sends its alert updates and waits for them. The loop commits its offsets
/// after.
async fn deliver(
    producer: Arc<EffectProducer>,
    shared: Arc<Handing>,
    topics: jiancha_platform::config::Topics,
    first: Arc<Tally>,
) -> Result<(), MonitorError> {
    shared.hand_over(|s| std::mem::take(&mut s.staged_changelog), |records| write_changelog(&producer, &topics.state, records, &first))?;
    first.settled().await?;
    // A revocation meanwhile sent them itself, after the changelog records.
    let then = Arc::new(Tally::default());
    shared.hand_over(|s| std::mem::take(&mut s.staged_alerts), |alerts| publish_alerts(&producer, &topics.alerts, alerts, &then))?;
    then.settled().await
}

/// Commits the offsets of a delivered commit (those a revocation has not committed
/// already), without waiting for the broker's answer: a lost offset commit only means
/// records processed again, whose effects are idempotent.
fn commit_offsets(consumer: &BaseConsumer<MonitorContext>, shared: &Handing, mode: CommitMode) -> Result<(), MonitorError> {
    let offsets = std::mem::take(&mut shared.lock().committing);
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, p), o) in &offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o)).map_err(kafka("commit list"))?;
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => debug!(partitions = offsets.len(), "Offsets committed"),
        Err(e) => warn!(error = %e, "Offset commit failed; uncommitted records will be reprocessed (effects are idempotent)"),
    }
    Ok(())
}

/// Waits for a started commit, then commits its offsets.
async fn finish(
    consumer: &BaseConsumer<MonitorContext>,
    shared: &Handing,
    in_flight: InFlight,
    mode: CommitMode,
) -> Result<(), MonitorError> {
    in_flight.delivery.await.map_err(|e| MonitorError::Delivery(e.to_string()))??;
    settled(consumer, shared, in_flight.oldest, mode)
}

/// After a commit's effects were acknowledged: its offsets, and its end-to-end latency.
fn settled(consumer: &BaseConsumer<MonitorContext>, shared: &Handing, oldest: Option<i64>, mode: CommitMode) -> Result<(), MonitorError> {
    if let Some(ts) = oldest {
        metrics::histogram!(m::END_TO_END).record(((jiancha_platform::wall_clock().0 - ts).max(0)) as f64 / 1000.0);
    }
    commit_offsets(consumer, shared, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;

    /// A commit's batch: one record per key, each changed item's alert updates in its
    /// own outbox after those a restore's rewrite carried under the same key, and a
    /// tombstone replaced by the state of an item changed under its key.
    #[test]
    fn a_batch_holds_one_record_per_key_with_each_item_s_updates_in_its_outbox() {
        let calendars = Calendars::builtin();
        let catalog = Catalog::from_toml(include_str!("../../../deploy/demo/catalog.toml"), &calendars).expect("demo catalog");
        let mut pe = PartitionEngine::new(Engine::new(Arc::new(catalog), calendars), TimerQueue::default());
        let mut effects = Vec::new();
        let mut apply = |pe: &mut PartitionEngine, line: &str| {
            let event = jiancha_core::parse_json_event(line.as_bytes()).expect("valid").event;
            let at = event.occurred_at;
            pe.engine.apply(&event, at, at, &mut effects);
            carry_out(0, pe, &mut effects);
        };
        let event = |item: &str, n: u32, ty: &str, extra: &str| {
            format!(
                r#"{{"event_id":"{item}-{n}","item_id":"{item}","department_code":"SCJG","type":"{ty}","occurred_at":"2025-03-03T0{n}:00:00+08:00","actor":"王伟"{extra}}}"#
            )
        };
        apply(&mut pe, &event("A", 1, "SUBMITTED", r#","service_code":"SCJG-001""#));
        // A blank reason raises an alert at once.
        apply(&mut pe, &event("A", 2, "NOT_ACCEPTED", r#","reason":" ""#));
        apply(&mut pe, &event("B", 1, "SUBMITTED", r#","service_code":"SCJG-001""#));
        let updates: Vec<String> = pe.updates.iter().map(|a| a.alert_id.clone()).collect();
        assert!(!updates.is_empty(), "the blank reason raised an alert");
        let key = |item: &str| jiancha_proto::state_key("SCJG", item);
        let earlier = jiancha_proto::v1::Alert { alert_id: "restored-earlier".into(), ..Default::default() };
        let mut shared = Shared::default();
        shared
            .changelog
            .insert(key("A"), Pending { partition: 0, state: Some(StateRecord { state: b"old".to_vec(), outbox: vec![earlier.clone()] }) });
        shared.changelog.insert(key("D"), Pending { partition: 0, state: None });
        // A rewrite no change replaces goes as it is, its outbox after its state.
        let c = jiancha_proto::v1::ItemState { item_id: "C".into(), department_code: "SCJG".into(), ..Default::default() };
        shared.changelog.insert(
            key("C"),
            Pending { partition: 0, state: Some(StateRecord { state: c.encode_to_vec(), outbox: vec![earlier.clone()] }) },
        );
        pe.retired.push(key("B"));
        shared.engines.insert(0, pe);

        let a_state = jiancha_proto::v1::ItemState::from(
            shared.engines[&0].engine.export(shared.engines[&0].engine.find("SCJG", "A").expect("A")).expect("A"),
        );
        let batch = shared.take_batch();
        let mut keys: Vec<&[u8]> = batch.changelog.iter().map(|(_, k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, vec![&key("A")[..], &key("B"), &key("C"), &key("D")], "one record per key");
        assert!(batch.changelog.iter().all(|(p, _, _)| p == 0), "each on its partition");
        let record = |k: &[u8]| {
            let value = batch.changelog.iter().find(|(_, key, _)| *key == k).expect("a record").2;
            value.map(|v| jiancha_proto::v1::ItemState::decode(v).expect("an item state"))
        };
        let a = record(&key("A")).expect("A's state");
        let outbox: Vec<&str> = a.outbox.iter().map(|u| u.alert_id.as_str()).collect();
        let mut expected = vec!["restored-earlier"];
        expected.extend(updates.iter().map(String::as_str));
        assert_eq!(outbox, expected, "the rewrite's outbox first, then A's own updates");
        assert_eq!(
            jiancha_proto::v1::ItemState { outbox: Vec::new(), ..a },
            a_state,
            "the restored rewrite is replaced by the item's state"
        );
        let b = record(&key("B")).expect("B's state replaces its tombstone");
        assert_eq!(b.item_id, "B");
        assert!(b.outbox.is_empty(), "B raised nothing");
        assert!(record(&key("D")).is_none(), "D's tombstone is kept");
        assert_eq!(record(&key("C")), Some(jiancha_proto::v1::ItemState { outbox: vec![earlier], ..c }), "C's rewrite is kept");
        let published: Vec<&str> = batch.alerts.iter().map(|u| u.alert_id.as_str()).collect();
        assert_eq!(published, updates.iter().map(String::as_str).collect::<Vec<_>>(), "every update published, in order");
    }

    #[test]
    fn a_slot_keeps_the_text_buffers_of_small_records_only() {
        let mut slot = Received::blank();
        slot.reuse(200);
        slot.event.event.item_id = "SCJG-20250303-000001".into();
        slot.reuse(200);
        assert_eq!(slot.event.event.item_id, "SCJG-20250303-000001", "a small record's buffers are kept for the next");
        slot.reuse(KEPT_SLOT_BYTES + 1);
        slot.event.event.actor = Some("王".repeat(4096));
        slot.reuse(200);
        assert_eq!(slot.event.event.actor, None, "a large record's event is dropped");
        assert_eq!(slot.event.event.item_id.capacity(), 0);
    }

    #[test]
    fn a_commit_starts_at_a_thousand_records_once_caught_up_or_after_the_interval() {
        assert!(!commit_due(0, true, true), "nothing to commit");
        assert!(!commit_due(999, false, false), "records still waiting, within the interval");
        assert!(commit_due(1000, false, false));
        assert!(commit_due(1, true, false), "every record read is applied");
        assert!(commit_due(1, false, true), "the interval has passed");
    }

    #[test]
    fn the_consumed_counters_are_indexed_by_event_type() {
        // `Processor::consumed` holds one counter per type, in `EventType::ALL`'s order.
        for (i, t) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn a_batch_keeps_each_key_and_value_at_its_span() {
        let mut bytes = Vec::new();
        let key = Span::of(b"item-1", &mut bytes);
        let empty = Span::of(b"", &mut bytes);
        let payload = Span::of(b"{\"a\":1}", &mut bytes);
        assert_eq!(key.of_batch(&bytes), b"item-1");
        assert_eq!(empty.of_batch(&bytes), b"");
        assert_eq!(payload.of_batch(&bytes), b"{\"a\":1}");
    }

    #[test]
    fn a_tally_settles_once_every_record_is_acknowledged_and_keeps_the_first_failure() {
        let tally = Arc::new(Tally::default());
        assert!(tally.settled().now_or_never().expect("nothing outstanding").is_ok());
        tally.add();
        tally.add();
        tally.acknowledged(None);
        assert!(tally.settled().now_or_never().is_none(), "one record is still outstanding");
        tally.acknowledged(None);
        assert!(tally.settled().now_or_never().expect("all acknowledged").is_ok());

        let failed = Arc::new(Tally::default());
        for _ in 0..3 {
            failed.add();
        }
        failed.acknowledged(Some(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        failed.acknowledged(Some(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(failed.settled().now_or_never().is_none());
        failed.acknowledged(None);
        match failed.settled().now_or_never().expect("all answered") {
            Err(MonitorError::Kafka(KafkaFailure { source, .. })) => {
                assert_eq!(source, KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))
            }
            other => panic!("expected the first failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_step_waiting_on_its_tally_wakes_when_the_last_acknowledgement_arrives_from_another_thread() {
        let tally = Arc::new(Tally::default());
        for _ in 0..1000 {
            tally.add();
        }
        let acks = tally.clone();
        let acknowledging = std::thread::spawn(move || {
            for _ in 0..1000 {
                acks.acknowledged(None);
            }
        });
        tokio::time::timeout(Duration::from_secs(30), tally.settled()).await.expect("woken").expect("no failure");
        assert_eq!(tally.outstanding.load(Ordering::Acquire), 0);
        acknowledging.join().expect("thread");
    }
}
