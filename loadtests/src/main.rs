//! `monitor-load`: measures, against a running broker, (1) the raw consume rate of the
//! event topic, (2) the monitor's sustained events/s over the same records, and (3) the
//! time to restore a partition of N open items from the changelog. Bounded in count and
//! time; it stops by itself. Run through `loadtests/run.sh`, which starts the broker.
#![allow(clippy::disallowed_methods)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use jiancha_core::engine::{ItemState, StoredEvent};
use jiancha_core::event::EventType;
use jiancha_core::{Calendars, Catalog, Engine, TimerQueue, Timestamp};
use jiancha_monitor::config::{MonitorConfig, Topics};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// The broker.
    #[arg(long)]
    kafka_bootstrap: String,
    /// Events to publish and consume.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Open items to write to one changelog partition and restore.
    #[arg(long, default_value_t = 1_000_000)]
    restore_items: usize,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

fn config(args: &Args, run: &str) -> MonitorConfig {
    MonitorConfig {
        kafka_bootstrap: args.kafka_bootstrap.clone(),
        group_id: format!("load-{run}"),
        partitions: args.partitions,
        topics: Topics {
            events: "load.events".into(),
            alerts: format!("load.{run}.alerts"),
            dead_letter: format!("load.{run}.dlq"),
            state: format!("load.{run}.state"),
        },
        metrics_listen: String::new(),
        commit_interval: "1s".into(),
        ..MonitorConfig::default()
    }
}

fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

async fn send_all(
    p: &FutureProducer,
    records: impl Iterator<Item = (String, i32, Vec<u8>, Option<i64>)>,
    topic: &str,
    json: bool,
) -> Result<usize> {
    let mut futures = Vec::new();
    let mut n = 0;
    for (key, partition, payload, ts) in records {
        let mut r = FutureRecord::<str, [u8]>::to(topic).key(&key).payload(&payload);
        if partition >= 0 {
            r = r.partition(partition);
        }
        if let Some(ts) = ts {
            r = r.timestamp(ts);
        }
        if json {
            r = r.headers(OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/json") }));
        }
        loop {
            match p.send_result(r) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((_, back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        n += 1;
        if futures.len() >= 50_000 {
            for f in futures.drain(..) {
                f.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for f in futures.drain(..) {
        f.await?.map_err(|(e, _)| e)?;
    }
    Ok(n)
}

fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let run = format!("{}", std::process::id());
    let cfg = config(&args, &run);
    jiancha_monitor::monitor::ensure_topics(&cfg).await?;
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(jiancha_monitor::DEMO_CATALOG, &calendars)?;

    // 1. Publish a realistic stream.
    let sim = jiancha_sim::simulate(
        &catalog,
        &calendars,
        &jiancha_sim::SimConfig {
            seed: 11,
            items: args.events / 6 + 1,
            first_day: chrono::NaiveDate::from_ymd_opt(2025, 3, 3).expect("date"),
            spread_days: 120,
            irregular_share: 0.3,
        },
    );
    let sim: Vec<_> = sim.into_iter().take(args.events).collect();
    let p = producer(&args.kafka_bootstrap)?;
    let started = Instant::now();
    let sent = send_all(
        &p,
        sim.iter().map(|e| (e.item_id.clone(), -1, e.json.to_string().into_bytes(), Some(e.received_at.0))),
        "load.events",
        true,
    )
    .await?;
    let produce_s = started.elapsed().as_secs_f64();
    println!("produce: {sent} events in {produce_s:.1}s = {:.0} events/s", sent as f64 / produce_s);

    // 2. Raw consume rate of the same topic (a plain consumer, no processing).
    let raw: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka_bootstrap)
        .set("group.id", format!("load-raw-{run}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    raw.subscribe(&["load.events"])?;
    let started = Instant::now();
    let mut got = 0;
    while got < sent {
        if let Some(r) = raw.poll(Duration::from_secs(1)) {
            r?;
            got += 1;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("raw consume did not finish in 10 minutes ({got}/{sent})");
        }
    }
    let raw_s = started.elapsed().as_secs_f64();
    println!("raw consume: {got} records in {raw_s:.1}s = {:.0} records/s", got as f64 / raw_s);
    drop(raw);

    // 3. The monitor over the same records (it publishes alerts and changelog records too).
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let monitor = tokio::spawn(jiancha_monitor::monitor::run(cfg.clone(), shutdown));
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done = committed_total(&args.kafka_bootstrap, &cfg.group_id, "load.events", args.partitions)?;
        if done >= sent as i64 {
            break;
        }
        if monitor.is_finished() {
            bail!("the monitor stopped early: {:?}", monitor.await);
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the monitor did not finish in 15 minutes ({done}/{sent})");
        }
    }
    let mon_s = started.elapsed().as_secs_f64();
    println!(
        "monitor: {sent} events processed and committed (effects acknowledged) in {mon_s:.1}s = {:.0} events/s ({:.0}% of the raw consume rate)",
        sent as f64 / mon_s,
        100.0 * (sent as f64 / mon_s) / (got as f64 / raw_s)
    );
    let _ = stop.send(true);
    monitor.await.context("monitor task")??;

    // 4. Restore: N open items of six events on one changelog partition.
    let n = args.restore_items;
    let base = 1_740_963_600_000i64;
    let state = |i: usize| -> (String, i32, Vec<u8>, Option<i64>) {
        let id = format!("SCJG-20250303-{i:07}");
        let ev = |k: usize, ty: EventType, text: Option<&str>, number: u64| StoredEvent {
            event_id: format!("{id}-{k:02}"),
            event_type: ty,
            occurred_at: Timestamp(base + (i % 5000) as i64 * 60_000 + k as i64 * 3_600_000),
            delay_ms: 2_000,
            actor: (ty != EventType::Submitted).then(|| "王伟".to_owned()),
            text: text.map(str::to_owned),
            number,
            blank_reason: false,
        };
        let s = ItemState {
            item_id: id.clone(),
            service_code: Some("SCJG-001".into()),
            service_from_submitted: true,
            department_code: "SCJG".into(),
            events: vec![
                ev(1, EventType::Submitted, Some("SCJG-001"), 0),
                ev(2, EventType::CorrectionRequested, None, 0),
                ev(3, EventType::CorrectionSubmitted, None, 0),
                ev(4, EventType::Accepted, None, 0),
                ev(5, EventType::StepCompleted, Some("承办"), 0),
                ev(6, EventType::FeeCharged, None, 0),
            ],
            held: vec![],
        };
        (id, 0, jiancha_proto::v1::ItemState::from(&s).encode_to_vec(), None)
    };
    let started = Instant::now();
    let written = send_all(&p, (0..n).map(state), &cfg.topics.state, false).await?;
    println!("changelog: {written} item states written in {:.1}s", started.elapsed().as_secs_f64());
    let mut engine = Engine::new(Arc::new(catalog), calendars);
    let mut timers = TimerQueue::default();
    let started = Instant::now();
    let restored = jiancha_monitor::monitor::read_changelog(0, &cfg, &mut engine, &mut timers)?;
    let restore_s = started.elapsed().as_secs_f64();
    println!(
        "restore: {restored} open items from the changelog in {restore_s:.1}s = {:.0} items/s ({} open in the engine)",
        restored as f64 / restore_s,
        engine.open_items()
    );
    Ok(())
}
