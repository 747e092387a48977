//! Working calendars (DOMAIN §3.1) and working time W(t) (§3.2).
//!
//! A [`Calendar`] is compiled once from its [`CalendarSpec`] into day tables covering
//! 1970–2129: the UTC instant of every local midnight, whether the day is a working day,
//! and the working time accumulated before it. W(t) is then a table read plus the part
//! of the day already worked, and its inverse a binary search, so a deadline costs a
//! few dozen nanoseconds however many holidays it crosses.

use crate::time::{DAY_MS, Timestamp};
use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// First local year of the day tables.
const TABLE_FIRST_YEAR: i32 = 1970;
/// First local year past the day tables.
const TABLE_END_YEAR: i32 = 2130;

/// The name of the calendar a service uses when its catalog entry names none.
pub const DEFAULT_CALENDAR: &str = "cn-mainland";

/// The official mainland China calendar shipped with the product.
/// The built-in cn-mainland calendar file.
pub const CN_MAINLAND_TOML: &str = include_str!("../data/calendars/cn-mainland.toml");

const WORKING: u8 = 1;
const HOLIDAY: u8 = 2;
const ADJUSTED: u8 = 4;
const WEEKEND: u8 = 8;
const UNCOVERED: u8 = 16;

/// A calendar as written by an operator: the project's calendar file format (TOML).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// The name services refer to, such as `cn-mainland` or `shenzhen-futian-centre`.
    pub name: String,
    /// IANA time zone in which day boundaries are taken.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Days of the week that are not worked unless adjusted (`Sat`, `Sun`, …).
    #[serde(default = "default_weekend")]
    pub weekend: Vec<String>,
    /// Office periods such as `09:00-12:00`; when empty a working day counts whole.
    #[serde(default)]
    pub office_hours: Vec<String>,
    /// The published years; a year not listed is counted Mon–Fri and raises CALENDAR_MISSING.
    #[serde(default)]
    pub year: Vec<YearSpec>,
}

/// One year's holiday notice.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct YearSpec {
    /// The calendar year the notice covers.
    pub year: i32,
    /// Runs of public holidays, each with the festival's name.
    #[serde(default)]
    pub holidays: Vec<HolidaySpec>,
    /// Adjusted working days (调休上班): weekend days that are worked.
    #[serde(default)]
    pub workdays: Vec<String>,
}

/// A run of consecutive public holidays.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HolidaySpec {
    /// Chinese name, as in the notice (春节).
    pub name: String,
    /// English name (Spring Festival).
    #[serde(default)]
    pub name_en: Option<String>,
    /// First day off, `YYYY-MM-DD`.
    pub from: String,
    /// Last day off, `YYYY-MM-DD`.
    pub to: String,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".to_owned()
}

fn default_weekend() -> Vec<String> {
    vec!["Sat".to_owned(), "Sun".to_owned()]
}

/// Why a calendar file was refused; each names the place to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalendarError {
    /// The TOML could not be read into the calendar format.
    #[error("calendar file: {0}")]
    Syntax(String),
    /// `time_zone` is not an IANA zone name.
    #[error("calendar `{calendar}`: time_zone `{zone}` is not an IANA time zone name (for example Asia/Shanghai)")]
    TimeZone { calendar: String, zone: String },
    /// A weekend entry is not a day name.
    #[error("calendar `{calendar}`: weekend day `{day}` is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")]
    Weekday { calendar: String, day: String },
    /// An office period is not `HH:MM-HH:MM` in order, or periods overlap.
    #[error("calendar `{calendar}`: office_hours `{period}` must be HH:MM-HH:MM, in order, not overlapping")]
    OfficeHours { calendar: String, period: String },
    /// A date is not `YYYY-MM-DD`, or lies outside its year.
    #[error("calendar `{calendar}`, year {year}: `{date}` is not a YYYY-MM-DD date of that year")]
    Date { calendar: String, year: i32, date: String },
    /// A year is listed twice or lies outside 1970–2129.
    #[error("calendar `{calendar}`: year {year} is listed twice or is outside 1970-2129")]
    Year { calendar: String, year: i32 },
    /// A holiday run ends before it starts.
    #[error("calendar `{calendar}`, year {year}: holiday `{name}` ends ({to}) before it starts ({from})")]
    Range { calendar: String, year: i32, name: String, from: String, to: String },
    /// A day is both a holiday and an adjusted working day.
    #[error("calendar `{calendar}`: {date} is listed both as a holiday and as an adjusted working day")]
    Conflict { calendar: String, date: String },
}

