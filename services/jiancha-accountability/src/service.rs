//! `jiancha accountability`: the consumer of the alert topic and the state changelog,
//! the 督办 escalation clock, and the gRPC server of AccountabilityService and StatsService.

use crate::api::Api;
use crate::facts::item_facts;
use crate::store::{Incoming, Store, StoreError};
use jiancha_core::{Calendars, Catalog, Engine};
use jiancha_platform::Config;
use jiancha_platform::auth::Authenticator;
use jiancha_platform::kafka::failure;
use jiancha_platform::rules::RulesWatch;
use jiancha_platform::wall_clock;
use jiancha_proto::v1;
use jiancha_proto::v1::accountability_service_server::AccountabilityServiceServer;
use jiancha_proto::v1::stats_service_server::StatsServiceServer;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
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
/// Metric: escalation steps taken, by `step` (REMIND 催办, ESCALATE 督办, PUBLICIZE 通报,
/// RECTIFY_OVERDUE).
pub const CASES_ESCALATED: &str = "jiancha_cases_escalated_total";
/// Metric: seconds to store one consumed batch.
pub const BATCH_SECONDS: &str = "jiancha_accountability_batch_seconds";
/// Metric: alert records refused and sent to the alerts' dead-letter topic, by `reason`.
pub const ALERTS_REFUSED: &str = "jiancha_accountability_alerts_refused_total";
/// Metric: cases not resolved yet, by `level` and `escalated` (督办: reply overdue).
pub const CASES_OPEN: &str = "jiancha_cases_open";

/// The service's name in `/readyz`: ready while the database answers.
pub const READINESS: &str = "accountability";

/// The buckets of the service's histograms.
pub const HISTOGRAMS: &[jiancha_platform::telemetry::Histogram] = &[(BATCH_SECONDS, jiancha_platform::telemetry::REQUEST)];

/// Describes the service's metrics.
pub fn describe() {
    metrics::describe_counter!(CASES_OPENED, "Cases opened from alerts");
    metrics::describe_counter!(CASES_RETRACTED, "Cases closed because their alert was retracted");
    metrics::describe_counter!(
        CASES_ESCALATED,
        "Escalation steps taken on unanswered cases, by step (REMIND 催办, ESCALATE 督办, PUBLICIZE 通报, RECTIFY_OVERDUE)"
    );
    metrics::describe_histogram!(BATCH_SECONDS, metrics::Unit::Seconds, "Time to store one consumed batch of alert updates");
    metrics::describe_counter!(ALERTS_REFUSED, "Alert records refused and sent to the alerts' dead-letter topic, by reason");
    metrics::describe_gauge!(CASES_OPEN, "Cases not resolved yet, by level and escalated (reply overdue)");
    // Every series a rule or a dashboard may ask for exists from the start, at 0.
    for counter in [CASES_OPENED, CASES_RETRACTED] {
        metrics::counter!(counter).increment(0);
    }
    for step in ["REMIND", "ESCALATE", "PUBLICIZE", "RECTIFY_OVERDUE"] {
        metrics::counter!(CASES_ESCALATED, "step" => step).increment(0);
    }
    crate::notify::describe();
    for reason in REFUSAL_REASONS {
        metrics::counter!(ALERTS_REFUSED, "reason" => reason).increment(0);
    }
}

/// Why an alert record is refused (the `reason` of its dead letter).
pub const REFUSAL_REASONS: [&str; 4] = ["MALFORMED", "MISSING_FIELD", "OUT_OF_RANGE", "UNKNOWN_ENUM"];

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
    #[error(transparent)]
    Kafka(#[from] jiancha_platform::kafka::KafkaFailure),
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
    config: &Config,
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    calendars: &Calendars,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), tonic::transport::Error>>), ServiceError> {
    serve_api_with(config, store, crate::Rules::new(catalog, calendars.clone()), shutdown).await
}

