//! A provincial year in fast-forward: tens of millions of items submitted evenly over 365
//! days, each handled in a few days (one in twenty left stuck open), through one engine
//! on a virtual clock, with closed items retired after the retention window, and the
//! same year again keeping every item. Prints, month by month, the items held and their
//! heap; at the end the time to export and import every item held (the engine's side of
//! a restore from the changelog).
//!
//! `cargo bench -p jiancha-core --bench year` (JIANCHA_YEAR_ITEMS, default 20 000 000;
//! JIANCHA_YEAR_RETENTION_DAYS, default 30). With `-- --test` (CI) a small year whose
//! held items must stay bounded. Figures: docs/performance.md#a-year-of-items.
#![allow(unsafe_code)] // The counting allocator (benches/common) is the only unsafe code, and only in benchmarks.
#![allow(clippy::disallowed_methods)] // A benchmark measures wall time; the core itself never reads it.
#![allow(clippy::unwrap_used)] // A benchmark: a panic is the failure report.

mod common;

use common::{LIVE, rss_bytes};
use jiancha_core::event::{Event, EventBody, Outcome};
use jiancha_core::time::{DAY_MS, HOUR_MS};
use jiancha_core::{Calendars, Catalog, Engine, Replay, Timestamp};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
/// 2025-01-01T00:00:00+08:00.
const YEAR_START: i64 = 1_735_660_800_000;
const SERVICES: [&str; 4] = ["SCJG-001", "WJW-002", "ZRZY-001", "GAJ-001"];
const DEPTS: [&str; 4] = ["SCJG", "WJW", "ZRZY", "GAJ"];

/// The instant of event `n` (1…6) of `item`, or None after its last.
fn when(item: u64, n: u32, per_day: u64) -> Option<i64> {
    let day = (item / per_day) as i64;
    let submitted = YEAR_START + day * DAY_MS + 9 * HOUR_MS + ((item % per_day) * 8 * HOUR_MS as u64 / per_day) as i64;
    let handling = 2 + (item % 7) as i64; // Decided 2 to 8 days after submission.
    let stuck = item % 20 == 19; // Never decided: stays open (and overdue).
    match n {
        1 => Some(submitted),
        2 => Some(submitted + 2 * HOUR_MS),
        3 => Some(submitted + DAY_MS),
        4 if !stuck => Some(submitted + handling * DAY_MS),
        5 if !stuck => Some(submitted + (handling + 1) * DAY_MS),
        _ => None,
    }
}

fn event(item: u64, n: u32, at: i64) -> Event {
    let s = (item % 4) as usize;
    let item_id = format!("{}-2025-{item:09}", DEPTS[s]);
    let body = match n {
        1 => EventBody::Submitted,
        2 => EventBody::Accepted,
        3 => EventBody::StepCompleted { step: ["承办", "现场核查", "审查", "初审"][s].to_owned() },
        4 => EventBody::Decided { outcome: Outcome::Approved, reason: Some("符合".into()) },
        _ => EventBody::Delivered,
    };
    Event {
        event_id: format!("{item_id}-{n}"),
        service_code: (n == 1).then(|| SERVICES[s].to_owned()),
        department_code: DEPTS[s].to_owned(),
        item_id,
        occurred_at: Timestamp(at),
        actor: Some(if n == 4 { "陈局长" } else { ["王伟", "李娜", "张敏", "刘洋"][s] }.to_owned()),
        seq: Some(u64::from(n)),
        body,
    }
}

fn new_engine(retention_days: Option<u64>) -> Engine {
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(CATALOG, &calendars).expect("demo catalog");
    let mut engine = Engine::new(Arc::new(catalog), calendars);
    engine.set_retention(retention_days.map(|d| Duration::from_secs(d * 86_400)));
    engine
}

/// What a year left behind.
struct YearEnd {
    held: usize,
    open: usize,
    peak_held: usize,
    peak_heap: usize,
    heap: usize,
    events: u64,
    alerts: u64,
    retired: usize,
    seconds: f64,
    restore_items: usize,
    restore_seconds: f64,
}

