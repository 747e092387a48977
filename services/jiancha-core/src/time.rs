//! Instants as integer milliseconds, parsed from and written as RFC 3339.
//!
//! The engine never reads the system clock: every instant it sees is an input.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds in one natural day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// An instant on the UTC time line, in milliseconds since 1970-01-01T00:00:00Z.
///
/// Milliseconds, not seconds, so that two events a few hundred milliseconds apart keep
/// their order; the ordering rules of DOMAIN §3.4 depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The earliest instant the calendars and events support (1971-01-01T00:00:00Z).
    pub const MIN_SUPPORTED: Timestamp = Timestamp(31_536_000_000);
    /// The latest instant the calendars and events support (2120-01-01T00:00:00Z).
    pub const MAX_SUPPORTED: Timestamp = Timestamp(4_733_510_400_000);

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 instant, which must carry an offset (`Z` or `+08:00`).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
        match parse_common_rfc3339(text.as_bytes()) {
            Some(ms) => Ok(Timestamp(ms)),
            None => DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.timestamp_millis())),
        }
    }

    /// Whether the instant lies in the range the calendar tables cover.
    pub fn is_supported(self) -> bool {
        (Self::MIN_SUPPORTED..Self::MAX_SUPPORTED).contains(&self)
    }

    /// The instant as a chrono value in the given zone.
    pub fn in_zone(self, tz: Tz) -> DateTime<Tz> {
        tz.timestamp_millis_opt(self.0).single().unwrap_or_else(|| {
            // Unreachable for in-range millisecond instants; fall back to UTC's reading.
            Utc.timestamp_millis_opt(0).single().map(|t| t.with_timezone(&tz)).expect("epoch is valid")
        })
    }

    /// RFC 3339 text in the given zone, seconds precision unless milliseconds are set:
    /// `2024-03-14T10:00:00+08:00`.
    pub fn to_rfc3339_in(self, tz: Tz) -> String {
        let t = self.in_zone(tz);
        let fixed: DateTime<FixedOffset> = t.fixed_offset();
        let format = if self.0.rem_euclid(1000) == 0 { SecondsFormat::Secs } else { SecondsFormat::Millis };
        fixed.to_rfc3339_opts(format, true)
    }

    /// The zone's offset from UTC at this instant, in seconds. The last few answers are
    /// kept, per thread: an alert's texts cite the same instants more than once (its
    /// deadline in the message, the derivation and `triggered_at`; the clock's start
    /// in both texts), and each lookup is a binary search over the zone's transitions.
    pub fn offset_in(self, tz: Tz) -> i32 {
        use chrono::Offset;
        use std::cell::Cell;
        /// (instant, zone, offset) of the last answers, and where the next one goes.
        type Recent = ([(i64, Tz, i32); 4], usize);
        thread_local! {
            static RECENT: Cell<Recent> = const { Cell::new(([(i64::MIN, Tz::UTC, 0); 4], 0)) };
        }
        RECENT.with(|recent| {
            let (mut entries, next) = recent.get();
            if let Some(&(_, _, offset)) = entries.iter().find(|&&(at, zone, _)| at == self.0 && zone == tz) {
                return offset;
            }
            let offset = self.in_zone(tz).offset().fix().local_minus_utc();
            entries[next] = (self.0, tz, offset);
            recent.set((entries, (next + 1) % entries.len()));
            offset
        })
    }

    /// Appends [`Timestamp::to_rfc3339_in`]'s text to `out`, written digit by digit (an
    /// alert line carries one, and chrono's writer pads each field through the formatter).
    pub fn write_rfc3339_in(self, tz: Tz, out: &mut Vec<u8>) {
        let offset = self.offset_in(tz);
        let local = self.0 + i64::from(offset) * 1000;
        let (year, month, day) = civil_from_days(local.div_euclid(DAY_MS));
        // Outside years 0–9999 chrono adds a sign; an offset of odd seconds (a zone's
        // local mean time, before 1900) it writes its own way: both left to chrono.
        if !(0..=9999).contains(&year) || offset % 60 != 0 {
            out.extend_from_slice(self.to_rfc3339_in(tz).as_bytes());
            return;
        }
        let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let ms = local.rem_euclid(DAY_MS) as u32;
        let (seconds, millis) = (ms / 1000, ms % 1000);
        let y = year as u32;
        out.extend_from_slice(&two(y / 100));
        out.extend_from_slice(&two(y % 100));
        out.push(b'-');
        out.extend_from_slice(&two(month));
        out.push(b'-');
        out.extend_from_slice(&two(day));
        out.push(b'T');
        out.extend_from_slice(&two(seconds / 3600));
        out.push(b':');
        out.extend_from_slice(&two(seconds / 60 % 60));
        out.push(b':');
        out.extend_from_slice(&two(seconds % 60));
        if millis != 0 {
            out.extend_from_slice(&[b'.', b'0' + (millis / 100) as u8, b'0' + (millis / 10 % 10) as u8, b'0' + (millis % 10) as u8]);
        }
        if offset == 0 {
            out.push(b'Z');
        } else {
            let minutes = offset.unsigned_abs() / 60;
            out.push(if offset < 0 { b'-' } else { b'+' });
            out.extend_from_slice(&two(minutes / 60));
            out.push(b':');
            out.extend_from_slice(&two(minutes % 60));
        }
    }

    /// `YYYY-MM-DD HH:MM` in the given zone, for derivation texts a person reads.
    pub fn short_in(self, tz: Tz) -> String {
        self.short(tz).to_string()
    }

    /// [`Timestamp::short_in`] as a value that writes itself where it is formatted, so
    /// that a text citing several instants allocates none of them.
    pub fn short(self, tz: Tz) -> Short {
        Short { at: self, tz }
    }
}