/// [`serve_api`] with rules the service replaces when their files change.
pub async fn serve_api_with(
    config: &Config,
    store: Arc<Store>,
    rules: Arc<crate::Rules>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), tonic::transport::Error>>), ServiceError> {
    let authenticator = Authenticator::from_config(&config.grpc.auth).map_err(|e| ServiceError::Config(e.to_string()))?;
    let tls = jiancha_platform::server::tls_config(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let a = &config.accountability;
    let limiter = Arc::new(jiancha_platform::limits::RateLimiter::new(a.requests_per_caller, a.burst_per_caller));
    let interceptor = jiancha_platform::server::rate_limited(
        jiancha_platform::server::auth_interceptor(Arc::new(authenticator), config.grpc.bind_client_certificate),
        limiter,
    );
    let api = Api::new(store, rules, a.chain.clone(), a.weights.clone(), config.grpc.watchers_per_caller);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    {
        // The gRPC health says what /readyz says: serving while the database answers.
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut serving = None;
            loop {
                let ready = jiancha_platform::health::is_ready(READINESS);
                if serving != Some(ready) {
                    serving = Some(ready);
                    let status = if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                    for name in ["", "jiancha.v1.AccountabilityService", "jiancha.v1.StatsService"] {
                        reporter.set_service_status(name, status).await;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    let (reflection, reflection_alpha) = jiancha_platform::server::reflection().map_err(|e| ServiceError::Config(e.to_string()))?;
    let router = jiancha_platform::server::server_builder(tls)?
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
    let incoming = jiancha_platform::server::limited_incoming(listener, config.grpc.max_connections);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_true(shutdown)));
    info!(%addr, "Accountability gRPC listening");
    Ok((addr, server))
}

/// Opens the store, then runs the consumer, the escalation clock and the gRPC server
/// until `shutdown` turns true.
pub async fn start(config: Config, shutdown: watch::Receiver<bool>) -> Result<Running, ServiceError> {
    let store = Arc::new(Store::open(&config.accountability.database).await?);
    info!(database = %redact(&config.accountability.database), backend = ?store.backend(), "Case store open");
    let (rules_watch, catalog, calendars) = RulesWatch::load(&config).map_err(|e| ServiceError::Config(e.to_string()))?;
    jiancha_platform::kafka::ensure_topics(&config, &[]).await?;
    let rules = crate::Rules::new(catalog, calendars.clone());
    let (addr, server) = serve_api_with(&config, store.clone(), rules.clone(), shutdown.clone()).await?;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(watch_database(store.clone(), shutdown.clone())));
    {
        let (store, interval, shutdown) = (store.clone(), config.accountability.escalation(), shutdown.clone());
        let (rules, config) = (rules.clone(), config.clone());
        tasks.push(tokio::spawn(escalation_clock(store, rules, rules_watch, config, interval, shutdown)));
    }
    {
        let notifier = crate::notify::Notifier::new(&config.accountability.notifications, calendars.default_calendar().tz())
            .map_err(|e| ServiceError::Config(e.to_string()))?;
        tasks.push(tokio::spawn(crate::notify::run(store.clone(), Arc::new(notifier), shutdown.clone())));
    }
    {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = consume(config, store, rules, shutdown).await {
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

/// Asks the database a trivial question every few seconds: readiness, and the open
/// cases by level for the dashboards.
async fn watch_database(store: Arc<Store>, shutdown: watch::Receiver<bool>) {
    let stop = until_true(shutdown);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut stop => {
                jiancha_platform::health::set(READINESS, false, "stopping");
                return;
            }
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(Duration::from_secs(5), store.open_cases()).await {
            Ok(Ok(counts)) => {
                jiancha_platform::health::set(READINESS, true, format!("database answers ({:?})", store.backend()));
                for level in ["RED", "YELLOW", "WARNING"] {
                    for escalated in [false, true] {
                        let n = counts.iter().find(|c| c.0 == level && c.1 == escalated).map_or(0, |c| c.2);
                        metrics::gauge!(CASES_OPEN, "level" => level, "escalated" => if escalated { "true" } else { "false" })
                            .set(n as f64);
                    }
                }
            }
            Ok(Err(e)) => {
                jiancha_platform::health::set(READINESS, false, format!("database: {e}"));
            }
            Err(_) => {
                jiancha_platform::health::set(READINESS, false, "database: no answer within 5 s");
            }
        }
    }
}

/// The escalation chain (催办, 督办, 通报) and rectification deadlines, checked every
/// `interval` with the calendars in force; the catalog and calendars are read again when
/// their files change (checked every `reload_interval`; `watch` is from the load of `rules`).
pub async fn escalation_clock(
    store: Arc<Store>,
    rules: Arc<crate::Rules>,
    mut watch: RulesWatch,
    config: Config,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    let stop = until_true(shutdown);
    tokio::pin!(stop);
    let chain = config.accountability.chain.clone();
    let mut last_check = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if last_check.elapsed() >= config.reload() {
            last_check = Instant::now();
            match watch.poll(&config) {
                None => {}
                Some(Ok((catalog, calendars))) => {
                    rules.set(catalog, calendars);
                    info!("Catalog and calendars reloaded; the escalation chain follows them");
                }
                Some(Err(e)) => warn!(error = %e, "Catalog or calendar change rejected; the previous one stays in force"),
            }
        }
        let (catalog, calendars) = rules.get();
        match store.advance(wall_clock().0, |case| crate::schedule(&catalog, &calendars, &chain, case)).await {
            Ok(steps) => {
                for (case_id, action) in steps {
                    metrics::counter!(CASES_ESCALATED, "step" => action).increment(1);
                    info!(case_id, action, "Escalation step taken");
                }
            }
            Err(e) => warn!(error = %e, "Escalation check failed; retrying at the next tick"),
        }
    }
}

/// An alert record the service will not act on: why, and which field.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// Machine-readable reason (`MALFORMED`, `MISSING_FIELD`, `OUT_OF_RANGE`, `UNKNOWN_ENUM`).
    pub reason: &'static str,
    /// The field at fault, where there is one.
    pub field: Option<&'static str>,
    /// For the operator.
    pub message: String,
}

/// Reads and checks one alert record. The alert topic is written by the monitor alone
/// (docs/security.md, ACLs), but a case is an accusation: a record that is not a
/// well-formed alert is refused rather than guessed at, and never retried for ever.
pub fn read_alert(payload: &[u8]) -> Result<v1::Alert, Refused> {
    let refuse = |reason, field, message: String| Refused { reason, field, message };
    let alert = v1::Alert::decode(payload).map_err(|e| refuse("MALFORMED", None, format!("not a jiancha.v1.Alert: {e}")))?;
    if alert.alert_id.is_empty() || alert.alert_id.len() > 64 || !alert.alert_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(refuse(
            "OUT_OF_RANGE",
            Some("alert_id"),
            format!("alert_id `{}` is not 1-64 letters and digits", alert.alert_id.escape_debug()),
        ));
    }
    let Some(kind) = jiancha_proto::alert_kind(alert.kind) else {
        return Err(refuse("UNKNOWN_ENUM", Some("kind"), format!("alert kind value {} is not defined", alert.kind)));
    };
    if v1::Level::try_from(alert.level).ok().map(|l| l.as_str_name()) != Some(kind.level().as_str()) {
        return Err(refuse("OUT_OF_RANGE", Some("level"), format!("level value {} is not the level of {}", alert.level, kind.as_str())));
    }
    if v1::AlertStatus::try_from(alert.status).is_err() || alert.status == 0 {
        return Err(refuse("UNKNOWN_ENUM", Some("status"), format!("status value {} is not FIRED or RETRACTED", alert.status)));
    }
    if jiancha_core::Timestamp::parse_rfc3339(&alert.triggered_at).is_err() {
        return Err(refuse(
            "BAD_TIMESTAMP",
            Some("triggered_at"),
            format!("triggered_at `{}` is not RFC 3339", alert.triggered_at.escape_debug()),
        ));
    }
    if kind != jiancha_core::AlertKind::CalendarMissing {
        for (field, value) in [("item_id", &alert.item_id), ("department_code", &alert.department_code)] {
            if value.as_deref().is_none_or(str::is_empty) {
                return Err(refuse("MISSING_FIELD", Some(field), format!("an item alert needs {field}")));
            }
        }
    }
    let texts = [alert.item_id.as_deref(), alert.department_code.as_deref(), alert.service_code.as_deref(), alert.event_id.as_deref()];
    let bilingual = [&alert.message, &alert.derivation].into_iter().flatten().flat_map(|b| [Some(b.zh.as_str()), Some(b.en.as_str())]);
    if texts.into_iter().chain(bilingual).flatten().any(|t| t.contains('\0')) {
        return Err(refuse("OUT_OF_RANGE", None, "a text field holds a NUL character, which the case store refuses".into()));
    }
    Ok(alert)
}

/// Turns a batch of records into store writes, and the alert records refused.
fn prepare<'a>(
    messages: &'a [OwnedMessage],
    config: &Config,
    catalog: &Arc<Catalog>,
    calendars: &Calendars,
) -> (Vec<Incoming>, Vec<crate::store::ItemFacts>, Vec<(&'a OwnedMessage, Refused)>) {
    let mut incoming = Vec::new();
    let mut refused = Vec::new();
    let mut engine = Engine::new(catalog.clone(), calendars.clone());
    let mut items = Vec::new();
    let now = wall_clock();
    for m in messages {
        let Some(payload) = m.payload() else { continue };
        if m.topic() == config.topics.alerts {
            match read_alert(payload) {
                Ok(alert) => {
                    let published_at = m.timestamp().to_millis().unwrap_or(now.0);
                    incoming.push(Incoming { alert, published_at });
                }
                Err(why) => refused.push((m, why)),
            }
        } else if m.key() != Some(jiancha_proto::HANDOVER_KEY) {
            match jiancha_proto::decode_state(payload) {
                Ok(state) => items.push(engine.import(&state, &mut Vec::new())),
                Err(e) => warn!(partition = m.partition(), offset = m.offset(), error = %e, "State record cannot be read; skipped"),
            }
        }
    }
    let facts = items.into_iter().filter_map(|i| item_facts(&engine, i, now)).collect();
    (incoming, facts, refused)
}

/// Sends refused alert records, byte for byte, to the alerts' dead-letter topic with
/// their reason; returns once the broker has them (their offsets are committed after).
async fn dead_letter(producer: &FutureProducer, topic: &str, refused: &[(&OwnedMessage, Refused)]) -> Result<(), ServiceError> {
    for (m, why) in refused {
        metrics::counter!(ALERTS_REFUSED, "reason" => why.reason).increment(1);
        warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = why.reason, message = %why.message,
            "Alert record refused; sent to the dead-letter topic");
        let headers = jiancha_platform::kafka::dead_letter_headers(why.reason, why.field, &why.message, *m);
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(payload) = m.payload() {
            record = record.payload(payload);
        }
        producer.send(record, Duration::from_secs(60)).await.map_err(|(e, _)| failure("alerts dead letter")(e))?;
    }
    Ok(())
}

