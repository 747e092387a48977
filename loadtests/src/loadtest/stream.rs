//! The stream a run sends: the simulator's items, retimed onto the run's schedule.
//!
//! The simulator writes items over weeks of working days; a run sends them in seconds.
//! Each event keeps its place in the simulated order and is sent at the next instant of
//! the schedule, carrying that instant as its arrival (the record timestamp) and an
//! occurrence one second earlier — or, for a late report, as late as the simulator or
//! the scenario says. Deadlines measured in working days therefore do not pass during a
//! run: event rules are exercised by the stream, timers by the probe items
//! (`probes`), whose acceptance windows all end at one instant inside the run.

use super::scenario::Scenario;
use chrono::NaiveDate;
use jiancha_core::time::{HOUR_MS, Timestamp, parse_duration_ms};
use jiancha_core::{Calendars, Catalog};
use jiancha_sim::{Rng, SimConfig, simulate};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One record to send.
#[derive(Clone, Debug)]
pub struct Planned {
    /// When to send it, microseconds from the start of the run.
    pub at_us: u64,
    /// The record timestamp (the event's arrival), milliseconds since the epoch.
    pub ts_ms: i64,
    /// The record key (the item id).
    pub key: String,
    /// The JSON event.
    pub payload: Vec<u8>,
    /// The department (for the gRPC gateway's tokens).
    pub department: String,
    /// An invalid record the monitor must dead-letter.
    pub invalid: bool,
}

/// A run's records and what they hold.
#[derive(Debug, Default)]
pub struct Stream {
    /// In send order.
    pub records: Vec<Planned>,
    /// Distinct items.
    pub items: usize,
    /// Invalid records among them.
    pub invalid: usize,
    /// Events reported later than an hour after they occurred.
    pub late: usize,
    /// The send instant of each event id (its first send), for the latency of the
    /// alerts it triggers.
    pub sent_at: HashMap<String, u64>,
}

/// What makes one run's stream.
#[derive(Debug)]
pub struct StreamSpec<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Its send instants.
    pub schedule: &'a [u64],
    /// The wall-clock instant of the schedule's zero, milliseconds.
    pub start_ms: i64,
    /// Which stream of the run (find-max steps get their own items).
    pub part: u32,
    /// Appended to item and event ids (runs against running monitors, whose state
    /// outlives a run); empty otherwise.
    pub id_suffix: &'a str,
}

/// The late-report threshold below which a simulated delay is taken as ordinary.
const ORDINARY_DELAY_MS: i64 = HOUR_MS;

fn with_suffix(v: &mut Value, key: &str, suffix: &str) {
    if suffix.is_empty() {
        return;
    }
    if let Some(s) = v.get(key).and_then(Value::as_str) {
        let s = format!("{s}{suffix}");
        v[key] = Value::from(s);
    }
}

