//! `jiancha simulate`: a realistic event stream for a catalog, for demos and load tests.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;
use jiancha_platform::rules::load_rules;
use jiancha_sim::{SimConfig, simulate};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha simulate --catalog deploy/demo/catalog.toml --items 300 --seed 7 > events.jsonl
  jiancha simulate --catalog deploy/demo/catalog.toml --items 300 --edge-cases > deploy/demo/events.jsonl

Each line is an event in the JSON form of DOMAIN §2 with `received_at`, ordered by arrival.")]
pub struct SimulateArgs {
    /// The service catalog (TOML).
    #[arg(long)]
    catalog: PathBuf,
    /// An extra calendar file (repeatable).
    #[arg(long = "calendar")]
    calendars: Vec<PathBuf>,
    /// How many items to submit.
    #[arg(long, default_value_t = 300)]
    items: usize,
    /// Seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The first day applications arrive (YYYY-MM-DD).
    #[arg(long, default_value = "2025-03-03")]
    first_day: NaiveDate,
    /// Working days over which submissions are spread.
    #[arg(long, default_value_t = 60)]
    spread_days: u32,
    /// Share of items handled irregularly: about 3% is what a real centre sees (a few
    /// alerts per hundred items); raise it (0.3) to exercise the rules.
    #[arg(long, default_value_t = 0.03)]
    irregular_share: f64,
    /// Append hand-written edge cases: invalid lines, and an item whose clocks reach an unpublished year.
    #[arg(long)]
    edge_cases: bool,
}

pub fn run(args: SimulateArgs) -> Result<()> {
    let (catalog, calendars) = load_rules(Some(&args.catalog), &args.calendars)?;
    let config = SimConfig {
        seed: args.seed,
        items: args.items,
        first_day: args.first_day,
        spread_days: args.spread_days,
        irregular_share: args.irregular_share.clamp(0.0, 1.0),
    };
    let events = simulate(&catalog, &calendars, &config);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for e in &events {
        serde_json::to_writer(&mut out, &e.json)?;
        out.write_all(b"\n")?;
    }
    if args.edge_cases {
        let service = catalog.services().iter().find(|s| s.cancelled_on.is_none()).context("the catalog has no active service")?;
        let (code, dept) = (&*service.code, &*service.department);
        let lines = [
            // An item near the end of the last published year: its clocks need the next year.
            format!(
                r#"{{"event_id":"EDGE-YEAR-01","item_id":"EDGE-YEAR","service_code":"{code}","department_code":"{dept}","type":"SUBMITTED","occurred_at":"2026-12-28T10:00:00+08:00"}}"#
            ),
            format!(
                r#"{{"event_id":"EDGE-YEAR-02","item_id":"EDGE-YEAR","department_code":"{dept}","type":"ACCEPTED","actor":"边界测试","occurred_at":"2026-12-29T10:00:00+08:00"}}"#
            ),
            // Invalid input: reported on stderr by replay, sent to the dead-letter topic live.
            "this is not json".to_owned(),
            format!(
                r#"{{"event_id":"EDGE-BAD-01","department_code":"{dept}","type":"SUBMITTED","service_code":"{code}","occurred_at":"2025-03-03T10:00:00+08:00"}}"#
            ),
            format!(
                r#"{{"event_id":"EDGE-BAD-02","item_id":"EDGE-BAD","department_code":"{dept}","type":"APPROVE","actor":"某人","occurred_at":"2025-03-03T10:00:00+08:00"}}"#
            ),
            format!(
                r#"{{"event_id":"EDGE-BAD-03","item_id":"EDGE-BAD","department_code":"{dept}","type":"FEE_CHARGED","actor":"某人","amount_fen":-100,"occurred_at":"2025-03-03T10:00:00+08:00"}}"#
            ),
        ];
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