/// Consumes the alert topic and the state changelog in batches; each batch is written in
/// one transaction, then its offsets are committed (redelivery is harmless: a case is
/// unique per alert id and items are upserted).
pub async fn consume(
    config: Config,
    store: Arc<Store>,
    rules: Arc<crate::Rules>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let consumer: StreamConsumer = jiancha_platform::kafka::consumer(&config)
        .set("group.id", &config.accountability.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(failure("accountability consumer"))?;
    let producer: FutureProducer =
        jiancha_platform::kafka::client(&config).set("enable.idempotence", "true").create().map_err(failure("dead-letter producer"))?;
    consumer.subscribe(&[&config.topics.alerts, &config.topics.state]).map_err(failure("subscribe"))?;
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
        let (catalog, calendars) = rules.get();
        let (incoming, facts, refused) = prepare(&batch, &config, &catalog, &calendars);
        loop {
            match dead_letter(&producer, &config.topics.alerts_dead_letter, &refused).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(error = %e, "Sending refused alerts to the dead-letter topic failed; retrying (offsets not committed)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
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
            tpl.add_partition_offset(&topic, p, Offset::Offset(offset)).map_err(failure("commit list"))?;
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
    fn a_tombstone_in_the_state_topic_leaves_the_item_facts_alone() {
        use super::*;
        // Statistics of past periods come from the item facts the store keeps; a retired
        // item's tombstone must neither add nor remove anything.
        let config = Config::default();
        let calendars = Calendars::builtin();
        let catalog = Arc::new(Catalog::from_toml(jiancha_platform::rules::DEMO_CATALOG, &calendars).unwrap());
        let mut engine = Engine::new(catalog.clone(), calendars.clone());
        let event = jiancha_core::parse_json_event(
            br#"{"event_id":"F-1","item_id":"F","service_code":"SCJG-001","department_code":"SCJG","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00"}"#,
        )
        .unwrap()
        .event;
        engine.apply(&event, event.occurred_at, event.occurred_at, &mut Vec::new());
        let state = engine.export(engine.find("SCJG", "F").unwrap()).unwrap();
        let record = |payload: Option<Vec<u8>>| {
            OwnedMessage::new(
                payload,
                Some(jiancha_proto::state_key("SCJG", "F")),
                config.topics.state.clone(),
                rdkafka::Timestamp::NotAvailable,
                0,
                0,
                None,
            )
        };
        let messages = vec![record(Some(v1::ItemState::from(&state).encode_to_vec())), record(None)];
        let (incoming, facts, refused) = prepare(&messages, &config, &catalog, &calendars);
        assert!(incoming.is_empty() && refused.is_empty());
        assert_eq!(facts.len(), 1, "the state's facts, the tombstone after it changes nothing");
        let (incoming, facts, refused) = prepare(&messages[1..], &config, &catalog, &calendars);
        assert!(incoming.is_empty() && facts.is_empty() && refused.is_empty(), "a tombstone alone: nothing to write");
    }

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(super::redact("postgres://jiancha:s3cret@db/j"), "postgres://jiancha:***@db/j");
        assert_eq!(super::redact("postgres://jiancha@db/j"), "postgres://jiancha@db/j");
        assert_eq!(super::redact("sqlite://cases.db"), "sqlite://cases.db");
    }

    #[test]
    fn alert_records_that_break_the_contract_are_refused_with_a_reason() {
        use super::{read_alert, v1};
        use prost::Message as _;
        let good = v1::Alert {
            alert_id: "0123456789abcdef0123456789abcdef".into(),
            status: v1::AlertStatus::Fired as i32,
            item_id: Some("I".into()),
            department_code: Some("SCJG".into()),
            kind: v1::AlertKind::StatutoryOverdue as i32,
            level: v1::Level::Red as i32,
            triggered_at: "2025-04-10T00:00:00+08:00".into(),
            ..v1::Alert::default()
        };
        assert!(read_alert(&good.encode_to_vec()).is_ok());
        let refused = |a: v1::Alert| read_alert(&a.encode_to_vec()).unwrap_err();
        assert_eq!(read_alert(b"\xff\xff\xff").unwrap_err().reason, "MALFORMED");
        assert_eq!(refused(v1::Alert { alert_id: String::new(), ..good.clone() }).field, Some("alert_id"));
        assert_eq!(refused(v1::Alert { kind: 999, ..good.clone() }).reason, "UNKNOWN_ENUM");
        // A forged "YELLOW" statutory overdue, or a RED one downgraded.
        assert_eq!(refused(v1::Alert { level: v1::Level::Yellow as i32, ..good.clone() }).field, Some("level"));
        assert_eq!(refused(v1::Alert { status: 0, ..good.clone() }).field, Some("status"));
        assert_eq!(refused(v1::Alert { triggered_at: "yesterday".into(), ..good.clone() }).field, Some("triggered_at"));
        assert_eq!(refused(v1::Alert { department_code: None, ..good.clone() }).field, Some("department_code"));
        let nul = v1::Alert { message: Some(v1::Bilingual { zh: "a\0b".into(), en: String::new() }), ..good.clone() };
        assert_eq!(refused(nul).reason, "OUT_OF_RANGE");
    }
}
