//! DOMAIN §7 end to end: events through Kafka (a Tansu broker), the monitor, and two
//! accountability services (one on SQLite, one on PostgreSQL) reading the alerts and the
//! state changelog; the statistics of a month and a quarter over gRPC against a separate,
//! simple model computed here from the same events — its own working-day calendar for
//! 2025 Q2, its own deadlines and days used, not the engine's code.
//!
//! The scenario has: a retraction (a decision that arrives after its overdue alerts fired),
//! a NO_FAULT case (核减), two departments tied, a department with nothing decided, a
//! natural-day service, a lawfully extended item, and an overdue alert at 00:00 of the
//! 1st (it belongs to the last day of the month before).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use chrono::{Datelike, Duration as Days, NaiveDate, NaiveDateTime, Weekday};
use jiancha_accountability::store::{CaseFilter, Store};
use jiancha_accountability::workflow::{self, Disposition, Status};
use jiancha_platform::auth::Role;
use jiancha_proto::v1;
use jiancha_proto::v1::stats_service_client::StatsServiceClient;
use jiancha_scenarios::grpc::{Bearer, Stack};
use jiancha_scenarios::kafka::{produce_lines, wait_for};
use jiancha_scenarios::pg::Postgres;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const CATALOG: &str = r#"
[defaults]
calendar = "cn-mainland"
late_report_limit = "100000h"

[[department]]
code = "D1"
name = "一局"
[[department]]
code = "D2"
name = "二局"
[[department]]
code = "D3"
name = "三局"
[[department]]
code = "D4"
name = "四局"

[[service]]
code = "W1"
name = "一局工作日事项"
department = "D1"
statutory_days = 20
promised_days = 5

[[service]]
code = "W2"
name = "二局工作日事项"
department = "D2"
statutory_days = 20
promised_days = 5

[[service]]
code = "N3"
name = "三局自然日事项"
department = "D3"
day_kind = "natural"
statutory_days = 30
promised_days = 10
extension_max_days = 10

[[service]]
code = "W4"
name = "四局工作日事项"
department = "D4"
statutory_days = 20
promised_days = 5
"#;

// ---- The model: its own calendar and clock (DOMAIN §3), nothing from the engine. ----

/// 2025 Q2 and around it (国务院办公厅 notice for 2025): public holidays, and the
/// weekend day worked instead (调休).
const HOLIDAYS: [&str; 11] = [
    "2025-04-04",
    "2025-04-05",
    "2025-04-06",
    "2025-05-01",
    "2025-05-02",
    "2025-05-03",
    "2025-05-04",
    "2025-05-05",
    "2025-05-31",
    "2025-06-01",
    "2025-06-02",
];
const WORKED_WEEKENDS: [&str; 1] = ["2025-04-27"];

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn is_holiday(d: NaiveDate) -> bool {
    HOLIDAYS.iter().any(|h| day(h) == d)
}

