//! Engine benchmarks: events per second per core with one million open items, and the
//! memory one typical open item (six events) costs.
//!
//! `cargo bench -p jiancha-core --bench engine` (JIANCHA_BENCH_ITEMS overrides the
//! number of open items). Figures are recorded in docs/performance.md.
#![allow(unsafe_code)] // The counting allocator (benches/common.rs) is the only unsafe code, and only in benchmarks.
#![allow(clippy::disallowed_methods)] // A benchmark measures wall time; the core itself never reads it.

use criterion::{Criterion, Throughput, criterion_group};
use jiancha_core::clock::Counter;
use jiancha_core::event::{Event, EventBody};
use jiancha_core::time::{DAY_MS, HOUR_MS};
use jiancha_core::{Calendars, Catalog, Engine, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::{LIVE, rss_bytes};

const CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
/// 2025-03-03T09:00:00+08:00.
const BASE: i64 = 1_740_963_600_000;
const SERVICES: [&str; 4] = ["SCJG-001", "WJW-002", "ZRZY-001", "GAJ-001"];
const DEPTS: [&str; 4] = ["SCJG", "WJW", "ZRZY", "GAJ"];

fn event(item: u64, n: u32, at: i64, body: EventBody) -> Event {
    let s = (item % 4) as usize;
    let item_id = format!("{}-20250303-{item:06}", DEPTS[s]);
    Event {
        event_id: format!("{item_id}-{n:02}"),
        item_id,
        service_code: matches!(body, EventBody::Submitted).then(|| SERVICES[s].to_owned()),
        department_code: DEPTS[s].to_owned(),
        occurred_at: Timestamp(at),
        actor: Some(["王伟", "李娜", "张敏", "刘洋"][(item % 4) as usize].to_owned()),
        seq: Some(u64::from(n)),
        body,
    }
}

/// A typical open item: received, one correction round, accepted, a step done, a fee.
fn open_item(item: u64) -> [Event; 6] {
    let t = BASE + (item % 5000) as i64 * 60_000;
    let step = ["承办", "现场核查", "审查", "初审"][(item % 4) as usize].to_owned();
    [
        event(item, 1, t, EventBody::Submitted),
        event(item, 2, t + HOUR_MS, EventBody::CorrectionRequested { materials: vec!["营业执照副本".into()] }),
        event(item, 3, t + DAY_MS, EventBody::CorrectionSubmitted),
        event(item, 4, t + DAY_MS + HOUR_MS, EventBody::Accepted),
        event(item, 5, t + 2 * DAY_MS, EventBody::StepCompleted { step }),
        event(item, 6, t + 2 * DAY_MS + HOUR_MS, EventBody::FeeCharged { amount_fen: 0 }),
    ]
}

/// A whole lifecycle of a fresh item (the steady stream once a million are open).
fn lifecycle(item: u64) -> [Event; 6] {
    let t = BASE + (item % 5000) as i64 * 60_000;
    let step = ["承办", "现场核查", "审查", "初审"][(item % 4) as usize].to_owned();
    [
        event(item, 1, t, EventBody::Submitted),
        event(item, 2, t + HOUR_MS, EventBody::Accepted),
        event(item, 3, t + DAY_MS, EventBody::StepCompleted { step }),
        event(item, 4, t + DAY_MS + HOUR_MS, EventBody::FeeCharged { amount_fen: 0 }),
        Event {
            actor: Some("陈局长".to_owned()), // The decider is not the reviewer (no SEPARATION_OF_DUTIES).
            ..event(
                item,
                5,
                t + 2 * DAY_MS,
                EventBody::Decided { outcome: jiancha_core::event::Outcome::Approved, reason: Some("符合".into()) },
            )
        },
        event(item, 6, t + 3 * DAY_MS, EventBody::Delivered),
    ]
}

fn items_from_env() -> u64 {
    std::env::var("JIANCHA_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn new_engine() -> Engine {
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(CATALOG, &calendars).expect("demo catalog");
    Engine::new(Arc::new(catalog), calendars)
}

/// Fills an engine with `n` open items; prints bytes per item and the fill rate.
fn populate(n: u64, report: bool) -> Engine {
    let mut engine = new_engine();
    let now = Timestamp(BASE + 3 * DAY_MS);
    let mut fx = Vec::new();
    let (live0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let mut busy = Duration::ZERO;
    // Small chunks, so the transient input buffers do not inflate the RSS measured.
    const CHUNK: u64 = 500;
    let mut item = 0;
    while item < n {
        let events: Vec<Event> = (item..(item + CHUNK).min(n)).flat_map(open_item).collect();
        let start = Instant::now();
        for e in &events {
            engine.apply(e, e.occurred_at, now, &mut fx);
            fx.clear();
        }
        busy += start.elapsed();
        item += CHUNK;
    }
    if report {
        let live = LIVE.load(Ordering::Relaxed) - live0;
        let rss = rss_bytes().saturating_sub(rss0);
        println!(
            "populate: {n} open items x 6 events in {:.2}s = {:.0} events/s; heap {:.0} B/item (allocator-counted), RSS {:.0} B/item, engine-accounted {:.0} B/item",
            busy.as_secs_f64(),
            (6 * n) as f64 / busy.as_secs_f64(),
            live as f64 / n as f64,
            rss as f64 / n as f64,
            engine.item_bytes() as f64 / n as f64,
        );
    }
    engine
}

fn benches(c: &mut Criterion) {
    let n = items_from_env();
    let mut engine = populate(n, true);
    let now = Timestamp(BASE + 3 * DAY_MS);
    let mut next_item = n;
    let mut fx = Vec::new();

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("apply/{n}-open/fresh-lifecycles"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let items = left.div_ceil(6).min(20_000);
                let events: Vec<Event> = (next_item..next_item + items).flat_map(lifecycle).collect();
                next_item += items;
                let take = events.len().min(left as usize);
                let start = Instant::now();
                for e in &events[..take] {
                    engine.apply(e, e.occurred_at, now, &mut fx);
                    fx.clear();
                }
                total += start.elapsed();
                left -= take as u64;
            }
            total
        })
    });
    // One more event on an open item picked at random, applied one by one as a caller
    // with one event at a time does, then as a batch applied in order with the items of
    // the next events asked for ahead (`Engine::prefetch_batch`, as `replay` does). The
    // two variants take the even and the odd items. Each event is new, and an item takes
    // at most one: when a variant's half is used up the engine is populated again (a
    // counter restarted with each criterion sample re-sent the same events, which the
    // duplicate check answered; one never restarted grew the items sample after sample).
    let mut used = [0u64; 2];
    let half_of_items = (n / 2).max(1);
    for prefetched in [false, true] {
        let half = usize::from(prefetched);
        let name = if prefetched { "event-on-random-open-item-prefetched" } else { "event-on-random-open-item" };
        group.bench_function(format!("apply/{n}-open/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let take = left.min(50_000).min(half_of_items);
                    if used[half] + take > half_of_items {
                        engine = populate(n, false);
                        used = [0, 0];
                    }
                    let events: Vec<Event> = (used[half]..used[half] + take)
                        .map(|k| {
                            let item = (k * 7919) % half_of_items * 2 + half as u64;
                            let mut e = event(item, 7, BASE + 2 * DAY_MS + 2 * HOUR_MS, EventBody::StepCompleted { step: "审核".into() });
                            e.event_id = format!("{}-x", e.item_id);
                            e
                        })
                        .collect();
                    used[half] += take;
                    let start = Instant::now();
                    for (at, e) in events.iter().enumerate() {
                        if prefetched {
                            engine.prefetch_batch(at, |i| events.get(i).map(|e| e.item_id.as_str()));
                        }
                        engine.apply(e, e.occurred_at, now, &mut fx);
                        fx.clear();
                    }
                    total += start.elapsed();
                    left -= take;
                }
                total
            })
        });
    }
    group.finish();

    let calendars = Calendars::builtin();
    let counter = Counter::working(calendars.default_calendar());
    c.bench_function("clock/deadline-20-working-days", |b| {
        let mut t = BASE;
        b.iter(|| {
            t += 3_600_123;
            std::hint::black_box(counter.deadline(std::hint::black_box(t), 20 * DAY_MS, &[]))
        })
    });
}

criterion_group! {
    name = engine;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(6));
    targets = benches
}

fn main() {
    engine();
    Criterion::default().configure_from_args().final_summary();
}
