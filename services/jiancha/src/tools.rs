//! The tools a department's IT team and an operator reach for first: publish an events
//! file, and print the alert topic.

use jiancha_core::event::parse_json_event;
use jiancha_platform::codec;
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// What `produce` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Produced {
    /// Records acknowledged by the broker.
    pub sent: usize,
    /// Lines that fail validation (sent anyway unless skipped: the monitor dead-letters them).
    pub invalid: usize,
}

/// Why a tool stopped.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The input could not be read.
    #[error("reading line {line}: {source}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// Kafka refused.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Where `produce` sends each line.
#[derive(Clone, Debug)]
pub enum Destination {
    /// One topic for every line (the trusted `jiancha.events`).
    Topic(String),
    /// Each valid line to its department's input topic, as that department's system
    /// would; a line that fails validation to the fallback topic.
    DepartmentTopics {
        /// The topic names.
        topics: jiancha_platform::config::Topics,
        /// For lines without a readable department.
        fallback: String,
    },
}

/// Publishes each line of a JSON-lines file: key `item_id`, record timestamp = the
/// line's `received_at`, else `occurred_at`; header `content-type: application/json`.
/// `client` carries the bootstrap address and the `[kafka]` settings.
pub async fn produce(client: ClientConfig, to: &Destination, lines: impl BufRead, skip_invalid: bool) -> Result<Produced, ToolError> {
    let mut client = client;
    let producer: FutureProducer = client.set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "5").create()?;
    let mut report = Produced::default();
    let mut futures = Vec::new();
    for (n, line) in lines.lines().enumerate() {
        let line = line.map_err(|source| ToolError::Read { line: n + 1, source })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_json_event(line.as_bytes());
        let topic = match (to, &parsed) {
            (Destination::Topic(t), _) => t.clone(),
            (Destination::DepartmentTopics { topics, fallback }, Ok(e)) => {
                topics.department_topic(&e.event.department_code).unwrap_or_else(|| fallback.clone())
            }
            (Destination::DepartmentTopics { fallback, .. }, Err(_)) => fallback.clone(),
        };
        let (key, ts) = match &parsed {
            Ok(e) => (Some(e.event.item_id.clone()), Some(e.received_at.unwrap_or(e.event.occurred_at).0)),
            Err(bad) => {
                report.invalid += 1;
                eprintln!("line {}: invalid ({}): {}", n + 1, bad.reason.as_str(), bad.message);
                if skip_invalid {
                    continue;
                }
                // Keep the record on the item's partition when the id can still be read.
                let raw: Option<Value> = serde_json::from_str(&line).ok();
                (raw.as_ref().and_then(|v| v["item_id"].as_str().map(str::to_owned)), None)
            }
        };
        let headers = OwnedHeaders::new().insert(Header { key: codec::CONTENT_TYPE, value: Some(codec::JSON) });
        let mut record = FutureRecord::<str, str>::to(&topic).payload(&line).headers(headers);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        if futures.len() >= 10_000 {
            report.sent += settle(&mut futures).await?;
        }
    }
    report.sent += settle(&mut futures).await?;
    Ok(report)
}

async fn settle(futures: &mut Vec<rdkafka::producer::DeliveryFuture>) -> Result<usize, KafkaError> {
    let n = futures.len();
    for r in futures::future::join_all(futures.drain(..)).await {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(n)
}

/// An alert record as the replay's JSON line.
pub fn alert_json(bytes: &[u8]) -> Option<Value> {
    let a = jiancha_proto::v1::Alert::decode(bytes).ok()?;
    let name = |v: Option<&str>| v.map(str::to_owned);
    let kind = jiancha_proto::v1::AlertKind::try_from(a.kind).ok()?.as_str_name();
    let level = jiancha_proto::v1::Level::try_from(a.level).ok()?.as_str_name();
    let status = jiancha_proto::v1::AlertStatus::try_from(a.status).ok()?.as_str_name();
    let message = a.message.unwrap_or_default();
    let derivation = a.derivation.unwrap_or_default();
    Some(json!({
        "alert_id": a.alert_id,
        "status": status,
        "item_id": name(a.item_id.as_deref()),
        "service_code": name(a.service_code.as_deref()),
        "department_code": name(a.department_code.as_deref()),
        "kind": kind,
        "level": level,
        "triggered_at": a.triggered_at,
        "event_id": name(a.event_id.as_deref()),
        "message": format!("{} / {}", message.zh, message.en),
        "derivation": { "zh": derivation.zh, "en": derivation.en },
    }))
}

/// A consumer context for reading a topic to its end: reaching the end of a partition is
/// what the reader waits for, not an error to log (librdkafka also reports it as a global
/// error, which rdkafka's default context logs at ERROR).
struct EndIsExpected;

impl rdkafka::ClientContext for EndIsExpected {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF));
        if !end {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndIsExpected {}

/// Prints the alert topic from the beginning as JSON lines. Without `follow` it stops at
/// the end of every partition; `idle_exit` stops after that long without a record.
pub fn print_alerts(
    client: ClientConfig,
    topic: &str,
    follow: bool,
    idle_exit: Option<Duration>,
    out: &mut impl Write,
) -> Result<usize, KafkaError> {
    let mut client = client;
    let consumer: BaseConsumer<EndIsExpected> = client
        .set("group.id", "jiancha-alerts-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(EndIsExpected)?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut at_end = std::collections::HashSet::new();
    let mut printed = 0;
    let mut last = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last = Instant::now();
                at_end.remove(&msg.partition());
                if let Some(v) = msg.payload().and_then(alert_json) {
                    // A reader that went away (`jiancha alerts --follow | head`) ends the command.
                    if let Err(e) = writeln!(out, "{v}")
                        && e.kind() == std::io::ErrorKind::BrokenPipe
                    {
                        return Ok(printed);
                    }
                    printed += 1;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if !follow && idle_exit.is_none() && at_end.len() >= partitions.len() {
                    break;
                }
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if idle_exit.is_some_and(|d| last.elapsed() >= d) {
            break;
        }
    }
    let _ = out.flush();
    Ok(printed)
}