/// A compiled calendar: day tables for fast working-time arithmetic.
#[derive(Debug)]
pub struct Calendar {
    name: Arc<str>,
    tz: Tz,
    spec: CalendarSpec,
    /// Office periods as millisecond offsets from local midnight; empty = whole days.
    office: Vec<(i64, i64)>,
    /// L: the working time of one working day, in milliseconds.
    day_len: i64,
    /// UTC instant of each local midnight, one more entry than days.
    day_start: Vec<i64>,
    /// Working days before each day, one more entry than days: W at midnight is rank × L.
    rank: Vec<u32>,
    /// Index of every working day, in order: the inverse of `rank`.
    working_days: Vec<u32>,
    /// Days not covered by a notice before each day (prefix sums), one more than days.
    uncovered_before: Vec<u32>,
    /// Per day: WORKING, HOLIDAY, ADJUSTED, WEEKEND, UNCOVERED flags.
    flags: Vec<u8>,
    /// Day index → index into `holiday_names`, for holidays.
    holiday_of: FxHashMap<u32, u16>,
    /// (Chinese, English) festival names.
    holiday_names: Vec<(String, String)>,
    /// Years with a published notice, from TABLE_FIRST_YEAR.
    covered: Vec<bool>,
    /// Local calendar year of each day, for CALENDAR_MISSING.
    day_year: Vec<u16>,
    /// The longest run of covered days, as instants `[from, to)`: a fast path for
    /// [`Calendar::uncovered_years_between`].
    covered_span: (i64, i64),
}

impl Calendar {
    /// Reads a calendar file (the project's TOML format) and compiles it.
    pub fn from_toml(text: &str) -> Result<Calendar, CalendarError> {
        let spec: CalendarSpec = toml::from_str(text).map_err(|e| CalendarError::Syntax(e.to_string()))?;
        Calendar::compile(spec)
    }

    /// Compiles a calendar from its spec, checking every field.
    pub fn compile(spec: CalendarSpec) -> Result<Calendar, CalendarError> {
        let cal = spec.name.clone();
        let tz: Tz = spec.time_zone.parse().map_err(|_| CalendarError::TimeZone { calendar: cal.clone(), zone: spec.time_zone.clone() })?;
        let mut weekend = [false; 7];
        for day in &spec.weekend {
            let wd: Weekday = day.parse().map_err(|_| CalendarError::Weekday { calendar: cal.clone(), day: day.clone() })?;
            weekend[wd.num_days_from_monday() as usize] = true;
        }
        let office = parse_office_hours(&cal, &spec.office_hours)?;
        let day_len = if office.is_empty() { DAY_MS } else { office.iter().map(|(s, e)| e - s).sum() };

        let first = NaiveDate::from_ymd_opt(TABLE_FIRST_YEAR, 1, 1).expect("valid date");
        let end = NaiveDate::from_ymd_opt(TABLE_END_YEAR, 1, 1).expect("valid date");
        let days = (end - first).num_days() as usize;

        let mut covered = vec![false; (TABLE_END_YEAR - TABLE_FIRST_YEAR) as usize];
        let mut special: BTreeMap<u32, u8> = BTreeMap::new();
        let mut holiday_of = FxHashMap::default();
        let mut holiday_names: Vec<(String, String)> = Vec::new();
        for year in &spec.year {
            let slot = year.year - TABLE_FIRST_YEAR;
            if !(0..covered.len() as i32).contains(&slot) || covered[slot as usize] {
                return Err(CalendarError::Year { calendar: cal.clone(), year: year.year });
            }
            covered[slot as usize] = true;
            let date_of = |text: &str| -> Result<NaiveDate, CalendarError> {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|d| d.year() == year.year).ok_or_else(|| CalendarError::Date {
                    calendar: cal.clone(),
                    year: year.year,
                    date: text.to_owned(),
                })
            };
            for h in &year.holidays {
                let (from, to) = (date_of(&h.from)?, date_of(&h.to)?);
                if to < from {
                    return Err(CalendarError::Range {
                        calendar: cal.clone(),
                        year: year.year,
                        name: h.name.clone(),
                        from: h.from.clone(),
                        to: h.to.clone(),
                    });
                }
                let names = (h.name.clone(), h.name_en.clone().unwrap_or_else(|| h.name.clone()));
                let name_index = match holiday_names.iter().position(|n| *n == names) {
                    Some(i) => i,
                    None => {
                        holiday_names.push(names);
                        holiday_names.len() - 1
                    }
                } as u16;
                let mut d = from;
                while d <= to {
                    let i = (d - first).num_days() as u32;
                    special.insert(i, HOLIDAY);
                    holiday_of.insert(i, name_index);
                    d = d.succ_opt().expect("in range");
                }
            }
            for w in &year.workdays {
                let d = date_of(w)?;
                let i = (d - first).num_days() as u32;
                if special.insert(i, ADJUSTED) == Some(HOLIDAY) {
                    return Err(CalendarError::Conflict { calendar: cal.clone(), date: w.clone() });
                }
            }
        }

