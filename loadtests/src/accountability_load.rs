//! Load on the accountability store:
//!
//! 1. **Cases ingested per second**: N YELLOW/RED alert updates through `Store::ingest` in
//!    batches (as the consumer writes them: one transaction per batch, the audit chain
//!    appended), then the same N again (redelivery: no new case).
//! 2. **Report generation time**: M items (and an alert for one in five) upserted, then
//!    the monthly report (`jiancha report`'s computation) timed, by department and by
//!    service.
//!
//! `--database` names the store (`sqlite://FILE` or `postgres://…`); see loadtests/README.md.

use anyhow::Result;
use clap::Parser;
use jiancha_accountability::stats::{self, GroupBy};
use jiancha_accountability::store::{Incoming, ItemFacts, Store};
use jiancha_proto::v1;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "accountability-load", about = "Cases ingested per second and report generation time")]
struct Args {
    /// `sqlite://FILE` or `postgres://user@host/db` (an empty database).
    #[arg(long)]
    database: String,
    /// Alert updates that open cases.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// Updates per transaction (the consumer's batch).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Items for the report.
    #[arg(long, default_value_t = 1_000_000)]
    items: usize,
}

const DEPARTMENTS: [&str; 8] = ["GAJ", "JTJ", "JYJ", "SCJG", "SHJ", "WJW", "ZJJ", "ZRZY"];

fn alert(i: usize) -> v1::Alert {
    let red = i.is_multiple_of(4);
    v1::Alert {
        alert_id: format!("{i:032x}"),
        status: v1::AlertStatus::Fired as i32,
        item_id: Some(format!("LOAD-{i:08}")),
        service_code: Some("SCJG-001".into()),
        department_code: Some(DEPARTMENTS[i % DEPARTMENTS.len()].into()),
        kind: if red { v1::AlertKind::StatutoryOverdue } else { v1::AlertKind::PromisedOverdue } as i32,
        level: if red { v1::Level::Red } else { v1::Level::Yellow } as i32,
        triggered_at: "2025-03-14T00:00:00+08:00".into(),
        event_id: None,
        message: Some(v1::Bilingual {
            zh: format!("办件LOAD-{i:08}超过承诺时限10个工作日，截止2025-03-14 00:00仍未作出决定"),
            en: "over the promised limit".into(),
        }),
        derivation: Some(v1::Bilingual {
            zh: "起算：受理，2025-02-28 10:00；起算当日不计入（民法典第二百零一条），自2025-03-01 00:00起计算；承诺时限10个工作日；期限届满：2025-03-14 00:00。".into(),
            en: "start: acceptance at 2025-02-28 10:00; …".into(),
        }),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let store = Store::open(&args.database).await?;
    println!("store: {:?} {}", store.backend(), jiancha_accountability::service::redact(&args.database));
    let t0 = jiancha_core::Timestamp::parse_rfc3339("2025-03-14T09:00:00+08:00")?.0;

    let started = Instant::now();
    let mut opened = 0;
    for chunk in (0..args.cases).collect::<Vec<_>>().chunks(args.batch) {
        let batch: Vec<Incoming> = chunk.iter().map(|&i| Incoming { alert: alert(i), published_at: t0 }).collect();
        opened += store.ingest(&batch, t0).await?.opened;
    }
    let took = started.elapsed();
    println!(
        "ingest: {opened} cases opened (with their audit entries) in {:.2} s = {:.0} cases/s, batches of {}",
        took.as_secs_f64(),
        opened as f64 / took.as_secs_f64(),
        args.batch
    );
    let started = Instant::now();
    let mut unchanged = 0;
    for chunk in (0..args.cases).collect::<Vec<_>>().chunks(args.batch) {
        let batch: Vec<Incoming> = chunk.iter().map(|&i| Incoming { alert: alert(i), published_at: t0 }).collect();
        unchanged += store.ingest(&batch, t0).await?.unchanged;
    }
    let took = started.elapsed();
    println!(
        "redelivery: {unchanged} updates, no case opened, in {:.2} s = {:.0} updates/s",
        took.as_secs_f64(),
        unchanged as f64 / took.as_secs_f64()
    );
    let started = Instant::now();
    let verdict = store.verify_audit().await?;
    println!("audit verify: {verdict:?} in {:.2} s", started.elapsed().as_secs_f64());

    // Items: one million over a year, a quarter of them in March 2025.
    let started = Instant::now();
    let day = 86_400_000i64;
    let base = jiancha_core::Timestamp::parse_rfc3339("2025-01-01T09:00:00+08:00")?.0;
    let mut batch = Vec::with_capacity(5000);
    for i in 0..args.items {
        let submitted = base + (i as i64 % 120) * day + (i as i64 % 7) * 3_600_000;
        let used = (i % 13) as f64;
        batch.push(ItemFacts {
            item_id: format!("R-{i:08}"),
            department_code: DEPARTMENTS[i % DEPARTMENTS.len()].into(),
            service_code: Some(["SCJG-001", "ZJJ-001", "GAJ-001"][i % 3].into()),
            submitted_at: Some(submitted),
            accepted_at: Some(submitted + 3_600_000),
            decided_at: (!i.is_multiple_of(5)).then_some(submitted + (used as i64 + 1) * day),
            closed: !i.is_multiple_of(5),
            promised_days: Some(10.0),
            used_days: Some(used),
            promised_deadline: Some(submitted + 14 * day),
            promised_met: Some(used < 10.0),
            statutory_deadline: Some(submitted + 28 * day),
            statutory_met: Some(true),
            late_reports: i64::from(i.is_multiple_of(50)),
            actor: Some(format!("官员{}", i % 97)),
            natural_days: false,
        });
        if batch.len() == 5000 {
            store.upsert_items(&batch, t0).await?;
            batch.clear();
        }
    }
    store.upsert_items(&batch, t0).await?;
    println!("items: {} upserted in {:.1} s", args.items, started.elapsed().as_secs_f64());

    let (catalog, calendars) = jiancha_platform::rules::load_rules(None, &[])?;
    let tz = calendars.default_calendar().tz();
    for (label, group) in [("2025-03", GroupBy::Department), ("2025-03", GroupBy::Service), ("2025-Q1", GroupBy::Department)] {
        let period = stats::parse_period(label, tz).map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        let report = stats::report(&store, &catalog, &period, group, &Default::default()).await?;
        let csv = report.to_csv();
        let items_in: u64 = report.rows.iter().map(|r| r.received).sum();
        println!(
            "report {label} by {group:?}: {} rows over {} items received ({} in the store), CSV {} bytes, in {:.2} s",
            report.rows.len(),
            items_in,
            args.items,
            csv.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
