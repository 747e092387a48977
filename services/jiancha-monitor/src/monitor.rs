//! The live monitor: one engine per assigned partition of the event topic, driven by
//! the same core code as `jiancha replay`.
//!
//! Delivery: at-least-once processing with idempotent effects. For each record the
//! engine's effects — alert updates, and the item's new state for the changelog — are
//! handed to an idempotent producer; offsets are committed only after every effect of
//! the records before them is acknowledged by the broker. A crash replays at most the
//! uncommitted records, which the restored state recognises as duplicates or which
//! produce the same alert updates under the same deterministic ids.

use crate::codec;
use crate::config::MonitorConfig;
use crate::telemetry as m;
use futures::future::join_all;
use jiancha_core::{Calendar, Calendars, Catalog, Effect, Engine, ItemRef, TimerQueue, Timestamp};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Why the monitor stopped.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The catalog or a calendar is invalid.
    #[error("{0}")]
    Catalog(String),
    /// Kafka refused an operation.
    #[error("kafka ({context}): {source}")]
    Kafka {
        /// What the monitor was doing.
        context: &'static str,
        /// The client's error.
        source: KafkaError,
    },
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
    move |source| MonitorError::Kafka { context, source }
}

/// Loads the catalog (the demo one when none is configured) and the built-in calendars
/// plus `calendar_files`; every error names the file. Shared by every subcommand.
pub fn load_rules(catalog: Option<&PathBuf>, calendar_files: &[PathBuf]) -> Result<(Arc<Catalog>, Calendars), MonitorError> {
    let mut calendars = Calendars::builtin();
    for file in calendar_files {
        let text = std::fs::read_to_string(file).map_err(|e| MonitorError::Catalog(format!("calendar {}: {e}", file.display())))?;
        calendars.insert(Calendar::from_toml(&text).map_err(|e| MonitorError::Catalog(format!("calendar {}: {e}", file.display())))?);
    }
    let (text, source) = match catalog {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| MonitorError::Catalog(format!("catalog {}: {e}", path.display())))?,
            path.display().to_string(),
        ),
        None => (crate::DEMO_CATALOG.to_owned(), "deploy/demo/catalog.toml (built in)".to_owned()),
    };
    let catalog = Catalog::from_toml(&text, &calendars).map_err(|e| MonitorError::Catalog(format!("catalog {source}: {e}")))?;
    Ok((Arc::new(catalog), calendars))
}

/// Creates the monitor's topics when absent (the changelog compacted).
pub async fn ensure_topics(config: &MonitorConfig) -> Result<(), MonitorError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &config.kafka_bootstrap).create().map_err(kafka("admin client"))?;
    let t = &config.topics;
    let r = || TopicReplication::Fixed(config.replication);
    let topics = [
        NewTopic::new(&t.events, config.partitions, r()),
        NewTopic::new(&t.alerts, config.partitions, r()),
        NewTopic::new(&t.dead_letter, config.partitions, r()),
        NewTopic::new(&t.state, config.partitions, r()).set("cleanup.policy", "compact"),
    ];
    // Nothing to create when every topic exists (the usual case after the first start).
    let names = [&t.events, &t.alerts, &t.dead_letter, &t.state];
    if let Ok(metadata) = admin.inner().fetch_metadata(None, Duration::from_secs(10))
        && names
            .iter()
            .all(|n| metadata.topics().iter().any(|t| t.name() == n.as_str() && t.error().is_none() && !t.partitions().is_empty()))
    {
        return Ok(());
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(15)));
    let results = match admin.create_topics(&topics, &options).await {
        Ok(results) => results,
        Err(e) => {
            // Some brokers (the embedded mock) do not serve CreateTopics: go on if the topics exist.
            let names = [&t.events, &t.alerts, &t.dead_letter, &t.state];
            let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).map_err(kafka("topic metadata"))?;
            let missing: Vec<&String> =
                names.into_iter().filter(|n| !metadata.topics().iter().any(|t| t.name() == n.as_str() && t.error().is_none())).collect();
            if !missing.is_empty() {
                return Err(MonitorError::Kafka { context: "create topics", source: e });
            }
            warn!(error = %e, "Could not create topics; they exist, going on");
            return Ok(());
        }
    };
    for result in results {
        match result {
            Ok(name) => info!(topic = %name, partitions = config.partitions, "Created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(MonitorError::Kafka { context: "create topic", source: KafkaError::AdminOp(code) })
                    .inspect_err(|_| error!(topic = %name, "Topic creation failed"));
            }
        }
    }
    Ok(())
}