        let mut day_start = Vec::with_capacity(days + 1);
        let mut rank = Vec::with_capacity(days + 1);
        let mut working_days = Vec::with_capacity(days);
        let mut uncovered_before = Vec::with_capacity(days + 1);
        let mut flags = Vec::with_capacity(days);
        let mut day_year = Vec::with_capacity(days);
        let mut uncovered = 0u32;
        let mut date = first;
        for i in 0..=days {
            day_start.push(local_midnight(tz, date));
            rank.push(working_days.len() as u32);
            uncovered_before.push(uncovered);
            if i == days {
                break;
            }
            let mut f = special.get(&(i as u32)).copied().unwrap_or(0);
            if weekend[date.weekday().num_days_from_monday() as usize] {
                f |= WEEKEND;
            }
            if !covered[(date.year() - TABLE_FIRST_YEAR) as usize] {
                f |= UNCOVERED;
            }
            if f & ADJUSTED != 0 || (f & (WEEKEND | HOLIDAY) == 0) {
                f |= WORKING;
            }
            flags.push(f);
            day_year.push(date.year() as u16);
            if f & WORKING != 0 {
                working_days.push(i as u32);
            }
            if f & UNCOVERED != 0 {
                uncovered += 1;
            }
            date = date.succ_opt().expect("in range");
        }