fn is_working(d: NaiveDate) -> bool {
    WORKED_WEEKENDS.iter().any(|w| day(w) == d) || (!matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !is_holiday(d))
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

/// Milliseconds of a +08:00 local time.
fn ms(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis() - 8 * 3_600_000
}

/// The end of the start day (the start day is not counted).
fn anchor(start: NaiveDateTime) -> NaiveDateTime {
    (start.date() + Days::days(1)).and_hms_opt(0, 0, 0).unwrap()
}

/// The deadline of `days` from `start`: working days, or natural days whose last day, if
/// a public holiday, runs to the end of the next working day.
fn deadline(start: NaiveDateTime, days: i64, natural: bool) -> NaiveDateTime {
    let mut d = anchor(start).date();
    if natural {
        let mut last = d + Days::days(days - 1);
        if is_holiday(last) {
            last += Days::days(1);
            while !is_working(last) {
                last += Days::days(1);
            }
        }
        return (last + Days::days(1)).and_hms_opt(0, 0, 0).unwrap();
    }
    let mut counted = 0;
    loop {
        if is_working(d) {
            counted += 1;
            if counted == days {
                return (d + Days::days(1)).and_hms_opt(0, 0, 0).unwrap();
            }
        }
        d += Days::days(1);
    }
}

/// Days used from the anchor to `t`: working time (whole working days count) or elapsed time.
fn used(start: NaiveDateTime, t: NaiveDateTime, natural: bool) -> f64 {
    let a = anchor(start);
    if t <= a {
        return 0.0;
    }
    if natural {
        return (t - a).num_seconds() as f64 / 86_400.0;
    }
    let mut secs = 0;
    let mut d = a.date();
    while d.and_hms_opt(0, 0, 0).unwrap() < t {
        let begin = d.and_hms_opt(0, 0, 0).unwrap();
        let end = begin + Days::days(1);
        if is_working(d) {
            secs += (end.min(t) - begin).num_seconds();
        }
        d += Days::days(1);
    }
    secs as f64 / 86_400.0
}

struct Item {
    id: &'static str,
    department: &'static str,
    service: &'static str,
    natural: bool,
    promised: i64,
    statutory: i64,
    accepted: NaiveDateTime,
    extension: Option<(NaiveDateTime, i64)>,
    decided: Option<NaiveDateTime>,
}

fn items() -> Vec<Item> {
    let w = |id, department, service, accepted: &str, decided: Option<&str>| Item {
        id,
        department,
        service,
        natural: false,
        promised: 5,
        statutory: 20,
        accepted: local(accepted),
        extension: None,
        decided: decided.map(local),
    };
    let n = |id, accepted: &str, extension: Option<(&str, i64)>, decided: Option<&str>| Item {
        id,
        department: "D3",
        service: "N3",
        natural: true,
        promised: 10,
        statutory: 30,
        accepted: local(accepted),
        extension: extension.map(|(t, d)| (local(t), d)),
        decided: decided.map(local),
    };
    vec![
        w("A1", "D1", "W1", "2025-06-03 10:00", Some("2025-06-09 15:00")),
        w("A2", "D1", "W1", "2025-06-03 10:00", Some("2025-06-10 16:00")),
        // Over the promised limit across the Dragon Boat holiday: its YELLOW case is resolved NO_FAULT.
        w("A3", "D1", "W1", "2025-05-28 09:00", Some("2025-06-12 10:00")),
        w("B1", "D2", "W2", "2025-06-03 10:00", Some("2025-06-05 11:00")),
        // Its decision is sent late: its overdue alerts fire, then are retracted.
        w("B2", "D2", "W2", "2025-06-03 10:00", Some("2025-06-10 16:00")),
        n("C1", "2025-06-03 10:00", None, Some("2025-06-09 10:00")),
        n("C2", "2025-06-03 10:00", Some(("2025-06-10 10:00", 5)), Some("2025-06-16 10:00")),
        n("C3", "2025-05-20 10:00", None, None),
        // Never decided; its promised deadline is 2025-07-01 00:00, the end of June 30.
        w("D1-1", "D4", "W4", "2025-06-23 10:00", None),
    ]
}

fn events(items: &[Item], late: bool) -> String {
    let t = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S+08:00").to_string();
    let mut out = String::new();
    for i in items {
        let submitted = i.accepted - Days::hours(1);
        let mut line = |n: u32, ty: &str, at: NaiveDateTime, extra: &str| {
            out += &format!(
                "{{\"event_id\":\"{}-{n}\",\"item_id\":\"{}\",\"department_code\":\"{}\",\"type\":\"{ty}\",\"occurred_at\":\"{}\"{extra}}}\n",
                i.id,
                i.id,
                i.department,
                t(at)
            );
        };
        if late {
            if i.id == "B2" {
                line(4, "DECIDED", i.decided.unwrap(), ",\"actor\":\"批准员\",\"outcome\":\"APPROVED\",\"reason\":\"符合条件\"");
                line(5, "DELIVERED", i.decided.unwrap() + Days::hours(1), ",\"actor\":\"窗口\"");
            }
            continue;
        }
        line(1, "SUBMITTED", submitted, &format!(",\"service_code\":\"{}\"", i.service));
        line(2, "ACCEPTED", i.accepted, ",\"actor\":\"受理员\"");
        if let Some((at, days)) = i.extension {
            line(3, "EXTENDED", at, &format!(",\"actor\":\"承办员\",\"approver\":\"审批员\",\"days\":{days}"));
        }
        if let Some(d) = i.decided.filter(|_| i.id != "B2") {
            line(4, "DECIDED", d, ",\"actor\":\"批准员\",\"outcome\":\"APPROVED\",\"reason\":\"符合条件\"");
            // Delivered the same day (no DELIVERY_OVERDUE).
            line(5, "DELIVERED", d + Days::hours(1), ",\"actor\":\"窗口\"");
        }
    }
    out
}

/// The model's figures of one department over [from, to).
#[derive(Debug, Default, PartialEq)]
struct Expected {
    received: u64,
    accepted: u64,
    decided: u64,
    on_time: u64,
    early: u64,
    overdue_promised: u64,
    overdue_statutory: u64,
    yellow: u64,
    red: u64,
    mean_working_days: Option<f64>,
    p90_working_days: Option<f64>,
    share: Option<f64>,
    score: Option<f64>,
}

fn model(items: &[Item], from: NaiveDateTime, to: NaiveDateTime, waived: &[&str]) -> BTreeMap<&'static str, Expected> {
    let inside = |t: NaiveDateTime| t >= from && t < to;
    // An alert at a deadline belongs to the deadline's last day: (from, to].
    let at_deadline_inside = |t: NaiveDateTime| t > from && t <= to;
    let mut out: BTreeMap<&'static str, Expected> = ["D1", "D2", "D3", "D4"].into_iter().map(|d| (d, Expected::default())).collect();
    let mut used_by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut shares: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in items {
        let e = out.get_mut(i.department).unwrap();
        let ext = i.extension.map_or(0, |(_, d)| d);
        let promised = deadline(i.accepted, i.promised + ext, i.natural);
        let statutory = deadline(i.accepted, i.statutory + ext, i.natural);
        e.received += u64::from(inside(i.accepted - Days::hours(1)));
        e.accepted += u64::from(inside(i.accepted));
        let late = |limit: NaiveDateTime| i.decided.is_none_or(|d| d >= limit);
        if late(promised) && at_deadline_inside(promised) {
            e.overdue_promised += 1;
            if !waived.contains(&i.id) {
                e.yellow += 1;
            }
        }
        if late(statutory) && at_deadline_inside(statutory) {
            e.overdue_statutory += 1;
            e.red += 1;
        }
        if let Some(d) = i.decided.filter(|d| inside(*d)) {
            e.decided += 1;
            let u = used(i.accepted, d, i.natural);
            let limit = (i.promised + ext) as f64;
            if d < promised {
                e.on_time += 1;
                if limit - u >= 1.0 {
                    e.early += 1;
                }
            }
            if !i.natural {
                used_by.entry(i.department).or_default().push(u);
            }
            shares.entry(i.department).or_default().push(u / limit);
        }
    }
    for (d, e) in &mut out {
        if e.decided == 0 {
            continue;
        }
        let mut u = used_by.remove(d).unwrap_or_default();
        u.sort_by(f64::total_cmp);
        e.mean_working_days = (!u.is_empty()).then(|| u.iter().sum::<f64>() / u.len() as f64);
        e.p90_working_days = (!u.is_empty()).then(|| u[((0.9 * u.len() as f64).ceil() as usize).max(1) - 1]);
        let s = shares.remove(d).unwrap_or_default();
        e.share = Some(s.iter().sum::<f64>() / s.len() as f64);
        e.score = Some((100.0 - (2.0 * e.yellow as f64 + 5.0 * e.red as f64) * 100.0 / e.decided as f64).clamp(0.0, 100.0));
    }
    out
}

