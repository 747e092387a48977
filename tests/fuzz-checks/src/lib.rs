//! The properties each fuzz target checks on arbitrary input: nothing panics, and what
//! is accepted keeps the contract's invariants. `fuzz/fuzz_targets/*` call these under
//! libFuzzer; `tests/tests/fuzz_corpus.rs` replays the committed corpora (every crash
//! found stays there as a regression case) on the stable toolchain in every test run.

use jiancha_core::calendar::Calendar;
use jiancha_core::catalog::DayKind;
use jiancha_core::clock::{Counter, Pause};
use jiancha_core::event::{Event, MAX_ID_CHARS, RawEvent, parse_json_event};
use jiancha_core::{Calendars, Catalog, Timestamp};
use prost::Message as _;
use std::sync::OnceLock;

/// A target's check of one input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name (the folders of `fuzz/corpus`).
pub const TARGETS: [(&str, Check); 6] = [
    ("event_json", event_json),
    ("event_protobuf", event_protobuf),
    ("catalog_toml", catalog_toml),
    ("calendar_toml", calendar_toml),
    ("cursor", cursor),
    ("deadline", deadline),
];

fn calendars() -> &'static Calendars {
    static CALENDARS: OnceLock<Calendars> = OnceLock::new();
    CALENDARS.get_or_init(Calendars::builtin)
}

/// An accepted event keeps DOMAIN §2's field rules, and its protobuf form reads back
/// as the same event.
fn accepted(event: &Event) {
    for id in [&event.event_id, &event.item_id, &event.department_code] {
        let n = id.chars().count();
        assert!((1..=MAX_ID_CHARS).contains(&n), "id of {n} characters accepted");
        assert!(!id.chars().any(char::is_control), "control character in {id:?}");
    }
    assert!(event.occurred_at.is_supported());
    let bytes = jiancha_proto::v1::Event::from(event).encode_to_vec();
    let back = jiancha_proto::decode_event(&bytes).expect("an accepted event's protobuf form is accepted");
    assert_eq!(&back, event);
}

/// JSON events as department systems send them (and, the input being text, the same
/// text written as a JSON string).
pub fn event_json(data: &[u8]) {
    if let Ok(e) = parse_json_event(data) {
        accepted(&e.event);
    }
    // The one-pass reading of the common line reads any object as serde_json reads it.
    if let Ok(text) = std::str::from_utf8(data)
        && text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
        && let Ok(by_serde) = serde_json::from_str::<RawEvent<'_>>(text)
    {
        assert_eq!(RawEvent::from_json(data).ok(), Some(by_serde), "{text}");
    }
    // Any text is written as a JSON string as serde_json writes it (the replay's alert lines).
    if let Ok(text) = std::str::from_utf8(data) {
        let mut written = Vec::new();
        jiancha_core::json::string_into(&mut written, text);
        assert_eq!(written, serde_json::to_vec(text).expect("a string"), "{text:?}");
    }
}

/// Protobuf events as the gateway and Kafka producers send them.
pub fn event_protobuf(data: &[u8]) {
    if let Ok(event) = jiancha_proto::decode_event(data) {
        accepted(&event);
    }
}

/// Catalog files (and CatalogService.ReplaceCatalog texts).
pub fn catalog_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(catalog) = Catalog::from_toml(text, calendars())
    {
        for s in catalog.services() {
            assert!(s.promised_days <= s.statutory_days, "{}: promised over statutory accepted", s.code);
        }
    }
}

/// Calendar files (and CatalogService.ReplaceCalendar texts).
pub fn calendar_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(calendar) = Calendar::from_toml(text)
    {
        let _ = calendar.covered_years().count();
    }
}

/// WatchAlerts resume cursors: the first byte picks the partition count (1-16).
pub fn cursor(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let partitions = usize::from(n % 16) + 1;
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if let Ok(offsets) = jiancha_proto::cursor::parse_cursor(text, partitions) {
        assert_eq!(offsets.len(), partitions);
        assert!(offsets.iter().all(|&o| o >= 0));
        let again = jiancha_proto::cursor::parse_cursor(&jiancha_proto::cursor::format_cursor(&offsets), partitions);
        assert_eq!(again.as_ref(), Ok(&offsets));
    }
}

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

/// Deadline arithmetic (DOMAIN §3.3–3.4) over the built-in calendar: from any supported
/// start, budget (0-3650 days, working or natural) and pauses, a deadline at or after the
/// anchor; for working days, never earlier with a larger budget. Natural days are not
/// monotone in two cases fuzzing found (the corpus keeps both): a pause ending mid-day
/// can leave one budget's period ending on a day off (extended to the end of the next
/// working day, 民法典 art. 203) and the next budget's on that working day before its
/// end (docs/clock.md); and across the summer-time changes of 1986–1991 a natural day
/// counted as 24 hours ends at 23:00 local time.
pub fn deadline(data: &[u8]) {
    let mut d = data;
    let span = Timestamp::MAX_SUPPORTED.0 - Timestamp::MIN_SUPPORTED.0;
    // Starts early enough that the budget stays inside the supported years.
    let start = Timestamp::MIN_SUPPORTED.0 + (u64::from_le_bytes(take(&mut d)) % (span as u64 * 9 / 10)) as i64;
    let [kind, days_lo, days_hi] = take(&mut d);
    let days = i64::from(u16::from_le_bytes([days_lo, days_hi]) % 3651);
    let calendar = calendars().default_calendar();
    let counter = Counter { calendar, kind: if kind % 2 == 0 { DayKind::Working } else { DayKind::Natural } };
    let mut pauses = Vec::new();
    while d.len() >= 8 && pauses.len() < 8 {
        let [a, b, c, e, f, g, h, i] = take(&mut d);
        let from = start + i64::from(u32::from_le_bytes([a, b, c, e])) * 1000;
        let to = from + i64::from(u32::from_le_bytes([f, g, h, i]) % (400 * 86_400)) * 1000;
        pauses.push(Pause { from, to });
    }
    pauses.sort_by_key(|p| p.from);
    let budget = days * counter.unit();
    let anchor = counter.anchor(start);
    let deadline = counter.deadline(start, budget, &pauses);
    assert!(deadline >= anchor, "deadline {deadline} before anchor {anchor} (start {start}, {days} days)");
    if days > 0 && counter.kind == DayKind::Working {
        let shorter = counter.deadline(start, budget - counter.unit(), &pauses);
        assert!(shorter <= deadline, "one day less ends later ({shorter} > {deadline})");
    }
}