        let mut covered_span = (0, 0);
        let mut run_start = None;
        for i in 0..=days {
            let covered = i < days && flags[i] & UNCOVERED == 0;
            match (covered, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(a)) => {
                    if day_start[i] - day_start[a] > covered_span.1 - covered_span.0 {
                        covered_span = (day_start[a], day_start[i]);
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        Ok(Calendar {
            covered_span,
            name: Arc::from(spec.name.as_str()),
            tz,
            spec,
            office,
            day_len,
            day_start,
            rank,
            working_days,
            uncovered_before,
            flags,
            holiday_of,
            holiday_names,
            covered,
            day_year,
        })
    }

    /// The calendar's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The calendar's name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The zone in which day boundaries are taken.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The spec this calendar was compiled from.
    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    /// L: the working time of one working day in milliseconds (86 400 000 unless office hours are set).
    pub fn day_len(&self) -> i64 {
        self.day_len
    }

    /// Whether office hours are configured.
    pub fn has_office_hours(&self) -> bool {
        !self.office.is_empty()
    }

    /// Index of the local day containing instant `t` (clamped to the tables).
    pub fn day_of(&self, t: i64) -> usize {
        let last = self.flags.len() - 1;
        // Guess from the offset of the first day, then step to the exact day.
        let guess = (t - self.day_start[0]).div_euclid(DAY_MS).clamp(0, last as i64) as usize;
        let mut i = guess;
        while i > 0 && self.day_start[i] > t {
            i -= 1;
        }
        while i < last && self.day_start[i + 1] <= t {
            i += 1;
        }
        i
    }

    /// The UTC instant of local midnight starting day `i`.
    pub fn day_start(&self, i: usize) -> i64 {
        self.day_start[i.min(self.day_start.len() - 1)]
    }

    /// The end of the local day containing `t` (the next local midnight): the anchor of §3.3.
    pub fn end_of_day(&self, t: i64) -> i64 {
        self.day_start(self.day_of(t) + 1)
    }

    /// [`Calendar::end_of_day`] and [`Calendar::working_time`] at that instant, from one
    /// lookup of the day: W at a midnight is its rank × L.
    pub fn end_of_day_and_working_time(&self, t: i64) -> (i64, i64) {
        let i = (self.day_of(t) + 1).min(self.day_start.len() - 1);
        (self.day_start[i], i64::from(self.rank[i]) * self.day_len)
    }

    /// The local date of day `i`.
    pub fn date(&self, i: usize) -> NaiveDate {
        NaiveDate::from_ymd_opt(TABLE_FIRST_YEAR, 1, 1).expect("valid date") + chrono::Days::new(i as u64)
    }

    /// The day index of a local date, if inside the tables.
    pub fn day_index(&self, date: NaiveDate) -> Option<usize> {
        let first = NaiveDate::from_ymd_opt(TABLE_FIRST_YEAR, 1, 1).expect("valid date");
        let i = (date - first).num_days();
        (0..self.flags.len() as i64).contains(&i).then_some(i as usize)
    }

    /// The local date containing instant `t`.
    pub fn date_of(&self, t: Timestamp) -> NaiveDate {
        self.date(self.day_of(t.0))
    }

    /// Whether day `i` is a working day (adjusted working day, or neither weekend nor holiday).
    pub fn is_working_day(&self, i: usize) -> bool {
        self.flags.get(i).is_some_and(|f| f & WORKING != 0)
    }

    /// Whether day `i` is a public holiday of a published notice.
    pub fn is_holiday(&self, i: usize) -> bool {
        self.flags.get(i).is_some_and(|f| f & HOLIDAY != 0)
    }

    /// Whether day `i` is an adjusted working day (调休上班).
    pub fn is_adjusted_working_day(&self, i: usize) -> bool {
        self.flags.get(i).is_some_and(|f| f & ADJUSTED != 0)
    }

    /// The (Chinese, English) festival name of a holiday.
    pub fn holiday_name(&self, i: usize) -> Option<(&str, &str)> {
        // Only a holiday has a name: the flag answers the other days without hashing
        // (a derivation asks for every day of its period).
        if !self.is_holiday(i) {
            return None;
        }
        self.holiday_of.get(&(i as u32)).map(|&n| {
            let (zh, en) = &self.holiday_names[n as usize];
            (zh.as_str(), en.as_str())
        })
    }

    /// Whether a published notice covers `year`.
    pub fn covers_year(&self, year: i32) -> bool {
        let slot = year - TABLE_FIRST_YEAR;
        slot >= 0 && self.covered.get(slot as usize).copied().unwrap_or(false)
    }

    /// The published years, ascending.
    pub fn covered_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.covered.iter().enumerate().filter(|(_, c)| **c).map(|(i, _)| TABLE_FIRST_YEAR + i as i32)
    }

    /// Calls `f` with every year not covered by a notice among the local days of
    /// `[from, to]` (instants), each year once, ascending.
    // Inlined: the engine asks for every deadline it computes, and the answer is almost
    // always the first test's.
    #[inline]
    pub fn uncovered_years_between(&self, from: i64, to: i64, f: impl FnMut(i32)) {
        if from >= self.covered_span.0 && to < self.covered_span.1 && to >= from {
            return;
        }
        self.uncovered_years_outside_the_span(from, to, f);
    }

    #[inline(never)]
    fn uncovered_years_outside_the_span(&self, from: i64, to: i64, mut f: impl FnMut(i32)) {
        let (a, b) = (self.day_of(from.min(to)), self.day_of(from.max(to)));
        if self.uncovered_before[b + 1] == self.uncovered_before[a] {
            return;
        }
        let (ya, yb) = (self.day_year[a] as i32, self.day_year[b] as i32);
        for year in ya..=yb {
            if !self.covers_year(year) {
                f(year);
            }
        }
    }

    /// 00:00 local on 1 January of `year`: the instant CALENDAR_MISSING names.
    pub fn start_of_year(&self, year: i32) -> Timestamp {
        let date = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid date");
        Timestamp(self.day_index(date).map_or_else(|| local_midnight(self.tz, date), |i| self.day_start(i)))
    }

    /// W(t): working time elapsed from the table origin to instant `t`, in milliseconds.
    /// Every working day counts L, so W at a midnight is (working days before it) × L.
    pub fn working_time(&self, t: i64) -> i64 {
        let i = self.day_of(t);
        let base = i64::from(self.rank[i]) * self.day_len;
        let start = self.day_start[i];
        if t <= start || self.flags[i] & WORKING == 0 {
            return base;
        }
        let into = t - start;
        let worked =
            if self.office.is_empty() { into.min(self.day_len) } else { self.office.iter().map(|&(s, e)| into.clamp(s, e) - s).sum() };
        base + worked
    }

    /// W⁻¹(x): the earliest instant `t` with W(t) ≥ x. Constant time: the working day
    /// that holds x is found by its rank.
    pub fn instant_at_working_time(&self, x: i64) -> i64 {
        if x <= 0 {
            return self.day_start[0];
        }
        // Whole days (L = 24 h) are divided by a constant, which compiles to a multiply.
        let k = if self.office.is_empty() { (x - 1) / DAY_MS } else { (x - 1) / self.day_len } as usize;
        let Some(&day) = self.working_days.get(k) else {
            return *self.day_start.last().expect("non-empty");
        };
        let day = day as usize;
        let need = x - k as i64 * self.day_len;
        let start = self.day_start[day];
        if self.office.is_empty() {
            return (start + need).min(self.day_start[day + 1]);
        }
        let mut left = need;
        for &(s, e) in &self.office {
            if left <= e - s {
                return start + s + left;
            }
            left -= e - s;
        }
        start + self.office.last().map_or(DAY_MS, |p| p.1)
    }

    /// The end of the first working day strictly after day `i` (used by the natural-day rule of 民法典 art. 203).
    pub fn end_of_next_working_day(&self, i: usize) -> i64 {
        let mut j = i + 1;
        while j < self.flags.len() && self.flags[j] & WORKING == 0 {
            j += 1;
        }
        self.day_start(j + 1)
    }
}

fn local_midnight(tz: Tz, date: NaiveDate) -> i64 {
    let naive = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.timestamp_millis(),
        // Midnight skipped by a daylight-saving change: the day starts at the first valid minute.
        None => (1..=180)
            .find_map(|m| tz.from_local_datetime(&(naive + chrono::Duration::minutes(m))).earliest())
            .map_or(naive.and_utc().timestamp_millis(), |t| t.timestamp_millis()),
    }
}

