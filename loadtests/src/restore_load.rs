//! `restore-load`: the time to restore a partition of N open items from the changelog,
//! against a running broker (and the engine's own share, from memory). Bounded in count
//! and time; it stops by itself. Run through `loadtests/run.sh`, which starts the broker.
//! The stream measurements it used to make (produce, raw consume, the monitor's rate)
//! are `jiancha loadtest`'s now.
#![allow(clippy::disallowed_methods)]

use anyhow::Result;
use clap::Parser;
use jiancha_core::engine::{ItemState, StoredEvent};
use jiancha_core::event::EventType;
use jiancha_core::{Calendars, Catalog, Engine, TimerQueue, Timestamp};
use jiancha_platform::config::{Config, Topics};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// The broker.
    #[arg(long)]
    kafka_bootstrap: String,
    /// Open items to write to one changelog partition and restore.
    #[arg(long, default_value_t = 1_000_000)]
    restore_items: usize,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Measure only the engine side of a restore (no broker needed).
    #[arg(long)]
    engine_restore_only: bool,
}

fn config(args: &Args, run: &str) -> Config {
    Config {
        kafka_bootstrap: args.kafka_bootstrap.clone(),
        group_id: format!("load-{run}"),
        partitions: args.partitions,
        topics: Topics {
            events: "load.events".into(),
            alerts: format!("load.{run}.alerts"),
            dead_letter: format!("load.{run}.dlq"),
            alerts_dead_letter: format!("load.{run}.alerts.dlq"),
            state: format!("load.{run}.state"),
            department_prefix: format!("load.{run}.dept."),
            department_suffix: ".events".into(),
        },
        metrics_listen: String::new(),
        commit_interval: jiancha_platform::config::TimeSpan::secs(1),
        ..Config::default()
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let run = format!("{}", std::process::id());
    let cfg = config(&args, &run);
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(jiancha_platform::rules::DEMO_CATALOG, &calendars)?;
    if args.engine_restore_only {
        return engine_restore(args.restore_items, &catalog, &calendars);
    }
    jiancha_platform::kafka::ensure_topics(&cfg, &[]).await?;

    let p = producer(&args.kafka_bootstrap)?;

    // Restore: N open items of six events on one changelog partition.
    let n = args.restore_items;
    engine_restore(n, &catalog, &calendars)?;
    let state = |i: usize| (format!("SCJG-20250303-{i:07}"), 0, item_state(i), None);
    let started = Instant::now();
    let written = send_all(&p, (0..n).map(state), &cfg.topics.state, false).await?;
    println!("changelog: {written} item states written in {:.1}s", started.elapsed().as_secs_f64());
    let mut engine = Engine::new(Arc::new(catalog), calendars);
    let mut timers = TimerQueue::default();
    if n > 100_000 {
        println!("restore through the broker: reading {n} records (the broker's fetch rate bounds this)");
    }
    let started = Instant::now();
    let restored = jiancha_monitor::monitor::read_changelog(0, &cfg, &mut engine, &mut timers)?.items;
    let restore_s = started.elapsed().as_secs_f64();
    println!(
        "restore: {restored} open items from the changelog in {restore_s:.1}s = {:.0} items/s ({} open in the engine)",
        restored as f64 / restore_s,
        engine.open_items()
    );
    Ok(())
}

/// One open item of six events, encoded as a changelog record.
fn item_state(i: usize) -> Vec<u8> {
    let base = 1_740_963_600_000i64;
    let id = format!("SCJG-20250303-{i:07}");
    let ev = |k: usize, ty: EventType, text: Option<&str>| StoredEvent {
        event_id: format!("{id}-{k:02}"),
        event_type: ty,
        occurred_at: Timestamp(base + (i % 5000) as i64 * 60_000 + k as i64 * 3_600_000),
        delay_ms: 2_000,
        actor: (ty != EventType::Submitted).then(|| "王伟".to_owned()),
        text: text.map(str::to_owned),
        number: 0,
        blank_reason: false,
    };
    let s = ItemState {
        item_id: id.clone(),
        service_code: Some("SCJG-001".into()),
        service_from_submitted: true,
        department_code: "SCJG".into(),
        events: vec![
            ev(1, EventType::Submitted, Some("SCJG-001")),
            ev(2, EventType::CorrectionRequested, None),
            ev(3, EventType::CorrectionSubmitted, None),
            ev(4, EventType::Accepted, None),
            ev(5, EventType::StepCompleted, Some("承办")),
            ev(6, EventType::FeeCharged, None),
        ],
        held: vec![],
        legacy_ids: false,
    };
    jiancha_proto::v1::ItemState::from(&s).encode_to_vec()
}

/// The monitor's own share of a restore: decoding and importing N states from memory.
fn engine_restore(n: usize, catalog: &Catalog, calendars: &Calendars) -> Result<()> {
    let records: Vec<Vec<u8>> = (0..n).map(item_state).collect();
    let mut engine = Engine::new(Arc::new(catalog.clone()), calendars.clone());
    let mut effects = Vec::new();
    let started = Instant::now();
    for r in &records {
        engine.import(&jiancha_proto::decode_state(r)?, &mut effects);
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "restore, engine side: {n} item states decoded and imported from memory in {s:.2}s = {:.0} items/s ({} open)",
        n as f64 / s,
        engine.open_items()
    );
    Ok(())
}
