//! Reading an event: a JSON line as department systems write it, parsed and validated
//! into an [`Event`](jiancha_core::Event) (`parse_json_event`), and one RFC 3339 instant.
//!
//! `cargo bench -p jiancha-core --bench parse`. Figures are recorded in
//! docs/performance.md. The lines are those `jiancha simulate` writes, one of each type.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiancha_core::{Timestamp, parse_json_event};

const LINES: [&str; 13] = [
    r#"{"department_code":"WJW","event_id":"WJW-20250303-99054-01","item_id":"WJW-20250303-99054","occurred_at":"2025-03-03T09:00:30.480+08:00","received_at":"2025-03-03T09:00:48.132+08:00","seq":1,"service_code":"WJW-002","type":"SUBMITTED"}"#,
    r#"{"actor":"孙芳审","department_code":"SHJ","event_id":"SHJ-20250303-78196-03","item_id":"SHJ-20250303-78196","occurred_at":"2025-03-03T09:31:12.076+08:00","received_at":"2025-03-03T09:32:00.927+08:00","seq":3,"step":"技术评估","type":"STEP_COMPLETED"}"#,
    r#"{"actor":"周芳","department_code":"SCJG","event_id":"SCJG-20250303-14568-02","item_id":"SCJG-20250303-14568","occurred_at":"2025-03-03T09:38:28.352+08:00","received_at":"2025-03-03T09:39:20.127+08:00","seq":2,"type":"ACCEPTED"}"#,
    r#"{"actor":"杨娜批","department_code":"SCJG","event_id":"SCJG-20250303-41328-03","item_id":"SCJG-20250303-41328","occurred_at":"2025-03-03T11:30:38.343+08:00","outcome":"APPROVED","reason":"材料齐全，符合法定条件","received_at":"2025-03-03T11:32:06.904+08:00","seq":3,"type":"DECIDED"}"#,
    r#"{"actor":"张婷","amount_fen":0,"department_code":"JYJ","event_id":"JYJ-20250303-171717-02","item_id":"JYJ-20250303-171717","occurred_at":"2025-03-03T12:21:14.136+08:00","received_at":"2025-03-03T12:22:29.256+08:00","seq":2,"type":"FEE_CHARGED"}"#,
    r#"{"actor":"赵伟","department_code":"JYJ","event_id":"JYJ-20250303-25962-02","item_id":"JYJ-20250303-25962","materials":["营业执照副本"],"occurred_at":"2025-03-04T09:03:14.438+08:00","received_at":"2025-03-04T09:03:31.813+08:00","seq":2,"type":"CORRECTION_REQUESTED"}"#,
    r#"{"actor":"王艳","department_code":"WJW","event_id":"WJW-20250303-84378-03","expected_days":3,"item_id":"WJW-20250303-84378","occurred_at":"2025-03-04T09:05:52.240+08:00","received_at":"2025-03-04T09:06:28.279+08:00","seq":3,"suspension_kind":"INTERNAL_MEETING","type":"SUSPENDED"}"#,
    r#"{"department_code":"WJW","event_id":"WJW-20250303-139416-03","item_id":"WJW-20250303-139416","occurred_at":"2025-03-04T09:12:06.325+08:00","received_at":"2025-03-04T09:12:23.789+08:00","seq":3,"type":"WITHDRAWN"}"#,
    r#"{"actor":"周芳","approver":"周芳","days":15,"department_code":"SCJG","event_id":"SCJG-20250303-160614-03","item_id":"SCJG-20250303-160614","occurred_at":"2025-03-04T11:29:21.382+08:00","received_at":"2025-03-04T11:30:38.854+08:00","seq":3,"type":"EXTENDED"}"#,
    r#"{"actor":"周芳","department_code":"SCJG","event_id":"SCJG-20250303-51003-02","item_id":"SCJG-20250303-51003","occurred_at":"2025-03-05T09:04:01.667+08:00","reason":"","received_at":"2025-03-05T09:04:48.891+08:00","seq":2,"type":"NOT_ACCEPTED"}"#,
    r#"{"department_code":"WJW","event_id":"WJW-20250303-154167-03","item_id":"WJW-20250303-154167","occurred_at":"2025-03-06T09:12:13.401+08:00","received_at":"2025-03-06T09:12:58.222+08:00","seq":3,"type":"CORRECTION_SUBMITTED"}"#,
    r#"{"actor":"陈军","department_code":"GAJ","event_id":"GAJ-20250303-135408-04","item_id":"GAJ-20250303-135408","occurred_at":"2025-03-07T10:12:32.510+08:00","received_at":"2025-03-07T10:13:28.247+08:00","seq":4,"type":"RESUMED"}"#,
    r#"{"actor":"张勇","department_code":"ZJJ","event_id":"ZJJ-20250303-28802-07","item_id":"ZJJ-20250303-28802","occurred_at":"2025-03-11T12:52:19.290+08:00","received_at":"2025-03-11T12:53:51.676+08:00","seq":7,"type":"DELIVERED"}"#,
];

fn parse(c: &mut Criterion) {
    for line in LINES {
        assert!(parse_json_event(line.as_bytes()).is_ok(), "{line}");
    }
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("event JSON line, parsed and validated (13 lines, one of each type)", |b| {
        b.iter(|| {
            for line in LINES {
                std::hint::black_box(parse_json_event(std::hint::black_box(line.as_bytes())).is_ok());
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("RFC 3339 instant (2025-03-03T09:00:30.480+08:00)", |b| {
        b.iter(|| Timestamp::parse_rfc3339(std::hint::black_box("2025-03-03T09:00:30.480+08:00")))
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