/// What the consumer's callbacks share with the processing loop.
#[derive(Default)]
struct Shared {
    /// Next offset to commit per partition: every record before it was processed and its effects handed to the producer.
    processed: HashMap<i32, i64>,
    /// Partitions assigned since the loop last looked.
    assigned: Vec<i32>,
    /// Partitions revoked since the loop last looked.
    revoked: Vec<i32>,
    /// Consumer lag per partition, from the client's statistics.
    lag: HashMap<i32, i64>,
}

struct MonitorContext {
    shared: Arc<Mutex<Shared>>,
    producer: FutureProducer,
    events_topic: String,
}

impl ClientContext for MonitorContext {
    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.events_topic) else { return };
        let mut shared = self.shared.lock().expect("shared state");
        for (id, p) in &topic.partitions {
            if *id >= 0 && p.consumer_lag >= 0 {
                shared.lag.insert(*id, p.consumer_lag);
                metrics::gauge!(m::CONSUMER_LAG, "partition" => id.to_string()).set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for MonitorContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Hand over cleanly: every effect acknowledged, then the offsets committed,
            // so the next owner restores a changelog that holds everything committed.
            if let Err(e) = self.producer.flush(Duration::from_secs(60)) {
                warn!(error = %e, "Flush before revoke failed; the next owner will reprocess");
            }
            let mut shared = self.shared.lock().expect("shared state");
            let mut commit = TopicPartitionList::new();
            for el in list.elements() {
                if let Some(next) = shared.processed.remove(&el.partition()) {
                    let _ = commit.add_partition_offset(el.topic(), el.partition(), Offset::Offset(next));
                }
                shared.revoked.push(el.partition());
                shared.lag.remove(&el.partition());
            }
            if commit.count() > 0
                && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
            {
                warn!(error = %e, "Commit on revoke failed; the next owner will reprocess");
            }
            info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "Partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut shared = self.shared.lock().expect("shared state");
            for el in list.elements() {
                shared.assigned.push(el.partition());
            }
            info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "Partitions assigned");
        }
    }
}

/// One partition's engine and its timers.
struct PartitionEngine {
    engine: Engine,
    timers: TimerQueue,
    /// Timestamp of the latest record consumed.
    last_record: Option<i64>,
}

/// The processing loop's working state: the engines of the partitions this instance
/// owns, and the effects handed to the producer but not yet acknowledged.
struct Processor {
    config: MonitorConfig,
    producer: FutureProducer,
    shared: Arc<Mutex<Shared>>,
    partitions: HashMap<i32, PartitionEngine>,
    effects: Vec<Effect>,
    pending: Vec<DeliveryFuture>,
    grace_ms: i64,
}