/// Builds the stream: `schedule.len()` records, invalid ones mixed in at `invalid_share`.
pub fn build(catalog: &Catalog, calendars: &Calendars, spec: &StreamSpec<'_>) -> Stream {
    let s = spec.scenario;
    let n = spec.schedule.len();
    let mut rng = Rng::new(s.seed ^ 0x9e37_79b9_7f4a_7c15 ^ u64::from(spec.part));
    let invalid_slots: Vec<bool> = (0..n).map(|_| rng.chance(s.items.invalid_share)).collect();
    let valid = invalid_slots.iter().filter(|b| !**b).count();
    let first_day = NaiveDate::from_ymd_opt(2025, 3, 3).expect("a date") + chrono::Duration::days(371 * i64::from(spec.part));
    let mut items = 0;
    let mut sim = Vec::new();
    // Items have six events or so; ask for more until the stream is long enough.
    let mut want = valid / 5 + 8;
    while sim.len() < valid {
        sim = simulate(
            catalog,
            calendars,
            &SimConfig {
                seed: s.seed.wrapping_add(u64::from(spec.part) * 1_000_003),
                items: want,
                first_day,
                spread_days: s.items.spread_days.max(1),
                irregular_share: s.items.irregular_share,
            },
        );
        items = want;
        want *= 2;
        if catalog.services().is_empty() {
            break;
        }
    }
    let tz = calendars.default_calendar().tz();
    let late_by = parse_duration_ms(&s.items.late_by).unwrap_or(2 * HOUR_MS);
    let departments: Vec<String> = jiancha_monitor::monitor::catalog_departments(catalog);
    let mut late_items: HashMap<String, bool> = HashMap::new();
    let mut last_occurred: HashMap<String, i64> = HashMap::new();
    let mut out = Stream { records: Vec::with_capacity(n), ..Stream::default() };
    let mut seen_items: HashMap<String, ()> = HashMap::new();
    let mut sim = sim.into_iter();
    for (slot, &at_us) in spec.schedule.iter().enumerate() {
        let ts_ms = spec.start_ms + (at_us / 1000) as i64;
        if invalid_slots[slot] {
            let id = format!("LT-BAD-{}-{slot}{}", spec.part, spec.id_suffix);
            let dept = departments.get(slot % departments.len().max(1)).cloned().unwrap_or_default();
            let when = Timestamp(ts_ms - 1000).to_rfc3339_in(tz);
            let payload = match slot % 3 {
                0 => json!({"event_id": id, "item_id": id, "department_code": dept, "type": "TELEPORTED", "occurred_at": when, "seq": 1})
                    .to_string(),
                1 => format!("{{\"event_id\": \"{id}\", \"item_id\": \"{id}\", \"type\": \"SUBMITTED\""),
                _ => json!({"event_id": id, "item_id": id, "department_code": dept, "type": "ACCEPTED", "seq": 1}).to_string(),
            };
            out.invalid += 1;
            out.records.push(Planned { at_us, ts_ms, key: id, payload: payload.into_bytes(), department: dept, invalid: true });
            continue;
        }
        let Some(e) = sim.next() else { break };
        let mut json = e.json;
        with_suffix(&mut json, "item_id", spec.id_suffix);
        with_suffix(&mut json, "event_id", spec.id_suffix);
        let item = json.get("item_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if seen_items.insert(item.clone(), ()).is_none() {
            late_items.insert(item.clone(), rng.chance(s.items.late_share));
        }
        let simulated_delay = e.received_at.0 - e.occurred_at.0;
        let first = !last_occurred.contains_key(&item);
        let delay = if simulated_delay > ORDINARY_DELAY_MS {
            simulated_delay
        } else if first && late_items.get(&item).copied().unwrap_or(false) {
            late_by
        } else {
            1000
        };
        if delay > ORDINARY_DELAY_MS {
            out.late += 1;
        }
        // Occurrences keep the item's order: each strictly after the one before.
        let mut occurred = ts_ms - delay;
        if let Some(&prev) = last_occurred.get(&item) {
            occurred = occurred.max(prev + 1);
        }
        last_occurred.insert(item.clone(), occurred);
        json["occurred_at"] = Value::from(Timestamp(occurred).to_rfc3339_in(tz));
        json["received_at"] = Value::from(Timestamp(ts_ms).to_rfc3339_in(tz));
        if let Some(id) = json.get("event_id").and_then(Value::as_str) {
            out.sent_at.entry(id.to_owned()).or_insert(at_us);
        }
        let department = json.get("department_code").and_then(Value::as_str).unwrap_or_default().to_owned();
        out.records.push(Planned { at_us, ts_ms, key: item, payload: json.to_string().into_bytes(), department, invalid: false });
    }
    out.items = seen_items.len().min(items.max(seen_items.len()));
    out
}

/// How probe items' ids begin.
pub const PROBE_PREFIX: &str = "LTPROBE-";

/// The probe service's code.
pub const PROBE_SERVICE: &str = "LOADTEST-PROBE";
/// The probe calendar's name.
pub const PROBE_CALENDAR: &str = "loadtest-probe";

/// The probe calendar: UTC, every day worked, office hours from midnight to `due`'s
/// time of day — so a one-working-day window that starts the day before ends at `due`.
pub fn probe_calendar(due: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let years: Vec<String> = (due.year() - 1..=due.year() + 1).map(|y| format!("[[year]]\nyear = {y}\nholidays = []\n")).collect();
    format!(
        "# Written by `jiancha loadtest`: the probe items' acceptance windows end at {due}.\nname = \"{PROBE_CALENDAR}\"\ntime_zone = \"UTC\"\nweekend = []\noffice_hours = [\"00:00-{:02}:{:02}\"]\n\n{}",
        due.hour(),
        due.minute(),
        years.join("\n")
    )
}

/// The probe service, appended to the catalog the monitors load.
pub fn probe_service(department: &str) -> String {
    format!(
        "\n# Added by `jiancha loadtest`: items whose acceptance window ends inside the run.\n[[service]]\ncode = \"{PROBE_SERVICE}\"\nname = \"负载测试探针\"\ndepartment = \"{department}\"\ncalendar = \"{PROBE_CALENDAR}\"\nstatutory_days = 20\nacceptance_days = 1\n"
    )
}

