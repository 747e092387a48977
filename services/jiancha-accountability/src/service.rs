//! `jiancha accountability`: the consumer of the alert topic and the state changelog,
//! the 督办 escalation clock, and the gRPC server of AccountabilityService and StatsService.

use crate::api::Api;
use crate::facts::item_facts;
use crate::store::{Incoming, Store, StoreError};
use jiancha_core::{Calendars, Catalog, Engine};
use jiancha_gateway::auth::Authenticator;
use jiancha_monitor::config::MonitorConfig;
use jiancha_monitor::monitor::load_rules;
use jiancha_monitor::wall_clock;
use jiancha_proto::v1;
use jiancha_proto::v1::accountability_service_server::AccountabilityServiceServer;
use jiancha_proto::v1::stats_service_server::StatsServiceServer;
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

/// Metric: cases opened.
pub const CASES_OPENED: &str = "jiancha_cases_opened_total";
/// Metric: cases closed by retraction.
pub const CASES_RETRACTED: &str = "jiancha_cases_retracted_total";
/// Metric: cases escalated (督办).
pub const CASES_ESCALATED: &str = "jiancha_cases_escalated_total";
/// Metric: seconds to store one consumed batch.
pub const BATCH_SECONDS: &str = "jiancha_accountability_batch_seconds";

/// Why the service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Configuration, TLS, tokens, rules.
    #[error("{0}")]
    Config(String),
    /// Kafka.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The server.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn until_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The running service.
#[derive(Debug)]
pub struct Running {
    /// Where AccountabilityService and StatsService listen.
    pub addr: SocketAddr,
    /// The store.
    pub store: Arc<Store>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Waits for everything to stop (after the shutdown signal).
    pub async fn wait(self) -> Result<(), ServiceError> {
        for t in self.tasks {
            let _ = t.await;
        }
        self.server.await.map_err(|e| ServiceError::Config(format!("server task: {e}")))??;
        Ok(())
    }
}

