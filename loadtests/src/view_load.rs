//! The gateway's read model at scale, in process (no broker, no network): N simulated
//! items replayed through the engine, their states imported into a gateway `View` as
//! the changelog would deliver them; then resident memory per item, `GetItem`'s timeline
//! computation and a `ListItems` page with a selective filter.

use anyhow::{Context, Result};
use clap::Parser;
use jiancha_core::{Calendars, Engine, ItemRef, Replay, Timestamp};
use jiancha_sim::{SimConfig, simulate};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "view-load", about = "The gateway's view with many items: memory, GetItem and ListItems cost")]
struct Args {
    /// Items.
    #[arg(long, default_value_t = 1_000_000)]
    items: usize,
    /// Timelines computed for the latency figure.
    #[arg(long, default_value_t = 20_000)]
    lookups: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (catalog, calendars) = jiancha_platform::rules::load_rules(None, &[])?;
    let first_day = chrono::NaiveDate::from_ymd_opt(2025, 3, 3).context("date")?;
    let events = simulate(
        &catalog,
        &Calendars::builtin(),
        &SimConfig { seed: 11, items: args.items, first_day, spread_days: 60, irregular_share: 0.3 },
    );
    let mut replay = Replay::new(Engine::new(catalog.clone(), calendars.clone()));
    for e in &events {
        let _ = replay.arrive_json(e.json.to_string().as_bytes(), &mut |_| {});
    }
    let now = Timestamp::parse_rfc3339("2025-06-30T12:00:00+08:00")?;
    replay.finish(Some(now), &mut |_| {});
    let source = replay.engine();
    let states: Vec<_> = source.item_refs().filter_map(|i| source.export(i)).collect();
    println!("{} items, {} events simulated and replayed", states.len(), events.len());
    drop(events);

    let view = jiancha_gateway::View::new(catalog, calendars, 8, 1000);
    let started = Instant::now();
    for s in &states {
        view.add_state(s);
    }
    let took = started.elapsed();
    let engine = view.engine.read().map_err(|_| anyhow::anyhow!("lock"))?;
    println!(
        "view: {} item states imported in {:.2} s ({:.0} states/s); item memory {:.0} MiB = {:.0} B per item (allocator-counted); process RSS {:.0} MiB",
        states.len(),
        took.as_secs_f64(),
        states.len() as f64 / took.as_secs_f64(),
        engine.item_bytes() as f64 / 1048576.0,
        engine.item_bytes() as f64 / states.len() as f64,
        jiancha_loadtest::rss_bytes() as f64 / 1048576.0
    );

    let n = engine.len();
    let mut times = Vec::with_capacity(args.lookups);
    let mut clocks = 0;
    for k in 0..args.lookups {
        let state = &states[(k * 7919) % states.len()];
        let started = Instant::now();
        let item = engine.find(&state.department_code, &state.item_id).context("item")?;
        let t = engine.timeline(item, now).context("timeline")?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        clocks += t.clocks.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "GetItem timeline (find, every clock with its derivation, alerts in force): p50 {:.1} µs, p99 {:.1} µs over {} lookups ({:.1} clocks each)",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        args.lookups,
        clocks as f64 / args.lookups as f64
    );
    // ListItems: one page of 100 overdue items of one department, and a full scan that finds none.
    let started = Instant::now();
    let mut page = 0;
    let mut scanned = 0;
    for i in 0..n as u32 {
        scanned += 1;
        if let Some(s) = engine.summary(ItemRef(i))
            && s.department_code == "SCJG"
            && s.overdue
        {
            page += 1;
            if page == 100 {
                break;
            }
        }
    }
    println!("ListItems page of 100 (department + overdue): {:.2} ms, {scanned} items scanned", started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    let none = (0..n as u32).filter_map(|i| engine.summary(ItemRef(i))).filter(|s| s.department_code == "NONE").count();
    println!("ListItems over all {n} items matching none: {:.0} ms ({none} found)", started.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