/// `n` items of `service` submitted at noon (UTC) the day before `due`, their records
/// stamped a second later: with the probe service, acceptance windows that end at `due`.
pub fn probes(n: usize, department: &str, service: &str, due: chrono::DateTime<chrono::Utc>, tag: &str) -> Vec<Planned> {
    let day_before = due.date_naive() - chrono::Duration::days(1);
    let noon = day_before.and_hms_opt(12, 0, 0).expect("noon").and_utc().timestamp_millis();
    (0..n)
        .map(|i| {
            let item = format!("{PROBE_PREFIX}{tag}-{i:06}");
            let occurred = noon + i as i64;
            let payload = json!({
                "event_id": format!("{item}-01"),
                "item_id": item,
                "department_code": department,
                "service_code": service,
                "type": "SUBMITTED",
                "occurred_at": Timestamp(occurred).to_rfc3339_in(chrono_tz::UTC),
                "seq": 1,
            });
            Planned {
                at_us: 0,
                ts_ms: occurred + 1000,
                key: item,
                payload: payload.to_string().into_bytes(),
                department: department.to_owned(),
                invalid: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> (Catalog, Calendars) {
        let calendars = Calendars::builtin();
        (Catalog::from_toml(jiancha_platform::rules::DEMO_CATALOG, &calendars).expect("demo catalog"), calendars)
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_each_item_keeps_its_order() {
        let (catalog, calendars) = rules();
        let mut s = Scenario::default();
        s.arrival.rate = 2000.0;
        s.arrival.duration = Some("2s".into());
        s.items.invalid_share = 0.01;
        let schedule = s.schedule();
        let spec = StreamSpec { scenario: &s, schedule: &schedule, start_ms: 1_764_000_000_000, part: 0, id_suffix: "" };
        let a = build(&catalog, &calendars, &spec);
        let b = build(&catalog, &calendars, &spec);
        assert_eq!(a.records.len(), 4000);
        assert!(a.invalid > 10 && a.invalid < 100, "{}", a.invalid);
        assert!(a.records.iter().zip(&b.records).all(|(x, y)| x.payload == y.payload && x.at_us == y.at_us));
        // Every valid line parses, arrives at its record timestamp, and an item's
        // occurrences rise with its sequence numbers.
        let mut last: HashMap<String, (i64, i64)> = HashMap::new();
        for r in a.records.iter().filter(|r| !r.invalid) {
            let j = jiancha_core::parse_json_event(&r.payload).expect("valid");
            assert_eq!(j.received_at.map(|t| t.0), Some(r.ts_ms));
            assert!(j.event.occurred_at.0 < r.ts_ms);
            let seq = j.event.seq.map_or(0, |s| s as i64);
            if let Some((t, q)) = last.get(&j.event.item_id)
                && seq > *q
            {
                assert!(j.event.occurred_at.0 > *t);
            }
            last.insert(j.event.item_id.clone(), (j.event.occurred_at.0, seq));
        }
        for r in a.records.iter().filter(|r| r.invalid) {
            assert!(jiancha_core::parse_json_event(&r.payload).is_err());
        }
    }

    #[test]
    fn probe_windows_end_at_the_chosen_instant() {
        let (catalog_text, due) = (jiancha_platform::rules::DEMO_CATALOG.to_owned() + &probe_service("SCJG"), {
            use chrono::TimeZone;
            chrono::Utc.with_ymd_and_hms(2026, 12, 5, 16, 37, 0).single().expect("instant")
        });
        let mut calendars = Calendars::builtin();
        calendars.insert(jiancha_core::calendar::Calendar::from_toml(&probe_calendar(due)).expect("probe calendar"));
        let catalog = Catalog::from_toml(&catalog_text, &calendars).expect("catalog with the probe service");
        let mut replay = jiancha_core::Replay::new(jiancha_core::Engine::new(std::sync::Arc::new(catalog), calendars));
        let mut alerts = Vec::new();
        for p in probes(3, "SCJG", PROBE_SERVICE, due, "t") {
            let j = jiancha_core::parse_json_event(&p.payload).expect("valid probe");
            replay.arrive(&j.event, Timestamp(p.ts_ms), &mut |a| alerts.push(a));
        }
        replay.advance(Timestamp(due.timestamp_millis() - 1), &mut |a| alerts.push(a));
        assert!(alerts.is_empty(), "{alerts:?}");
        replay.advance(Timestamp(due.timestamp_millis()), &mut |a| alerts.push(a));
        assert_eq!(alerts.len(), 3);
        assert!(alerts.iter().all(|a| a.kind == jiancha_core::AlertKind::AcceptanceOverdue && a.triggered_at.0 == due.timestamp_millis()));
    }
}