/// Serves the two gRPC services over `store` (TLS and tokens as configured in `[grpc]`).
pub async fn serve_api(
    config: &MonitorConfig,
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    calendars: &Calendars,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), tonic::transport::Error>>), ServiceError> {
    let authenticator = Authenticator::from_config(&config.grpc.auth).map_err(|e| ServiceError::Config(e.to_string()))?;
    let tls = jiancha_gateway::tls_config(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let interceptor = jiancha_gateway::auth_interceptor(Arc::new(authenticator));
    let api = Api::new(store, catalog, calendars.default_calendar().tz(), config.accountability.weights.clone());
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let (reflection, reflection_alpha) = jiancha_gateway::reflection().map_err(|e| ServiceError::Config(e.to_string()))?;
    let router = jiancha_gateway::server_builder(tls)?
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(InterceptedService::new(
            AccountabilityServiceServer::new(api.clone()).max_decoding_message_size(1 << 20),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(StatsServiceServer::new(api), interceptor));
    let listener = tokio::net::TcpListener::bind(&config.accountability.listen)
        .await
        .map_err(|e| ServiceError::Config(format!("accountability.listen {}: {e}", config.accountability.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServiceError::Config(e.to_string()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_true(shutdown)));
    info!(%addr, "Accountability gRPC listening");
    Ok((addr, server))
}

/// Opens the store, then runs the consumer, the escalation clock and the gRPC server
/// until `shutdown` turns true.
pub async fn start(config: MonitorConfig, shutdown: watch::Receiver<bool>) -> Result<Running, ServiceError> {
    let store = Arc::new(Store::open(&config.accountability.database).await?);
    info!(database = %redact(&config.accountability.database), backend = ?store.backend(), "Case store open");
    let (catalog, calendars) =
        load_rules(config.catalog.as_ref(), &config.calendar_files()).map_err(|e| ServiceError::Config(e.to_string()))?;
    let (addr, server) = serve_api(&config, store.clone(), catalog.clone(), &calendars, shutdown.clone()).await?;
    let mut tasks = Vec::new();
    {
        let (store, interval, shutdown) = (store.clone(), config.accountability.escalation(), shutdown.clone());
        tasks.push(tokio::spawn(escalation_clock(store, interval, shutdown)));
    }
    {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = consume(config, store, catalog, calendars, shutdown).await {
                tracing::error!(error = %e, "The accountability consumer stopped");
            }
        }));
    }
    Ok(Running { addr, store, tasks, server })
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && url[s + 3..at].contains(':') => {
            let user = url[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// 督办: checks for due escalations every `interval`.
pub async fn escalation_clock(store: Arc<Store>, interval: Duration, shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    let stop = until_true(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match store.escalate_due(wall_clock().0).await {
            Ok(ids) if !ids.is_empty() => {
                metrics::counter!(CASES_ESCALATED).increment(ids.len() as u64);
                info!(cases = ?ids, "督办: unreplied YELLOW cases escalated to RED");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "Escalation check failed; retrying at the next tick"),
        }
    }
}

/// Turns a batch of records into store writes.
fn prepare(
    messages: &[OwnedMessage],
    config: &MonitorConfig,
    catalog: &Arc<Catalog>,
    calendars: &Calendars,
) -> (Vec<Incoming>, Vec<crate::store::ItemFacts>) {
    let mut incoming = Vec::new();
    let mut engine = Engine::new(catalog.clone(), calendars.clone());
    let mut items = Vec::new();
    let now = wall_clock();
    for m in messages {
        let Some(payload) = m.payload() else { continue };
        if m.topic() == config.topics.alerts {
            match v1::Alert::decode(payload) {
                Ok(alert) => {
                    let published_at = m.timestamp().to_millis().unwrap_or(now.0);
                    let escalate_at = Some(crate::escalation_deadline(catalog, calendars, alert.service_code.as_deref(), published_at));
                    incoming.push(Incoming { alert, published_at, escalate_at });
                }
                Err(e) => {
                    warn!(partition = m.partition(), offset = m.offset(), error = %e, "Alert record is not a jiancha.v1.Alert; skipped")
                }
            }
        } else {
            match jiancha_proto::decode_state(payload) {
                Ok(state) => items.push(engine.import(&state, &mut Vec::new())),
                Err(e) => warn!(partition = m.partition(), offset = m.offset(), error = %e, "State record cannot be read; skipped"),
            }
        }
    }
    let facts = items.into_iter().filter_map(|i| item_facts(&engine, i, now)).collect();
    (incoming, facts)
}

/// Consumes the alert topic and the state changelog in batches; each batch is written in
/// one transaction, then its offsets are committed (redelivery is harmless: a case is
/// unique per alert id and items are upserted).
pub async fn consume(
    config: MonitorConfig,
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    calendars: Calendars,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", &config.accountability.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&config.topics.alerts, &config.topics.state])?;
    info!(group = %config.accountability.group_id, "Accountability consumer started");
    let stop = until_true(shutdown);
    tokio::pin!(stop);
    loop {
        let first = tokio::select! {
            _ = &mut stop => break,
            m = consumer.recv() => m,
        };
        let mut batch = match first {
            Ok(m) => vec![m.detach()],
            Err(e) => {
                warn!(error = %e, "Consuming alerts");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let gather_until = Instant::now() + Duration::from_millis(50);
        while batch.len() < 1000 {
            let left = gather_until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => warn!(error = %e, "Consuming alerts"),
                Err(_) => break,
            }
        }
        let (incoming, facts) = prepare(&batch, &config, &catalog, &calendars);
        loop {
            let started = Instant::now();
            let result = async {
                let report = store.ingest(&incoming, wall_clock().0).await?;
                store.upsert_items(&facts, wall_clock().0).await?;
                Ok::<_, StoreError>(report)
            }
            .await;
            match result {
                Ok(report) => {
                    metrics::counter!(CASES_OPENED).increment(report.opened);
                    metrics::counter!(CASES_RETRACTED).increment(report.retracted);
                    metrics::histogram!(BATCH_SECONDS).record(started.elapsed().as_secs_f64());
                    break;
                }
                Err(e) => {
                    warn!(error = %e, records = batch.len(), "Storing a batch failed; retrying (offsets not committed)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for m in &batch {
            let e = next.entry((m.topic().to_owned(), m.partition())).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), offset) in next {
            tpl.add_partition_offset(&topic, p, Offset::Offset(offset))?;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            warn!(error = %e, "Committing offsets failed; the batch may be consumed again (harmless)");
        }
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    info!("Accountability consumer stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(super::redact("postgres://jiancha:s3cret@db/j"), "postgres://jiancha:***@db/j");
        assert_eq!(super::redact("postgres://jiancha@db/j"), "postgres://jiancha@db/j");
        assert_eq!(super::redact("sqlite://cases.db"), "sqlite://cases.db");
    }
}
