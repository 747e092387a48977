//! `jiancha up`: everything in one process — an in-process Kafka-protocol broker
//! (librdkafka's mock cluster, not durable), the monitor, and a simulator of department
//! systems that backfills the last weeks of a service centre and then keeps handling
//! items in real time.

use chrono::{Datelike, Duration as Days, Local};
use jiancha_core::Timestamp;
use jiancha_monitor::monitor::{self, MonitorError, catalog_departments};
use jiancha_platform::Config;
use jiancha_platform::kafka::failure;
use jiancha_platform::rules::load_rules;
use jiancha_sim::{SimConfig, SimEvent, simulate};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Publishes a simulated stream as department systems would: what already happened at
/// once (record timestamps in the past, so the monitor catches up on them), the rest
/// when its time comes; a new batch of items every `period`.
pub async fn simulator(
    bootstrap: String,
    config: Config,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), MonitorError> {
    let (catalog, calendars) = load_rules(config.catalog.as_ref(), &config.calendar_files())?;
    let producer: FutureProducer = jiancha_platform::kafka::client_for(&bootstrap, &config)
        .set("enable.idempotence", "true")
        .create()
        .map_err(failure("simulator producer"))?;
    let today = Local::now().date_naive();
    let backfill_from = today - Days::days(28);
    let mut queue: Vec<SimEvent> = simulate(
        &catalog,
        &calendars,
        &SimConfig { seed: u64::from(today.ordinal()), items: 400, first_day: backfill_from, spread_days: 19, irregular_share: 0.03 },
    );
    let mut batch = 0u64;
    let mut next_batch = tokio::time::Instant::now() + period;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = jiancha_platform::wall_clock().0;
        if tokio::time::Instant::now() >= next_batch {
            next_batch += period;
            batch += 1;
            let fresh = simulate(
                &catalog,
                &calendars,
                &SimConfig {
                    seed: batch * 7919 + u64::from(today.ordinal()),
                    items: 3,
                    first_day: today,
                    spread_days: 1,
                    irregular_share: 0.1,
                },
            );
            // Items "submitted today" whose first event lies ahead are shifted to now.
            queue.extend(fresh.into_iter().map(|mut e| {
                let shift = (now - e.received_at.0).min(0);
                e.received_at = Timestamp(e.received_at.0 + shift + 1000);
                e
            }));
        }
        let (due, later): (Vec<SimEvent>, Vec<SimEvent>) = queue.into_iter().partition(|e| e.received_at.0 <= now);
        queue = later;
        let mut due = due;
        due.sort_by_key(|e| e.received_at);
        for e in due {
            let payload = e.json.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: jiancha_platform::codec::CONTENT_TYPE, value: Some(jiancha_platform::codec::JSON) });
            let record =
                FutureRecord::to(&config.topics.events).key(&e.item_id).payload(&payload).timestamp(e.received_at.0).headers(headers);
            if let Err((err, _)) = producer.send_result(record) {
                warn!(error = %err, "Simulator could not publish; dropping the event");
            }
        }
    }
}

/// More services to run next to the monitor (the gRPC gateway, the accountability
/// queue): started with the final configuration, they stop when the receiver turns true.
pub type Extra = Box<
    dyn FnOnce(Config, watch::Receiver<bool>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send,
>;

/// Runs the broker, the monitor, `extra` and (unless disabled) the simulator until Ctrl-C.
pub async fn up(
    mut config: Config,
    external_bootstrap: Option<String>,
    with_simulator: bool,
    extra: Vec<Extra>,
) -> Result<(), MonitorError> {
    let cluster = match external_bootstrap {
        Some(_) => None,
        None => Some(rdkafka::mocking::MockCluster::new(1).map_err(failure("embedded broker"))?),
    };
    if let Some(cluster) = &cluster {
        config.kafka_bootstrap = cluster.bootstrap_servers();
        // The mock serves no CreateTopics: every topic, each department's input topic
        // included, is made here.
        let (catalog, _) = load_rules(config.catalog.as_ref(), &config.calendar_files())?;
        for topic in &config.topics.all(&catalog_departments(&catalog)) {
            cluster.create_topic(topic, config.partitions, 1).map_err(failure("embedded topics"))?;
        }
    } else if let Some(b) = external_bootstrap {
        config.kafka_bootstrap = b;
    }
    println!("kafka bootstrap: {}", config.kafka_bootstrap);
    if cluster.is_some() {
        println!("note: the embedded broker keeps everything in memory; nothing survives this process");
    }
    crate::telemetry::serve(&config).await.map_err(|e| MonitorError::Rules(jiancha_platform::rules::RulesError(e.to_string())))?;
    config.metrics_listen = String::new();
    let (stop, shutdown) = watch::channel(false);
    let monitor = tokio::spawn(monitor::run(config.clone(), shutdown.clone()));
    let extra: Vec<_> = extra.into_iter().map(|start| tokio::spawn(start(config.clone(), shutdown.clone()))).collect();
    let simulator = with_simulator
        .then(|| tokio::spawn(simulator(config.kafka_bootstrap.clone(), config.clone(), Duration::from_secs(10), shutdown.clone())));
    println!("alerts: jiancha alerts --kafka-bootstrap {} --follow", config.kafka_bootstrap);
    jiancha_platform::lifecycle::wait_for_signal().await;
    // Listening for a second signal before saying so: whoever reads the line may send it.
    jiancha_platform::lifecycle::force_exit_after(config.shutdown());
    info!("Signal received; stopping");
    let _ = stop.send(true);
    if let Some(s) = simulator {
        let _ = s.await;
    }
    for task in extra {
        match task.await {
            Ok(Err(e)) => warn!(error = %e, "A service stopped with an error"),
            Err(e) => warn!(error = %e, "A service task failed"),
            Ok(Ok(())) => {}
        }
    }
    let result = monitor.await.unwrap_or(Ok(()));
    drop(cluster);
    result
}