fn parse_office_hours(calendar: &str, periods: &[String]) -> Result<Vec<(i64, i64)>, CalendarError> {
    let bad = |p: &str| CalendarError::OfficeHours { calendar: calendar.to_owned(), period: p.to_owned() };
    let mut out: Vec<(i64, i64)> = Vec::new();
    for p in periods {
        let (a, b) = p.split_once('-').ok_or_else(|| bad(p))?;
        let parse = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad(p));
        let (a, b) = (parse(a)?, parse(b)?);
        let ms = |t: NaiveTime| (t - NaiveTime::MIN).num_milliseconds();
        let (s, e) = (ms(a), ms(b));
        if e <= s || out.last().is_some_and(|&(_, prev_end)| s < prev_end) {
            return Err(bad(p));
        }
        out.push((s, e));
    }
    Ok(out)
}

/// The named calendars of a deployment, the built-in `cn-mainland` among them.
#[derive(Debug, Clone)]
pub struct Calendars {
    list: Vec<Arc<Calendar>>,
}

impl Calendars {
    /// Only the built-in official mainland China calendar.
    pub fn builtin() -> Calendars {
        static BUILTIN: std::sync::OnceLock<Arc<Calendar>> = std::sync::OnceLock::new();
        let cal = BUILTIN.get_or_init(|| Arc::new(Calendar::from_toml(CN_MAINLAND_TOML).expect("the shipped calendar is valid")));
        Calendars { list: vec![cal.clone()] }
    }

    /// Adds a calendar, replacing one of the same name (a new year's notice, say).
    pub fn insert(&mut self, calendar: Calendar) {
        let calendar = Arc::new(calendar);
        match self.list.iter().position(|c| c.name() == calendar.name()) {
            Some(i) => self.list[i] = calendar,
            None => self.list.push(calendar),
        }
    }