impl Processor {
    /// Applies one record: an event to its partition's engine, or a dead letter.
    fn process(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), MonitorError> {
        let Processor { config, producer, shared, partitions, effects, pending, grace_ms } = self;
        let (config, producer, shared, grace_ms) = (&*config, &*producer, &**shared, *grace_ms);
        let p = msg.partition();
        let started = Instant::now();
        let content_type =
            msg.headers().and_then(|h| h.iter().find(|h| h.key.eq_ignore_ascii_case(codec::CONTENT_TYPE)).and_then(|h| h.value));
        let record_ts = msg.timestamp().to_millis().unwrap_or_else(|| crate::wall_clock().0);
        match codec::decode(content_type, msg.payload(), config.max_record_bytes) {
            Err(bad) => {
                metrics::counter!(m::EVENTS_INVALID, "reason" => bad.reason.as_str()).increment(1);
                warn!(partition = p, offset = msg.offset(), reason = bad.reason.as_str(), message = %bad.message, "Invalid record sent to the dead-letter topic");
                let headers = OwnedHeaders::new()
                    .insert(Header { key: "jiancha.reason", value: Some(bad.reason.as_str()) })
                    .insert(Header { key: "jiancha.message", value: Some(&bad.message) })
                    .insert(Header { key: "jiancha.field", value: bad.field })
                    .insert(Header { key: "jiancha.source.topic", value: Some(msg.topic()) })
                    .insert(Header { key: "jiancha.source.partition", value: Some(&p.to_string()) })
                    .insert(Header { key: "jiancha.source.offset", value: Some(&msg.offset().to_string()) });
                let mut record = FutureRecord::<[u8], [u8]>::to(&config.topics.dead_letter).headers(headers).timestamp(record_ts);
                if let Some(key) = msg.key() {
                    record = record.key(key);
                }
                if let Some(payload) = msg.payload() {
                    record = record.payload(payload);
                }
                pending.push(send(producer, record)?);
            }
            Ok(event) => {
                let pe = partitions.get_mut(&p).expect("restored before processing");
                pe.last_record = Some(pe.last_record.map_or(record_ts, |t| t.max(record_ts)));
                let now = clock_of(shared, p, pe, config, grace_ms).unwrap_or(record_ts);
                // Timers due by now fire before the event is applied.
                fire_due(pe, now, effects);
                metrics::counter!(m::EVENTS_CONSUMED, "type" => event.event_type().as_str()).increment(1);
                let applied = pe.engine.apply(&event, Timestamp(record_ts), Timestamp(now), effects);
                debug!(partition = p, offset = msg.offset(), item = %event.item_id, event = %event.event_id, ?applied, now, "Event");
                if applied == jiancha_core::Applied::Duplicate {
                    metrics::counter!(m::EVENTS_DUPLICATE).increment(1);
                }
                carry_out(p, config, producer, pe, effects, pending)?;
            }
        }
        shared.lock().expect("shared state").processed.insert(p, msg.offset() + 1);
        metrics::histogram!(m::PROCESSING).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Fires every timer due on each partition's clock.
    fn fire_timers(&mut self) -> Result<(), MonitorError> {
        let Processor { config, producer, shared, partitions, effects, pending, grace_ms } = self;
        let (config, producer, shared, grace_ms) = (&*config, &*producer, &**shared, *grace_ms);
        for (p, pe) in partitions.iter_mut() {
            if let Some(now) = clock_of(shared, *p, pe, config, grace_ms) {
                fire_due(pe, now, effects);
                carry_out(*p, config, producer, pe, effects, pending)?;
            }
        }
        Ok(())
    }

    /// A new catalog and calendars: every partition's open items recomputed.
    fn replace_rules(&mut self, catalog: &Arc<Catalog>, calendars: &Calendars) -> Result<(), MonitorError> {
        let Processor { config, producer, shared, partitions, effects, pending, grace_ms } = self;
        for (p, pe) in partitions.iter_mut() {
            let now = Timestamp(clock_of(shared, *p, pe, config, *grace_ms).unwrap_or(crate::wall_clock().0));
            pe.engine.replace_calendars(calendars.clone(), now, effects);
            pe.engine.replace_catalog(catalog.clone(), now, effects);
            carry_out(*p, config, producer, pe, effects, pending)?;
        }
        Ok(())
    }
}

/// The monitor, running until `shutdown` turns true.
pub async fn run(config: MonitorConfig, mut shutdown: watch::Receiver<bool>) -> Result<(), MonitorError> {
    config.validate()?;
    let (mut catalog, mut calendars) = load_rules(config.catalog.as_ref(), &config.calendar_files())?;
    ensure_topics(&config).await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "600000")
        .create()
        .map_err(kafka("producer"))?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let context = MonitorContext { shared: shared.clone(), producer: producer.clone(), events_topic: config.topics.events.clone() };
    let mut consumer_config = ClientConfig::new();
    if let Some(id) = &config.group_instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let consumer: StreamConsumer<MonitorContext> = consumer_config
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", config.rebalance().as_millis().max(10_000).to_string())
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(context)
        .map_err(kafka("consumer"))?;
    consumer.subscribe(&[&config.topics.events]).map_err(kafka("subscribe"))?;
    info!(bootstrap = %config.kafka_bootstrap, group = %config.group_id, topic = %config.topics.events, "Monitor started");