/// An instant written `2024-03-14 10:00` in a zone; see [`Timestamp::short`].
#[derive(Clone, Copy, Debug)]
pub struct Short {
    at: Timestamp,
    tz: Tz,
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The zone's offset from chrono-tz; the wall-clock reading counted here
        // (`civil_from_days`) and written digit by digit: chrono's `format` parses its
        // pattern on every call, `{:02}` pads through the formatter, and its date fields
        // are decoded one call each; derivation texts cite several instants an alert.
        let local = self.at.0 + i64::from(self.at.offset_in(self.tz)) * 1000;
        let (year, month, day) = civil_from_days(local.div_euclid(DAY_MS));
        // Outside years 0–9999 `%Y` adds a sign, so those take chrono's way.
        if !(0..=9999).contains(&year) {
            return write!(f, "{}", self.at.in_zone(self.tz).format("%Y-%m-%d %H:%M"));
        }
        let minutes = (local.rem_euclid(DAY_MS) / 60_000) as u32;
        let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let y = year as u32;
        let [m1, m2] = two(month);
        let [d1, d2] = two(day);
        let [h1, h2] = two(minutes / 60);
        let [n1, n2] = two(minutes % 60);
        let [y1, y2] = two(y / 100);
        let [y3, y4] = two(y % 100);
        let text = [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b' ', h1, h2, b':', n1, n2];
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (chrono's), by
/// Howard Hinnant's `days_from_civil`: years counted from 1 March, so that a leap day
/// ends its year.
#[inline]
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * i64::from((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) of a count of days since 1970-01-01: the inverse of
/// [`days_from_civil`] (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 { march_month + 3 } else { march_month - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_in(Tz::UTC))
    }
}

/// The form every department system writes, `YYYY-MM-DDTHH:MM:SS`, an optional fraction
/// of 1–9 digits, then `Z` or `±HH:MM`, read field by field into milliseconds; `None` for
/// any other text, which chrono's RFC 3339 parser then accepts or refuses with its error.
///
/// chrono's parser walks a list of format items for every instant (46 ns, against 26 ns
/// with this layout read field by field and chrono's dates; an event carries two). The
/// date's days are counted here too ([`days_from_civil`]), instead of through a `NaiveDate`.
/// Tests hold the two equal over valid and invalid texts and on every day of the years
/// the engine supports.
fn parse_common_rfc3339(b: &[u8]) -> Option<i64> {
    /// Two ASCII digits, or none.
    fn two(hi: u8, lo: u8) -> Option<u32> {
        let (h, l) = (hi.wrapping_sub(b'0'), lo.wrapping_sub(b'0'));
        (h < 10 && l < 10).then(|| u32::from(h) * 10 + u32::from(l))
    }
    if b.len() < 20 {
        return None;
    }
    // `YYYY-MM-` and `DDTHH:MM` as two words, checked at once: the separators where they
    // belong, and `0`–`9` (high half 3, and still 3 with 6 added) at every other place.
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
    let (date, time) = (word(0), word(8));
    const DATE_DIGITS: u64 = 0x00ff_ff00_ffff_ffff;
    const DATE_SEPARATORS: u64 = 0x2d00_002d_0000_0000; // `-` at 4 and 7
    const TIME_DIGITS: u64 = 0xffff_00ff_ff00_ffff;
    const TIME_SEPARATORS: u64 = 0x0000_3a00_0054_0000; // `T` at 2, `:` at 5
    let digits = |w: u64, places: u64| {
        let (high, three, six) = (places & 0xf0f0_f0f0_f0f0_f0f0, places & 0x3030_3030_3030_3030, places & 0x0606_0606_0606_0606);
        w & high == three && w.wrapping_add(six) & high == three
    };
    if !digits(date, DATE_DIGITS)
        || date & !DATE_DIGITS != DATE_SEPARATORS
        || !digits(time, TIME_DIGITS)
        || time & !TIME_DIGITS != TIME_SEPARATORS
        || b[16] != b':'
    {
        return None;
    }
    let d = |i: usize| u32::from(b[i] - b'0');
    let year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    let (month, day) = (d(5) * 10 + d(6), d(8) * 10 + d(9));
    let (hour, minute, second) = (d(11) * 10 + d(12), d(14) * 10 + d(15), two(b[17], b[18])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (60) is left to chrono.
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let [b'.', fraction @ ..] = rest {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        millis = fraction[..n.min(3)].iter().fold(0, |m, &c| m * 10 + i64::from(c - b'0')) * [100, 10, 1][n.min(3) - 1];
        rest = &fraction[n..];
    }
    let offset_s = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_s;
    Some(seconds * 1000 + millis)
}

/// Parses a duration written as `250ms`, `90s`, `10m`, `1h`, `2d` or a combination (`1h30m`).
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next()? {
                's' => (1_000, 1),
                'm' => (60_000, 1),
                'h' => (HOUR_MS, 1),
                'd' => (DAY_MS, 1),
                _ => return None,
            }
        };
        rest = &rest[len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc3339_writer_writes_what_chrono_writes() {
        let zones = [Tz::Asia__Shanghai, Tz::UTC, Tz::America__St_Johns, Tz::Asia__Kolkata, Tz::Pacific__Chatham];
        // From year -248 to 10208, in uneven steps (minutes, days, leap years), with
        // and without milliseconds.
        let mut ms = -70_000_000_000_000i64;
        while ms < 260_000_000_000_000 {
            for tz in zones {
                for t in [Timestamp(ms), Timestamp(ms - ms.rem_euclid(1000))] {
                    let mut out = Vec::new();
                    t.write_rfc3339_in(tz, &mut out);
                    assert_eq!(String::from_utf8(out).expect("utf-8"), t.to_rfc3339_in(tz), "{} in {tz}", t.0);
                }
            }
            ms += 7_777_777_777;
        }
    }

    #[test]
    fn short_in_writes_what_chrono_s_pattern_writes() {
        let zones = [Tz::Asia__Shanghai, Tz::UTC, Tz::America__St_Johns];
        // From year -248 to 10208 (both signed ways of chrono and the fast one), in uneven
        // steps (minutes, days, leap years).
        let mut ms = -70_000_000_000_000i64;
        while ms < 260_000_000_000_000 {
            for tz in zones {
                let t = Timestamp(ms);
                assert_eq!(t.short_in(tz), t.in_zone(tz).format("%Y-%m-%d %H:%M").to_string(), "{ms} in {tz}");
            }
            ms += 7_777_777_777;
        }
    }

    /// The fast reading of the common layout agrees with chrono's parser on every text it
    /// reads, and reads none that chrono refuses.
    #[test]
    fn the_common_layout_reads_as_chrono_reads_it() {
        use proptest::prelude::*;
        let part = |lo: u32, hi: u32, width: usize| (lo..=hi).prop_map(move |n| format!("{n:0width$}"));
        let fraction = prop_oneof![Just(String::new()), "\\.[0-9]{1,11}", Just(".".to_owned())];
        let offset = prop_oneof![
            Just("Z".to_owned()),
            Just("z".to_owned()),
            Just("+08:00".to_owned()),
            Just("-00:00".to_owned()),
            "[+-][0-2][0-9]:[0-6][0-9]",
            "[+-][0-9]{1,3}(:[0-9]{1,2})?",
            Just(String::new()),
        ];
        let text = (part(0, 9999, 4), part(0, 13, 2), part(0, 32, 2), part(0, 25, 2), part(0, 61, 2), part(0, 61, 2), fraction, offset)
            .prop_map(|(y, mo, d, h, mi, s, f, o)| format!("{y}-{mo}-{d}T{h}:{mi}:{s}{f}{o}"));
        proptest!(ProptestConfig::with_cases(20_000), |(t in text)| {
            let chrono = DateTime::parse_from_rfc3339(&t).map(|d| d.timestamp_millis()).ok();
            match parse_common_rfc3339(t.as_bytes()) {
                Some(ms) => prop_assert_eq!(Some(ms), chrono, "{}", t),
                // Left to chrono on purpose: a lowercase `z`, a leap second, more than
                // nine digits of fraction.
                None => {
                    let long_fraction = t.split('.').nth(1).is_some_and(|f| f.bytes().take_while(u8::is_ascii_digit).count() > 9);
                    prop_assert!(chrono.is_none() || t.ends_with('z') || t[17..].starts_with("60") || long_fraction, "{} is read by chrono ({:?}) but not by the fast reading", t, chrono)
                }
            }
        });
        // Every day of the supported years and beyond (1968–2124), and one day in 97 of
        // years 0–9999, at a time that crosses midnight with its offset.
        use chrono::Datelike;
        let mut date = chrono::NaiveDate::from_ymd_opt(0, 1, 1).expect("date");
        while date.year() < 10_000 {
            let t = format!("{}T23:30:15.5-05:30", date.format("%Y-%m-%d"));
            assert_eq!(parse_common_rfc3339(t.as_bytes()), DateTime::parse_from_rfc3339(&t).ok().map(|d| d.timestamp_millis()), "{t}");
            let step = if (1968..=2124).contains(&date.year()) { 1 } else { 97 };
            date = date + chrono::Days::new(step);
        }
        for t in [
            "2024-02-29T23:59:59.999+08:00",
            "2000-02-29T12:00:00Z",
            "1971-01-01T00:00:00Z",
            "2100-02-28T00:00:00.5-05:30",
            "0000-03-01T00:00:00.000000001Z",
        ] {
            assert_eq!(parse_common_rfc3339(t.as_bytes()), DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis()), "{t}");
            assert!(parse_common_rfc3339(t.as_bytes()).is_some(), "{t}");
        }
        for t in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00",
            // Bytes next to the digits' at a digit's place, a separator out of place.
            "2024-1?-01T00:00:00Z",
            "2024-01-0:T00:00:00Z",
            "2024-01-01T00:0;:00Z",
            "20/4-01-01T00:00:00Z",
            "2024-01-01T00:00:0:Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00-00:00Z",
            "2024/01-01T00:00:00Z",
            "2024-01-01T00:00-00Z",
            "\u{664}024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_common_rfc3339(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn parses_offsets_and_keeps_milliseconds() {
        let a = Timestamp::parse_rfc3339("2024-03-04T09:00:00+08:00").unwrap();
        let b = Timestamp::parse_rfc3339("2024-03-04T01:00:00Z").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse_rfc3339("2024-03-04T01:00:00.250Z").unwrap();
        assert_eq!(c.0 - b.0, 250);
        assert!(Timestamp::parse_rfc3339("2024-03-04T09:00:00").is_err(), "an offset is required");
    }

    #[test]
    fn writes_in_the_calendar_zone() {
        let t = Timestamp::parse_rfc3339("2024-03-14T02:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339_in(chrono_tz::Asia::Shanghai), "2024-03-14T10:00:00+08:00");
        let t = Timestamp(t.0 + 5);
        assert_eq!(t.to_rfc3339_in(chrono_tz::Asia::Shanghai), "2024-03-14T10:00:00.005+08:00");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h"), Some(HOUR_MS));
        assert_eq!(parse_duration_ms("1h30m"), Some(HOUR_MS + 30 * 60_000));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("200ms"), Some(200));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("1x"), None);
        assert_eq!(parse_duration_ms(""), None);
    }
}
