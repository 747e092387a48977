//! Properties of the clock and the engine, on generated histories.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_core::calendar::Calendars;
use jiancha_core::catalog::DayKind;
use jiancha_core::clock::{Counter, Pause};
use jiancha_core::time::{DAY_MS, HOUR_MS};
use jiancha_core::{Alert, AlertKind, AlertStatus, Engine, Merge, Place, Shard, Timestamp, parse_json_event};
use jiancha_scenarios::{final_states, load_catalog, replay_lines, repo_root};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

/// 2004-01-01 .. 2026-12-01 in milliseconds.
const FROM: i64 = 1_072_886_400_000;
const TO: i64 = 1_796_083_200_000;

/// The naive model: walk day by day from the day after the start, counting working days.
fn naive_deadline(cal: &jiancha_core::Calendar, start: i64, days: u32) -> i64 {
    let mut day = cal.day_of(start);
    if days == 0 {
        return cal.day_start(day + 1);
    }
    let mut left = days;
    loop {
        day += 1;
        if cal.is_working_day(day) {
            left -= 1;
            if left == 0 {
                return cal.day_start(day + 1);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn working_time_is_monotone_and_inverted(a in FROM..TO, b in FROM..TO) {
        let cals = Calendars::builtin();
        let cal = cals.default_calendar();
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(cal.working_time(lo) <= cal.working_time(hi));
        let x = cal.working_time(hi);
        let t = cal.instant_at_working_time(x);
        prop_assert!(t <= hi, "the inverse is the earliest instant");
        prop_assert_eq!(cal.working_time(t), x);
    }

    #[test]
    fn counting_matches_the_day_by_day_model(start in FROM..TO, days in 0u32..60) {
        let cals = Calendars::builtin();
        let cal = cals.default_calendar();
        let c = Counter::working(cal);
        prop_assert_eq!(c.deadline(start, i64::from(days) * DAY_MS, &[]), naive_deadline(cal, start, days));
    }

    #[test]
    fn a_deadline_is_never_before_its_anchor_and_pauses_only_delay(
        start in FROM..TO,
        budget_h in 0i64..2000,
        pause_at_h in -48i64..1000,
        pause_len_h in 0i64..500,
        natural in any::<bool>(),
    ) {
        let cals = Calendars::builtin();
        let c = Counter { calendar: cals.default_calendar(), kind: if natural { DayKind::Natural } else { DayKind::Working } };
        let budget = budget_h * HOUR_MS;
        let plain = c.deadline(start, budget, &[]);
        prop_assert!(plain >= c.anchor(start));
        let from = start + pause_at_h * HOUR_MS;
        let paused = c.deadline(start, budget, &[Pause { from, to: from + pause_len_h * HOUR_MS }]);
        if natural {
            // Civil Code art. 203 moves an end that falls on a day off to the end of the
            // next working day, which is not monotone for partial-day pauses (see
            // docs/clock.md). What holds: no end before anchor + budget, and every end
            // with a budget lies on a working day.
            prop_assert!(paused >= c.anchor(start) + budget);
            if budget > 0 {
                let cal = cals.default_calendar();
                prop_assert!(cal.is_working_day(cal.day_of(paused - 1)));
                prop_assert!(cal.is_working_day(cal.day_of(plain - 1)));
            }
        } else {
            prop_assert!(paused >= plain, "a pause never brings a working-day deadline forward");
            prop_assert!(c.deadline(start, budget + HOUR_MS, &[]) >= plain, "more budget never ends sooner");
        }
    }
}

/// One random history for one item: (type, hours after the start, extra fields).
fn history() -> impl Strategy<Value = Vec<(usize, i64, i64)>> {
    proptest::collection::vec((0usize..13, 0i64..(24 * 60), 0i64..1000), 1..12)
}

fn event_json(i: usize, (ty, hours, extra): (usize, i64, i64), base: i64, service: &str) -> serde_json::Value {
    const TYPES: [&str; 13] = [
        "SUBMITTED",
        "CORRECTION_REQUESTED",
        "CORRECTION_SUBMITTED",
        "ACCEPTED",
        "NOT_ACCEPTED",
        "STEP_COMPLETED",
        "SUSPENDED",
        "RESUMED",
        "EXTENDED",
        "FEE_CHARGED",
        "DECIDED",
        "DELIVERED",
        "WITHDRAWN",
    ];
    let at = base + hours * HOUR_MS;
    // Some events reach the system late (a LATE_REPORT) and out of order.
    let received = at + if extra % 5 == 0 { extra * 3 * HOUR_MS } else { extra * 1000 };
    let tz = chrono_tz::Asia::Shanghai;
    let actor = ["甲", "乙", "丙"][(extra % 3) as usize];
    let mut v = json!({
        "event_id": format!("e{i}"),
        "item_id": "P",
        "department_code": "D1",
        "type": TYPES[ty],
        "occurred_at": Timestamp(at).to_rfc3339_in(tz),
        "received_at": Timestamp(received).to_rfc3339_in(tz),
        "actor": actor,
        "service_code": service,
    });
    match TYPES[ty] {
        "CORRECTION_REQUESTED" => v["materials"] = json!(["材料"]),
        "STEP_COMPLETED" => v["step"] = json!(["承办", "审核", "其他"][(extra % 3) as usize]),
        "SUSPENDED" => {
            v["suspension_kind"] = json!(["HEARING", "EXPERT_REVIEW", "MEETING"][(extra % 3) as usize]);
            v["expected_days"] = json!(1 + extra % 7);
        }
        "EXTENDED" => {
            v["days"] = json!(1 + extra % 15);
            v["approver"] = json!(["局长", "", "甲"][(extra % 3) as usize]);
        }
        "FEE_CHARGED" => v["amount_fen"] = json!(extra * 20),
        "DECIDED" => {
            v["outcome"] = json!(if extra % 4 == 0 { "DENIED" } else { "APPROVED" });
            v["reason"] = json!(if extra % 8 == 0 { "" } else { "理由" });
        }
        _ => {}
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The alerts in force depend on the events and the clock, not on the order the
    /// events arrived in.
    #[test]
    fn alerts_do_not_depend_on_arrival_order(h in history(), base_day in 0i64..8000, seed in any::<u64>(), service in 0usize..3) {
        let catalog = load_catalog(&repo_root().join("tests/golden/catalog.toml"));
        let service = ["STD", "TEN", "NOW"][service];
        let base = FROM + base_day * DAY_MS + 9 * HOUR_MS;
        let lines: Vec<String> = h.iter().enumerate().map(|(i, e)| event_json(i, *e, base, service).to_string()).collect();
        let end = Timestamp(base + 120 * DAY_MS);
        let engine_state = |order: &[usize]| {
            let mut engine = Engine::new(Arc::new(catalog.clone()), Calendars::builtin());
            let mut effects = Vec::new();
            for &i in order {
                let parsed = parse_json_event(lines[i].as_bytes()).unwrap();
                engine.apply(&parsed.event, parsed.received_at.unwrap(), end, &mut effects);
            }
            let alerts: Vec<_> = effects.into_iter().filter_map(|e| match e { jiancha_core::Effect::Alert(a) => Some(*a), _ => None }).collect();
            final_states(&alerts).into_iter().filter(|(_, a)| a.status == AlertStatus::Fired).map(|(id, a)| (id, a.kind, a.triggered_at)).collect::<Vec<_>>()
        };
        let forward: Vec<usize> = (0..lines.len()).collect();
        let mut shuffled = forward.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(engine_state(&forward), engine_state(&shuffled));

        // The replay (timers firing along the way) ends in the same state.
        let mut by_arrival = lines.clone();
        by_arrival.sort_by_key(|l| parse_json_event(l.as_bytes()).unwrap().received_at);
        let replayed = replay_lines(&catalog, by_arrival.iter().map(String::as_str), Some(end));
        let replay_state: Vec<_> = final_states(&replayed).into_iter().filter(|(_, a)| a.status == AlertStatus::Fired).map(|(id, a)| (id, a.kind, a.triggered_at)).collect();
        prop_assert_eq!(replay_state, engine_state(&forward));
    }

    /// Replaying the same stream twice gives the same updates with the same ids, and an
    /// id never names two different facts.
    #[test]
    fn replaying_twice_gives_identical_alert_ids(seed in any::<u64>()) {
        let catalog = load_catalog(&repo_root().join("deploy/demo/catalog.toml"));
        let config = jiancha_sim::SimConfig {
            seed,
            items: 40,
            first_day: chrono::NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            spread_days: 20,
            irregular_share: 0.5,
        };
        let stream = jiancha_sim::simulate(&catalog, &Calendars::builtin(), &config);
        let lines: Vec<String> = stream.iter().map(|e| e.json.to_string()).collect();
        let a = replay_lines(&catalog, lines.iter().map(String::as_str), None);
        let b = replay_lines(&catalog, lines.iter().map(String::as_str), None);
        prop_assert_eq!(a.len(), b.len());
        let mut identity = std::collections::HashMap::new();
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(&x.alert_id, &y.alert_id);
            prop_assert_eq!(x.triggered_at, y.triggered_at);
            let fact = (x.item_id.clone(), x.kind, x.event_id.clone());
            let previous = identity.insert(x.alert_id.clone(), fact.clone());
            prop_assert!(previous.is_none_or(|p| p == fact), "one id, one fact");
        }
    }

    /// Replays in shards, merged batch by batch, give the sequential replay's alerts in
    /// its order: timers of different items falling due at the same instant, late
    /// events, a calendar year missing for items of several shards.
    #[test]
    fn shards_merged_give_the_sequential_replay(seed in any::<u64>(), shards in 1usize..5, batch in 1usize..200, late_in_the_year in any::<bool>()) {
        let catalog = load_catalog(&repo_root().join("deploy/demo/catalog.toml"));
        let first_day = if late_in_the_year { (2026, 11, 20) } else { (2025, 3, 3) };
        let lines = simulated(&catalog, seed, first_day);
        let until = Some(Timestamp::parse_rfc3339(SHARDED_UNTIL).unwrap());
        let sequential = replay_lines(&catalog, lines.iter().map(String::as_str), until);
        prop_assert_eq!(sharded(&catalog, &lines, shards, batch, until), sequential);
    }
}

/// `lines` replayed by `shards` shards, their alerts merged every `batch` lines.
fn sharded(catalog: &jiancha_core::Catalog, lines: &[String], shards: usize, batch: usize, until: Option<Timestamp>) -> Vec<Alert> {
    let new = |k| Shard::new(Engine::new(Arc::new(catalog.clone()), Calendars::builtin()), k, shards);
    let mut parts: Vec<Shard> = (0..shards).map(new).collect();
    let events: Vec<_> = lines.iter().map(|l| parse_json_event(l.as_bytes()).unwrap()).collect();
    let (mut merge, mut out) = (Merge::default(), Vec::new());
    for chunk in events.chunks(batch) {
        let raised: Vec<Vec<(Place, Alert)>> = parts
            .iter_mut()
            .map(|shard| {
                let mut raised = Vec::new();
                feed(shard, chunk, &mut |place, alert| raised.push((place, alert)));
                raised
            })
            .collect();
        merge.merge(&raised, &mut |a| out.push(a.clone()));
    }
    let raised: Vec<Vec<(Place, Alert)>> = parts
        .iter_mut()
        .map(|shard| {
            let mut raised = Vec::new();
            shard.finish(until, &mut |place, alert| raised.push((place, alert)));
            raised
        })
        .collect();
    merge.merge(&raised, &mut |a| out.push(a.clone()));
    out
}

/// Gives a shard the stream's next events: its own applied, the others' passed.
fn feed(shard: &mut Shard, events: &[jiancha_core::event::JsonEvent], sink: &mut impl FnMut(Place, Alert)) {
    for e in events {
        let arrival = e.received_at.unwrap_or(e.event.occurred_at);
        if shard.owns(&e.event.item_id) {
            shard.arrive(&e.event, arrival, sink);
        } else {
            shard.pass(arrival, sink);
        }
    }
}

/// Where the sharded replays' clocks end: past the built-in calendars' last year.
const SHARDED_UNTIL: &str = "2027-06-01T00:00:00+08:00";

/// A simulated stream of 60 items over ten days from `first_day`, as JSON lines.
fn simulated(catalog: &jiancha_core::Catalog, seed: u64, (year, month, day): (i32, u32, u32)) -> Vec<String> {
    let config = jiancha_sim::SimConfig {
        seed,
        items: 60,
        first_day: chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap(),
        spread_days: 10,
        irregular_share: 0.5,
    };
    jiancha_sim::simulate(catalog, &Calendars::builtin(), &config).iter().map(|e| e.json.to_string()).collect()
}

/// The property test above covers what matters only if its streams hold what it names:
/// one such stream, checked for it.
#[test]
fn a_sharded_stream_holds_same_instant_timers_and_a_missing_year() {
    let catalog = load_catalog(&repo_root().join("deploy/demo/catalog.toml"));
    let lines = simulated(&catalog, 7, (2026, 11, 20));
    let until = Some(Timestamp::parse_rfc3339(SHARDED_UNTIL).unwrap());
    let sequential = replay_lines(&catalog, lines.iter().map(String::as_str), until);
    let missing: Vec<_> = sequential.iter().filter(|a| a.kind == AlertKind::CalendarMissing).collect();
    assert_eq!(missing.len(), 1, "one report of 2027's missing calendar");
    let events: Vec<_> = lines.iter().map(|l| parse_json_event(l.as_bytes()).unwrap()).collect();
    let owners: std::collections::BTreeSet<usize> = events.iter().map(|e| Shard::shard_of(&e.event.item_id, 3)).collect();
    assert_eq!(owners.len(), 3, "items in every shard");
    let timers: Vec<_> =
        sequential.iter().filter(|a| a.kind.is_timer() && a.status == AlertStatus::Fired).map(|a| a.triggered_at).collect();
    let mut distinct = timers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() < timers.len(), "timers of several items at one instant");
    assert_eq!(sharded(&catalog, &lines, 3, 64, until), sequential);
    // The shards' own reports of the missing year: more than the one kept.
    let reports: usize = (0..3)
        .map(|k| {
            let mut shard = Shard::new(Engine::new(Arc::new(catalog.clone()), Calendars::builtin()), k, 3);
            let mut n = 0;
            let mut sink = |_: Place, a: Alert| n += usize::from(a.kind == AlertKind::CalendarMissing);
            feed(&mut shard, &events, &mut sink);
            shard.finish(until, &mut sink);
            n
        })
        .sum();
    assert!(reports > 1, "{reports}");
}