    let mut pr = Processor {
        config: config.clone(),
        producer: producer.clone(),
        shared: shared.clone(),
        partitions: HashMap::new(),
        effects: Vec::new(),
        pending: Vec::new(),
        grace_ms: config.grace().as_millis() as i64,
    };
    let mut oldest_pending: Option<i64> = None;
    let mut last_commit = Instant::now();
    let mut last_reload_check = Instant::now();
    let mut watched = file_stamps(&config);
    let mut tick = tokio::time::interval(Duration::from_millis(100));

    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            received = consumer.recv() => {
                let msg = match received {
                    Ok(msg) => msg,
                    Err(e) => {
                        warn!(error = %e, "Consume error; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                take_rebalances(&shared, &mut pr.partitions, &config, &catalog, &calendars)?;
                let p = msg.partition();
                if !pr.partitions.contains_key(&p) {
                    restore_partition(p, &mut pr.partitions, &config, &catalog, &calendars)?;
                }
                pr.process(&msg)?;
                if let Some(ts) = msg.timestamp().to_millis() {
                    oldest_pending.get_or_insert(ts);
                }
                if pr.pending.len() >= 5000 {
                    commit(&consumer, &config, &shared, &mut pr.pending, &mut oldest_pending).await?;
                    last_commit = Instant::now();
                }
            }
            _ = tick.tick() => {
                take_rebalances(&shared, &mut pr.partitions, &config, &catalog, &calendars)?;
                pr.fire_timers()?;
                if last_commit.elapsed() >= config.commit() {
                    commit(&consumer, &config, &shared, &mut pr.pending, &mut oldest_pending).await?;
                    last_commit = Instant::now();
                }
                if last_reload_check.elapsed() >= config.reload() {
                    last_reload_check = Instant::now();
                    let stamps = file_stamps(&config);
                    if stamps != watched {
                        watched = stamps;
                        match load_rules(config.catalog.as_ref(), &config.calendar_files()) {
                            Ok((new_catalog, new_calendars)) => {
                                catalog = new_catalog;
                                calendars = new_calendars;
                                pr.replace_rules(&catalog, &calendars)?;
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
                let (open, items) = pr.partitions.values().fold((0, 0), |(o, i), pe| (o + pe.engine.open_items(), i + pe.engine.len()));
                metrics::gauge!(m::OPEN_ITEMS).set(open as f64);
                metrics::gauge!(m::ITEMS).set(items as f64);
            }
        }
    }
    info!("Shutting down: flushing effects and committing offsets");
    commit(&consumer, &config, &shared, &mut pr.pending, &mut oldest_pending).await?;
    producer.flush(Duration::from_secs(30)).map_err(kafka("flush"))?;
    consumer.unsubscribe();
    info!("Monitor stopped");
    Ok(())
}

/// The partition's clock: the wall clock (less the grace) once caught up; while catching
/// up on a backlog, the timestamp of the records it consumes (DOMAIN §5, the live clock).
fn clock_of(shared: &Mutex<Shared>, p: i32, pe: &PartitionEngine, config: &MonitorConfig, grace_ms: i64) -> Option<i64> {
    let lag = shared.lock().expect("shared state").lag.get(&p).copied();
    match lag {
        Some(lag) if lag <= config.catch_up_lag => Some(crate::wall_clock().0 - grace_ms),
        _ => pe.last_record,
    }
}

fn file_stamps(config: &MonitorConfig) -> Vec<(PathBuf, Option<SystemTime>)> {
    config
        .catalog
        .iter()
        .cloned()
        .chain(config.calendar_files())
        .map(|f| (f.clone(), std::fs::metadata(&f).and_then(|m| m.modified()).ok()))
        .collect()
}

fn take_rebalances(
    shared: &Mutex<Shared>,
    partitions: &mut HashMap<i32, PartitionEngine>,
    config: &MonitorConfig,
    catalog: &Arc<Catalog>,
    calendars: &Calendars,
) -> Result<(), MonitorError> {
    let (assigned, revoked) = {
        let mut s = shared.lock().expect("shared state");
        (std::mem::take(&mut s.assigned), std::mem::take(&mut s.revoked))
    };
    for p in revoked {
        partitions.remove(&p);
    }
    for p in assigned {
        if !partitions.contains_key(&p) {
            restore_partition(p, partitions, config, catalog, calendars)?;
        }
    }
    Ok(())
}

/// Rebuilds a partition's open items from the changelog (read to its end).
fn restore_partition(
    p: i32,
    partitions: &mut HashMap<i32, PartitionEngine>,
    config: &MonitorConfig,
    catalog: &Arc<Catalog>,
    calendars: &Calendars,
) -> Result<(), MonitorError> {
    let started = Instant::now();
    let mut engine = Engine::new(catalog.clone(), calendars.clone());
    let mut timers = TimerQueue::default();
    let restored = read_changelog(p, config, &mut engine, &mut timers)?;
    let took = started.elapsed();
    metrics::histogram!(m::RESTORE).record(took.as_secs_f64());
    metrics::counter!(m::RESTORED_ITEMS).increment(restored as u64);
    info!(partition = p, items = restored, seconds = took.as_secs_f64(), "Partition restored from the changelog");
    partitions.insert(p, PartitionEngine { engine, timers, last_record: None });
    Ok(())
}

/// Reads partition `p` of the changelog from the beginning to its high watermark into
/// `engine`; returns how many items were restored.
pub fn read_changelog(p: i32, config: &MonitorConfig, engine: &mut Engine, timers: &mut TimerQueue) -> Result<usize, MonitorError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", format!("{}-restore", config.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(kafka("restore consumer"))?;
    let topic = &config.topics.state;
    let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).map_err(kafka("changelog watermarks"))?;
    if high <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(kafka("changelog assign"))?;
    consumer.assign(&tpl).map_err(kafka("changelog assign"))?;
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => {
                if let (Some(key), Some(value)) = (msg.key(), msg.payload()) {
                    latest.insert(key.to_vec(), value.to_vec());
                }
                if msg.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(MonitorError::Kafka { context: "reading changelog", source: e }),
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
    let mut effects = Vec::new();
    for value in latest.values() {
        let state = jiancha_proto::decode_state(value).map_err(|e| MonitorError::Restore { partition: p, message: e.to_string() })?;
        engine.import(&state, &mut effects);
    }
    for e in &effects {
        timers.record(e);
    }
    Ok(latest.len())
}

fn fire_due(pe: &mut PartitionEngine, now: i64, effects: &mut Vec<Effect>) {
    let wall = crate::wall_clock().0;
    while let Some((item, at)) = pe.timers.pop_due(Timestamp(now)) {
        let before = effects.len();
        pe.engine.fire(item, at, effects);
        if effects[before..].iter().any(|e| matches!(e, Effect::Alert(_))) {
            metrics::histogram!(m::TIMER_LATENESS).record(((wall - at.0).max(0)) as f64 / 1000.0);
        }
        // Timers set by this firing that are already due are popped by the loop.
        for e in &effects[before..] {
            pe.timers.record(e);
        }
    }
    pe.timers.compact(&pe.engine);
}

/// Publishes alert updates and changed item states; records timers.
fn carry_out(
    p: i32,
    config: &MonitorConfig,
    producer: &FutureProducer,
    pe: &mut PartitionEngine,
    effects: &mut Vec<Effect>,
    pending: &mut Vec<DeliveryFuture>,
) -> Result<(), MonitorError> {
    let mut changed: Vec<ItemRef> = Vec::new();
    for effect in effects.drain(..) {
        match effect {
            Effect::Alert(alert) => {
                metrics::counter!(m::ALERTS, "kind" => alert.kind.as_str(), "level" => alert.level.as_str(), "status" => alert.status.as_str())
                    .increment(1);
                let bytes = jiancha_proto::v1::Alert::from(alert.as_ref()).encode_to_vec();
                let headers = OwnedHeaders::new().insert(Header { key: codec::CONTENT_TYPE, value: Some(codec::PROTOBUF) });
                let record = FutureRecord::to(&config.topics.alerts).key(alert.alert_id.as_bytes()).payload(&bytes).headers(headers);
                pending.push(send(producer, record)?);
            }
            Effect::ItemChanged { item } => {
                if !changed.contains(&item) {
                    changed.push(item);
                }
            }
            other => pe.timers.record(&other),
        }
    }
    for item in changed {
        if let Some(state) = pe.engine.export(item) {
            let bytes = jiancha_proto::v1::ItemState::from(&state).encode_to_vec();
            let record = FutureRecord::to(&config.topics.state).partition(p).key(state.item_id.as_bytes()).payload(&bytes);
            pending.push(send(producer, record)?);
        }
    }
    Ok(())
}

fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &FutureProducer,
    record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, MonitorError> {
    let mut record = record;
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(MonitorError::Kafka { context: "produce", source: e }),
        }
    }
}

/// Waits for every pending effect to be acknowledged, then commits the processed offsets.
async fn commit(
    consumer: &StreamConsumer<MonitorContext>,
    config: &MonitorConfig,
    shared: &Mutex<Shared>,
    pending: &mut Vec<DeliveryFuture>,
    oldest_pending: &mut Option<i64>,
) -> Result<(), MonitorError> {
    let offsets: Vec<(i32, i64)> = shared.lock().expect("shared state").processed.iter().map(|(p, o)| (*p, *o)).collect();
    for result in join_all(pending.drain(..)).await {
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(MonitorError::Kafka { context: "effect delivery", source: e }),
            Err(_) => return Err(MonitorError::Kafka { context: "effect delivery", source: KafkaError::Canceled }),
        }
    }
    if let Some(ts) = oldest_pending.take() {
        metrics::histogram!(m::END_TO_END).record(((crate::wall_clock().0 - ts).max(0)) as f64 / 1000.0);
    }
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &offsets {
        tpl.add_partition_offset(&config.topics.events, *p, Offset::Offset(*o)).map_err(kafka("commit list"))?;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => debug!(partitions = offsets.len(), "Offsets committed"),
        // During a rebalance the revoke callback has already committed what we own.
        Err(e) => warn!(error = %e, "Offset commit failed; uncommitted records will be reprocessed (effects are idempotent)"),
    }
    Ok(())
}