fn year(items: u64, retention_days: Option<u64>, report: bool) -> YearEnd {
    let per_day = items.div_ceil(365).max(1);
    let live0 = LIVE.load(Ordering::Relaxed);
    let mut replay = Replay::new(new_engine(retention_days));
    // The next event of every item in flight, by instant.
    let mut next: BinaryHeap<Reverse<(i64, u64, u32)>> = BinaryHeap::new();
    let mut submitted = 0u64;
    let (mut events, mut alerts, mut retired) = (0u64, 0u64, 0usize);
    let (mut peak_held, mut peak_heap) = (0usize, 0usize);
    let mut effects = Vec::new();
    let started = Instant::now();
    let label = retention_days.map_or("kept for ever".to_owned(), |d| format!("retired after {d} days"));
    if report {
        println!("\n{items} items, closed items {label}");
        println!("{:>5} {:>12} {:>11} {:>11} {:>10} {:>11} {:>8}", "day", "submitted", "held", "open", "heap MiB", "alerts", "s");
    }
    for day in 0..=395i64 {
        let end_of_day = YEAR_START + (day + 1) * DAY_MS;
        // The items submitted today enter the queue with their first event.
        while submitted < items && submitted / per_day <= day as u64 {
            next.push(Reverse((when(submitted, 1, per_day).unwrap(), submitted, 1)));
            submitted += 1;
        }
        while let Some(&Reverse((at, item, n))) = next.peek() {
            if at >= end_of_day {
                break;
            }
            next.pop();
            let e = event(item, n, at);
            replay.arrive(&e, e.occurred_at, &mut |_| alerts += 1);
            events += 1;
            if let Some(later) = when(item, n + 1, per_day) {
                next.push(Reverse((later, item, n + 1)));
            }
        }
        replay.advance(Timestamp(end_of_day), &mut |_| alerts += 1);
        retired += replay.engine_mut().retire_closed(Timestamp(end_of_day), &mut effects);
        effects.clear();
        let heap = LIVE.load(Ordering::Relaxed).saturating_sub(live0);
        peak_held = peak_held.max(replay.engine().len());
        peak_heap = peak_heap.max(heap);
        if report && (day % 30 == 29 || day == 395) {
            println!(
                "{:>5} {:>12} {:>11} {:>11} {:>10.0} {:>11} {:>8.1}",
                day + 1,
                submitted,
                replay.engine().len(),
                replay.engine().open_items(),
                heap as f64 / (1 << 20) as f64,
                alerts,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let heap = LIVE.load(Ordering::Relaxed).saturating_sub(live0);
    // The engine's side of a restore: every item held, exported and imported afresh.
    let restore_started = Instant::now();
    let engine = replay.engine();
    let mut restored = new_engine(retention_days);
    let mut fx = Vec::new();
    let mut restore_items = 0;
    for item in engine.item_refs() {
        if let Some(state) = engine.export(item) {
            restored.import(&state, &mut fx);
            restore_items += 1;
        }
        fx.clear();
    }
    let restore_seconds = restore_started.elapsed().as_secs_f64();
    YearEnd {
        held: engine.len(),
        open: engine.open_items(),
        peak_held,
        peak_heap,
        heap,
        events,
        alerts,
        retired,
        seconds,
        restore_items,
        restore_seconds,
    }
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let items = if test_mode { 36_500 } else { env("JIANCHA_YEAR_ITEMS", 20_000_000) };
    let retention = env("JIANCHA_YEAR_RETENTION_DAYS", 30);
    let rss0 = rss_bytes();
    let with = year(items, Some(retention), !test_mode);
    let rss_with = rss_bytes().saturating_sub(rss0);
    // A year's open items and the window's closed ones: the rest has left.
    let per_day = items.div_ceil(365);
    let window = (retention + 10) * per_day;
    assert!(
        with.peak_held as u64 <= items / 20 + window,
        "held {} items at the peak, more than the stuck ones ({}) and the window's ({window})",
        with.peak_held,
        items / 20
    );
    assert_eq!(with.held + with.retired, items as usize, "every item is held or retired");
    if test_mode {
        println!("year: {items} items, peak held {} (test mode)", with.peak_held);
        return;
    }
    let without = year(items, None, true);
    println!("\n| | retired after {retention} days | kept for ever |\n|---|---|---|");
    let row = |name: &str, a: String, b: String| println!("| {name} | {a} | {b} |");
    row("events applied", with.events.to_string(), without.events.to_string());
    row("alert updates", with.alerts.to_string(), without.alerts.to_string());
    row("items held at the end (open)", format!("{} ({})", with.held, with.open), format!("{} ({})", without.held, without.open));
    row("items held at the peak", with.peak_held.to_string(), without.peak_held.to_string());
    row("items retired", with.retired.to_string(), "0".into());
    let mib = |b: usize| format!("{:.0} MiB", b as f64 / (1 << 20) as f64);
    row("engine heap at the end (allocator-counted)", mib(with.heap), mib(without.heap));
    row("engine heap at the peak", mib(with.peak_heap), mib(without.peak_heap));
    row("resident memory grown, first run", mib(rss_with), "—".into());
    row("year in fast-forward", format!("{:.0} s", with.seconds), format!("{:.0} s", without.seconds));
    row(
        "restore (export + import every item held)",
        format!("{} items, {:.1} s", with.restore_items, with.restore_seconds),
        format!("{} items, {:.1} s", without.restore_items, without.restore_seconds),
    );
}