/// Ranks from the model's scores: equal scores share a rank; no score last.
fn ranks(m: &BTreeMap<&'static str, Expected>) -> BTreeMap<&'static str, u32> {
    m.iter()
        .map(|(d, e)| {
            let rank = match e.score {
                Some(s) => 1 + m.values().filter(|o| o.score.is_some_and(|x| x > s + 1e-9)).count(),
                None => 1 + m.values().filter(|o| o.score.is_some()).count(),
            };
            (*d, rank as u32)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

fn check(label: &str, report: &v1::StatsReport, m: &BTreeMap<&'static str, Expected>) {
    let ranks = ranks(m);
    for (d, e) in m {
        let r = report.rows.iter().find(|r| r.key == *d).unwrap_or_else(|| panic!("{label}: no row for {d}: {report:#?}"));
        let got = (r.received, r.accepted, r.decided, r.decided_on_time, r.decided_early, r.overdue_promised, r.overdue_statutory);
        let want = (e.received, e.accepted, e.decided, e.on_time, e.early, e.overdue_promised, e.overdue_statutory);
        assert_eq!(got, want, "{label} {d}: received, accepted, decided, on time, early, overdue promised/statutory");
        assert_eq!((r.yellow - r.yellow.min(waived_of(d)), r.red), (e.yellow, e.red), "{label} {d}: YELLOW (less 核减) and RED");
        assert_eq!(r.rated, e.score.is_some(), "{label} {d}: rated");
        if let Some(s) = e.score {
            assert!(close(r.score, s), "{label} {d}: score {} vs model {s}", r.score);
            assert!(close(r.promised_share_used, e.share.unwrap()), "{label} {d}: share {} vs {:?}", r.promised_share_used, e.share);
            assert!(close(r.on_time_rate, e.on_time as f64 / e.decided as f64), "{label} {d}: on-time rate");
        }
        match e.mean_working_days {
            Some(mean) => {
                assert!(close(r.mean_working_days, mean), "{label} {d}: mean {} vs {mean}", r.mean_working_days);
                assert!(close(r.p90_working_days, e.p90_working_days.unwrap()), "{label} {d}: p90");
            }
            None => assert_eq!(r.mean_working_days, 0.0, "{label} {d}: no working-day service decided (natural days are not mixed in)"),
        }
        assert_eq!(r.rank, ranks[d], "{label} {d}: rank");
    }
}

/// The alerts of a department whose case was resolved NO_FAULT by the inspector (A3's YELLOW).
fn waived_of(department: &str) -> u64 {
    u64::from(department == "D1")
}

fn stats_client(
    s: &Stack,
    addr: std::net::SocketAddr,
) -> StatsServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    let ca = std::fs::read(&s.local.ca_cert).unwrap();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", addr.port())).unwrap().tls_config(tls).unwrap();
    let channel = s.rt.block_on(endpoint.connect()).unwrap();
    StatsServiceClient::with_interceptor(channel, Bearer(Some(s.token(Role::Inspector, None))))
}

#[test]
fn the_model_checks_the_hand_figures_of_its_own_calendar() {
    // The model's calendar against DOMAIN §3.5's Dragon Boat example and §3.3's rule.
    assert_eq!(deadline(local("2025-05-28 09:00"), 5, false), local("2025-06-06 00:00"));
    assert_eq!(deadline(local("2025-06-23 10:00"), 5, false), local("2025-07-01 00:00"));
    assert_eq!(deadline(local("2025-06-03 10:00"), 15, true), local("2025-06-19 00:00"));
    assert_eq!(deadline(local("2025-04-01 10:00"), 30, true), local("2025-05-07 00:00"), "last day a holiday: the next working day");
    assert!(close(used(local("2025-06-03 10:00"), local("2025-06-09 15:00"), false), 3.625));
}

#[test]
fn statistics_through_kafka_match_a_simple_model_on_sqlite_and_postgresql() {
    let s = Stack::start("stats-model", |c| {
        // The monitor and the gateway start on the scenario's catalog.
        std::fs::write(c.catalog.as_ref().unwrap(), CATALOG).unwrap();
        c.accountability.escalation_interval = jiancha_platform::config::TimeSpan::secs(3600);
    });
    let catalog = s.config.catalog.clone().unwrap();
    let pg = Postgres::start("stats-model");
    let pg_url = s.rt.block_on(pg.database("t_stats_model"));
    let mut services = Vec::new();
    for (name, url) in [("sqlite", format!("sqlite://{}", s.dir.0.join("cases.db").display())), ("postgres", pg_url)] {
        let mut config = s.config.clone();
        config.catalog = Some(catalog.clone());
        config.accountability.database = url;
        config.accountability.listen = "127.0.0.1:0".into();
        config.accountability.group_id = format!("stats-model-{name}");
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = s.rt.block_on(jiancha_accountability::service::start(config, shutdown)).unwrap();
        services.push((name, running.store.clone(), running.addr, stop));
    }

    let items = items();
    let produced = produce_lines(&s.broker.bootstrap(), events(&items, false), false);
    assert_eq!(produced.invalid, 0, "{produced:?}");
    let cases_of = |store: &Arc<Store>, item: &str| -> Vec<jiancha_accountability::store::CaseRow> {
        let all = s.rt.block_on(store.cases(&CaseFilter { limit: 1000, ..CaseFilter::default() })).unwrap();
        all.into_iter().filter(|c| c.item_id.as_deref() == Some(item)).collect()
    };
    for (name, store, _, _) in &services {
        wait_for(&format!("{name}: B2's overdue cases (its decision not sent yet)"), Duration::from_secs(90), || {
            cases_of(store, "B2").iter().any(|c| c.kind == "PROMISED_OVERDUE")
        });
        wait_for(&format!("{name}: A3's YELLOW case"), Duration::from_secs(60), || {
            cases_of(store, "A3").iter().any(|c| c.kind == "PROMISED_OVERDUE")
        });
    }
    // The late decision retracts B2's alerts; their cases close NO_FAULT.
    produce_lines(&s.broker.bootstrap(), events(&items, true), false);
    for (name, store, _, _) in &services {
        wait_for(&format!("{name}: B2's cases closed by the retraction"), Duration::from_secs(90), || {
            let b2 = cases_of(store, "B2");
            !b2.is_empty() && b2.iter().all(|c| c.state.status == Status::Resolved && c.state.retracted)
        });
        // The inspector finds A3's delay lawful: NO_FAULT (核减).
        let a3 = cases_of(store, "A3").into_iter().find(|c| c.kind == "PROMISED_OVERDUE").unwrap().case_id;
        s.rt.block_on(store.change(a3, jiancha_platform::wall_clock().0, "insp", "INSPECTOR", "RESOLVE", |st| {
            workflow::resolve(a3, st, "insp", Disposition::NoFault, "端午假期系统停机，情有可原", "", None, 0)
        }))
        .unwrap();
        wait_for(&format!("{name}: every item's final figures"), Duration::from_secs(90), || {
            let rows = s.rt.block_on(sqlx::query("SELECT item_id, decided_at FROM items").fetch_all(store.pool())).unwrap();
            rows.len() == items.len()
                && items.iter().all(|i| {
                    rows.iter().any(|r| {
                        sqlx::Row::get::<String, _>(r, "item_id") == i.id
                            && sqlx::Row::get::<Option<i64>, _>(r, "decided_at") == i.decided.map(ms)
                    })
                })
        });
    }

    let june = model(&items, local("2025-06-01 00:00"), local("2025-07-01 00:00"), &["A3"]);
    let q2 = model(&items, local("2025-04-01 00:00"), local("2025-07-01 00:00"), &["A3"]);
    // What the scenario is for, in the model's own words.
    assert_eq!(june["D1"].score, june["D2"].score, "D1 and D2 tie (A3's YELLOW waived)");
    assert_eq!(june["D4"].score, None, "D4 decided nothing");
    assert_eq!((june["D4"].yellow, q2["D3"].yellow, june["D3"].yellow), (1, 1, 0), "deadlines at 00:00 count in the day before");
    assert_eq!(june["D3"].mean_working_days, None);
    for (name, _, addr, _) in &services {
        let mut client = stats_client(&s, *addr);
        for (period, m) in [("2025-06", &june), ("2025-Q2", &q2)] {
            let report =
                s.rt.block_on(client.get_stats(v1::GetStatsRequest { period: period.into(), group_by: "department".into() }))
                    .unwrap()
                    .into_inner();
            check(&format!("{name} {period}"), &report, m);
            let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
            assert!(names.contains(&"一局") && names.contains(&"四局"), "{names:?}");
        }
    }
    for (_, store, _, stop) in services {
        assert!(s.rt.block_on(store.verify_audit()).unwrap().is_ok());
        stop.send_replace(true);
    }
}
