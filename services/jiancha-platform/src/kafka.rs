//! Kafka clients for every role, built from one place: the bootstrap address, then the
//! `[kafka]` table of librdkafka properties (TLS, SASL/SCRAM or PLAIN, timeouts …), then
//! what the client itself must have for jiancha's delivery guarantees. librdkafka's own
//! log lines reach `tracing` (target `librdkafka`) through rdkafka's `tracing` feature.
//!
//! Also the topic layout every role shares, and its creation when absent.

use crate::config::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use std::time::Duration;
use tracing::{error, info, warn};

/// A Kafka operation that failed, with what the service was doing.
#[derive(Debug, thiserror::Error)]
#[error("kafka ({context}): {source}")]
pub struct KafkaFailure {
    /// What the service was doing.
    pub context: &'static str,
    /// The client's error.
    #[source]
    pub source: KafkaError,
}

/// Maps a client error to a [`KafkaFailure`] saying what was being done.
pub fn failure(context: &'static str) -> impl FnOnce(KafkaError) -> KafkaFailure {
    move |source| KafkaFailure { context, source }
}

/// The headers of a dead letter: why (`jiancha.reason`, `jiancha.field`,
/// `jiancha.message`) and where the record came from (`jiancha.source.topic`,
/// `.partition`, `.offset`). The record itself is copied byte for byte.
pub fn dead_letter_headers(reason: &str, field: Option<&str>, message: &str, source: &impl Message) -> OwnedHeaders {
    dead_letter_headers_at(reason, field, message, (source.topic(), source.partition(), source.offset()))
}

/// [`dead_letter_headers`] for a record known by its topic, partition and offset.
pub fn dead_letter_headers_at(
    reason: &str,
    field: Option<&str>,
    message: &str,
    (topic, partition, offset): (&str, i32, i64),
) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header { key: "jiancha.reason", value: Some(reason) })
        .insert(Header { key: "jiancha.message", value: Some(message) })
        .insert(Header { key: "jiancha.field", value: field })
        .insert(Header { key: "jiancha.source.topic", value: Some(topic) })
        .insert(Header { key: "jiancha.source.partition", value: Some(&partition.to_string()) })
        .insert(Header { key: "jiancha.source.offset", value: Some(&offset.to_string()) })
}

/// `fetch.queue.backoff.ms` of every consumer ([`consumer`]): once a client's prefetched
/// records pass librdkafka's bounds (64 MB, 100 000 a partition) it stops fetching for
/// this long, 1 s by default. A reader catching up on a backlog — the monitor after
/// downtime, a restore or the gateway's view reading a topic from its start — empties its
/// queue well within that, then stands idle for the rest of the second
/// (docs/performance.md).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "100";

/// Properties jiancha sets itself on the clients that need them; the `[kafka]` table
/// may not set them (they decide delivery and partition ownership).
pub const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "group.instance.id",
    "enable.auto.commit",
    "enable.idempotence",
    "acks",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "auto.offset.reset",
];

/// A client configuration: the bootstrap servers and every `[kafka]` property.
pub fn client(config: &Config) -> ClientConfig {
    client_for(&config.kafka_bootstrap, config)
}

/// A consumer's configuration: [`client`], fetching again [`FETCH_QUEUE_BACKOFF_MS`]
/// after its prefetch queue was full, unless the `[kafka]` table says otherwise.
pub fn consumer(config: &Config) -> ClientConfig {
    let mut c = client(config);
    if c.get("fetch.queue.backoff.ms").is_none() {
        c.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    }
    c
}

/// Like [`client`], for another bootstrap address (the embedded broker of `up`).
pub fn client_for(bootstrap: &str, config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (key, value) in config.kafka_properties() {
        c.set(key, value);
    }
    c
}

/// Creates jiancha's topics when absent, with `partitions` each (the changelog
/// compacted): the trusted event topic, one input topic per department of
/// `departments`, alerts, dead letters and the changelog. Every event topic must have
/// the changelog's partition count: partition p of each is handled by the engine that
/// owns changelog partition p.
pub async fn ensure_topics(config: &Config, departments: &[String]) -> Result<(), KafkaFailure> {
    let admin: AdminClient<DefaultClientContext> = client(config).create().map_err(failure("admin client"))?;
    let t = &config.topics;
    let names = t.all(departments);
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).map_err(failure("topic metadata"))?;
    let exists = |n: &str| metadata.topics().iter().any(|t| t.name() == n && t.error().is_none() && !t.partitions().is_empty());
    let missing: Vec<&String> = names.iter().filter(|n| !exists(n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let r = || TopicReplication::Fixed(config.replication);
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|n| {
            let topic = NewTopic::new(n, config.partitions, r());
            if **n == t.state { topic.set("cleanup.policy", "compact") } else { topic }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(15)));
    let results = match admin.create_topics(&topics, &options).await {
        Ok(results) => results,
        Err(e) => {
            // Some brokers (the embedded mock) do not serve CreateTopics: go on if the topics exist.
            let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).map_err(failure("topic metadata"))?;
            let still: Vec<&&String> =
                missing.iter().filter(|n| !metadata.topics().iter().any(|t| t.name() == n.as_str() && t.error().is_none())).collect();
            if !still.is_empty() {
                return Err(KafkaFailure { context: "create topics", source: e });
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
                error!(topic = %name, "Topic creation failed");
                return Err(KafkaFailure { context: "create topic", source: KafkaError::AdminOp(code) });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaValue;

    #[test]
    fn kafka_properties_reach_every_client_and_reserved_ones_are_refused() {
        let mut config: Config = toml::from_str(
            r#"
            kafka_bootstrap = "broker:9093"
            [kafka]
            "security.protocol" = "SASL_SSL"
            "sasl.mechanism" = "SCRAM-SHA-512"
            "sasl.username" = "monitor"
            "socket.timeout.ms" = 30000
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let c = client(&config);
        assert_eq!(c.get("bootstrap.servers"), Some("broker:9093"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("socket.timeout.ms"), Some("30000"));
        let e = toml::from_str::<Config>("[kafka]\n\"group.id\" = \"x\"\n").unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("group.id"), "{e}");
        // Consumers fetch again soon after a full queue, unless the table says otherwise.
        assert_eq!(consumer(&config).get("fetch.queue.backoff.ms"), Some(FETCH_QUEUE_BACKOFF_MS));
        assert_eq!(consumer(&config).get("socket.timeout.ms"), Some("30000"));
        config.kafka.insert("fetch.queue.backoff.ms".into(), KafkaValue::Integer(500));
        assert_eq!(consumer(&config).get("fetch.queue.backoff.ms"), Some("500"));
        config.kafka.clear();
        // A secret from the environment rather than the file.
        let props = Config::kafka_env_properties([("JIANCHA_KAFKA_PROP_SASL_PASSWORD".to_owned(), "s3cret".to_owned())]);
        assert_eq!(props, [("sasl.password".to_owned(), "s3cret".to_owned())]);
    }
}