    /// The calendar of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<Calendar>> {
        self.list.iter().find(|c| c.name() == name)
    }

    /// Position of the calendar of that name, a stable handle while this set lives.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|c| c.name() == name)
    }

    /// The calendar at a position returned by [`Calendars::position`].
    pub fn at(&self, index: usize) -> &Arc<Calendar> {
        &self.list[index]
    }

    /// Every calendar, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Calendar>> {
        self.list.iter()
    }

    /// The default calendar (`cn-mainland`), or the first one.
    pub fn default_calendar(&self) -> &Arc<Calendar> {
        self.get(DEFAULT_CALENDAR).unwrap_or(&self.list[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn() -> Arc<Calendar> {
        Calendars::builtin().default_calendar().clone()
    }

    fn day(cal: &Calendar, date: &str) -> usize {
        cal.day_index(NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap()).unwrap()
    }

    fn at(text: &str) -> i64 {
        Timestamp::parse_rfc3339(text).unwrap().0
    }

    #[test]
    fn adjusted_working_days_of_2025_are_worked() {
        let cal = cn();
        for d in ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"] {
            assert!(cal.is_working_day(day(&cal, d)), "{d} is an adjusted working day");
            assert!(cal.is_adjusted_working_day(day(&cal, d)));
        }
        for d in ["2025-01-28", "2025-02-04", "2025-10-01", "2025-10-08", "2025-10-12"] {
            assert!(!cal.is_working_day(day(&cal, d)), "{d} is not worked");
        }
        assert_eq!(cal.holiday_name(day(&cal, "2025-10-06")), Some(("中秋", "Mid-autumn Festival")));
    }

    #[test]
    fn working_time_is_flat_outside_working_days() {
        let cal = cn();
        let sat = at("2024-03-09T10:00:00+08:00");
        let sun = at("2024-03-10T23:00:00+08:00");
        assert_eq!(cal.working_time(sat), cal.working_time(sun));
        let mon = at("2024-03-11T06:00:00+08:00");
        assert_eq!(cal.working_time(mon) - cal.working_time(sun), 6 * 3_600_000);
    }

    #[test]
    fn inverse_gives_the_earliest_instant() {
        let cal = cn();
        // The end of Friday's work is reached at Friday 24:00, not Monday 00:00.
        let fri_end = at("2024-03-09T00:00:00+08:00");
        let x = cal.working_time(fri_end);
        assert_eq!(cal.instant_at_working_time(x), fri_end);
        let mid = at("2024-03-06T13:30:00+08:00");
        assert_eq!(cal.instant_at_working_time(cal.working_time(mid)), mid);
    }

    #[test]
    fn office_hours_count_only_office_periods() {
        let mut spec = cn().spec().clone();
        spec.name = "office".into();
        spec.office_hours = vec!["09:00-12:00".into(), "13:30-17:30".into()];
        let cal = Calendar::compile(spec).unwrap();
        assert_eq!(cal.day_len(), 7 * 3_600_000);
        let a = at("2024-03-04T08:00:00+08:00");
        let b = at("2024-03-04T14:30:00+08:00");
        assert_eq!(cal.working_time(b) - cal.working_time(a), 4 * 3_600_000);
        // The close of Monday's last period is reached at 17:30.
        let x = cal.working_time(a) + 7 * 3_600_000;
        assert_eq!(cal.instant_at_working_time(x), at("2024-03-04T17:30:00+08:00"));
    }

    #[test]
    fn uncovered_years_are_reported_and_count_monday_to_friday() {
        let cal = cn();
        assert!(cal.covers_year(2004) && cal.covers_year(2026));
        assert!(!cal.covers_year(2027) && !cal.covers_year(2003));
        let mut years = vec![];
        cal.uncovered_years_between(at("2026-12-20T00:00:00+08:00"), at("2027-01-20T00:00:00+08:00"), |y| years.push(y));
        assert_eq!(years, vec![2027]);
        assert!(cal.is_working_day(day(&cal, "2027-01-01")), "no notice for 2027: a Friday counts");
        assert!(!cal.is_working_day(day(&cal, "2027-01-02")));
        assert_eq!(cal.start_of_year(2027).0, at("2027-01-01T00:00:00+08:00"));
    }

    #[test]
    fn bad_calendars_name_the_problem() {
        let err = Calendar::from_toml("name = \"x\"\ntime_zone = \"Mars/Base\"\n").unwrap_err();
        assert!(err.to_string().contains("Mars/Base"), "{err}");
        let err = Calendar::from_toml("name = \"x\"\n[[year]]\nyear = 2030\nworkdays = [\"2031-01-01\"]\n").unwrap_err();
        assert!(err.to_string().contains("2031-01-01"), "{err}");
        let err = Calendar::from_toml("name = \"x\"\nweekend = [\"Caturday\"]\n").unwrap_err();
        assert!(err.to_string().contains("Caturday"), "{err}");
        let err = Calendar::from_toml("name = \"x\"\ncolour = 1\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
