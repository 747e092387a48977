//! What each event costs after the engine has decided: rendering its alerts (the JSON
//! line of `replay`, the protobuf record of the alert topic) and exporting its item's
//! state to the changelog. `cargo bench -p jiancha-proto --bench output`; figures in
//! docs/performance.md.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiancha_core::engine::Effect;
use jiancha_core::event::{Event, EventBody};
use jiancha_core::time::{DAY_MS, HOUR_MS};
use jiancha_core::{Alert, Calendars, Catalog, Engine, Timestamp};
use prost::Message as _;
use std::hint::black_box;
use std::sync::Arc;

const CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
/// 2025-03-03T09:00:00+08:00.
const BASE: i64 = 1_740_963_600_000;

fn event(item: u64, n: u32, at: i64, body: EventBody) -> Event {
    let item_id = format!("SCJG-20250303-{item:06}");
    Event {
        event_id: format!("{item_id}-{n:02}"),
        item_id,
        service_code: matches!(body, EventBody::Submitted).then(|| "SCJG-001".to_owned()),
        department_code: "SCJG".to_owned(),
        occurred_at: Timestamp(at),
        actor: Some("王伟".to_owned()),
        seq: Some(u64::from(n)),
        body,
    }
}

/// An engine with `n` open items of six events (one with a repeated correction notice,
/// so each holds an alert), and the alerts they raised.
fn engine_with(n: u64) -> (Engine, Vec<Alert>) {
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(CATALOG, &calendars).expect("demo catalog");
    let mut engine = Engine::new(Arc::new(catalog), calendars);
    let mut effects = Vec::new();
    let mut alerts = Vec::new();
    for item in 0..n {
        let t = BASE + (item % 5000) as i64 * 60_000;
        let events = [
            event(item, 1, t, EventBody::Submitted),
            event(item, 2, t + HOUR_MS, EventBody::CorrectionRequested { materials: vec!["营业执照副本".into()] }),
            event(item, 3, t + DAY_MS, EventBody::CorrectionSubmitted),
            event(item, 4, t + DAY_MS + HOUR_MS, EventBody::CorrectionRequested { materials: vec!["场所证明".into()] }),
            event(item, 5, t + 2 * DAY_MS, EventBody::CorrectionSubmitted),
            event(item, 6, t + 2 * DAY_MS + HOUR_MS, EventBody::Accepted),
        ];
        for e in &events {
            engine.apply(e, Timestamp(e.occurred_at.0 + 1000), Timestamp(e.occurred_at.0 + 1000), &mut effects);
        }
        for e in effects.drain(..) {
            if let Effect::Alert(a) = e {
                alerts.push(*a);
            }
        }
    }
    (engine, alerts)
}

fn output(c: &mut Criterion) {
    let (engine, alerts) = engine_with(2_000);
    assert!(!alerts.is_empty(), "the items raise alerts");
    let items: Vec<_> = engine.item_refs().collect();

    let mut g = c.benchmark_group("output");
    g.throughput(Throughput::Elements(alerts.len() as u64));
    g.bench_function("alert as a replay JSON line", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for a in &alerts {
                serde_json::to_writer(&mut out, &a.to_json()).expect("json");
                out.push(b'\n');
            }
            black_box(out.len())
        })
    });
    g.bench_function("alert as a replay JSON line, written directly (Alert::write_json)", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for a in &alerts {
                a.write_json(&mut out);
                out.push(b'\n');
            }
            black_box(out.len())
        })
    });
    g.bench_function("alert as a protobuf record", |b| {
        b.iter(|| alerts.iter().map(|a| jiancha_proto::v1::Alert::from(a).encode_to_vec().len()).sum::<usize>())
    });
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("item state export (six events, to the changelog)", |b| {
        b.iter(|| {
            items
                .iter()
                .map(|&i| jiancha_proto::v1::ItemState::from(&engine.export(i).expect("an item")).encode_to_vec().len())
                .sum::<usize>()
        })
    });
    g.bench_function("item state encoded straight from the engine (encode_state)", |b| {
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            items
                .iter()
                .map(|&i| {
                    buf.clear();
                    jiancha_proto::encode_state(engine.state(i).expect("an item"), &mut buf);
                    buf.len()
                })
                .sum::<usize>()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("firing a timer alert (texts, derivation, id)", |b| {
        b.iter_batched(
            || engine_with(1).0,
            |mut e| {
                let mut effects = Vec::new();
                let item = e.item_refs().next().expect("an item");
                e.fire(item, Timestamp(BASE + 30 * DAY_MS), &mut effects);
                effects.len()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, output);
criterion_main!(benches);
