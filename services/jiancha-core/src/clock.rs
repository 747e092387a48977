//! Statutory clocks (DOMAIN §3.3–3.4): from a start instant and a budget of working
//! time, with pauses excluded, to a deadline.
//!
//! Counting is a pure function of its inputs. [`Counter::judged_deadline`] applies the
//! rule that a timer alert is judged by the events that occurred before its deadline:
//! a pause or an extension moves the deadline only if it occurs before the deadline as
//! it stood without it.

use crate::calendar::Calendar;
use crate::catalog::DayKind;
use crate::time::DAY_MS;

/// An interval excluded from a clock (a lawful suspension), `[from, to)` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pause {
    /// When the suspension started.
    pub from: i64,
    /// When it ended (RESUMED, DECIDED, or its expected end).
    pub to: i64,
}

/// Something that happens to a running clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockChange {
    /// A lawful suspension.
    Pause(Pause),
    /// A lawful extension adding `budget` milliseconds of working time, at instant `at`.
    Extend {
        /// When the extension occurred.
        at: i64,
        /// Working time added.
        budget: i64,
    },
}

impl ClockChange {
    /// When the change occurred.
    pub fn at(&self) -> i64 {
        match *self {
            ClockChange::Pause(p) => p.from,
            ClockChange::Extend { at, .. } => at,
        }
    }
}

/// Counts clocks over one calendar in one day kind.
#[derive(Clone, Copy, Debug)]
pub struct Counter<'a> {
    /// The calendar whose day boundaries and working days apply.
    pub calendar: &'a Calendar,
    /// Working or natural days.
    pub kind: DayKind,
}

impl<'a> Counter<'a> {
    /// A counter over working days of `calendar`.
    pub fn working(calendar: &'a Calendar) -> Counter<'a> {
        Counter { calendar, kind: DayKind::Working }
    }

    /// L: milliseconds of counted time in one day.
    pub fn unit(&self) -> i64 {
        match self.kind {
            DayKind::Working => self.calendar.day_len(),
            DayKind::Natural => DAY_MS,
        }
    }

    /// Counted time from the origin to `t` (W for working days, the instant itself for natural days).
    pub fn elapsed(&self, t: i64) -> i64 {
        match self.kind {
            DayKind::Working => self.calendar.working_time(t),
            DayKind::Natural => t,
        }
    }

    fn instant_at(&self, x: i64) -> i64 {
        match self.kind {
            DayKind::Working => self.calendar.instant_at_working_time(x),
            DayKind::Natural => x,
        }
    }

    /// The anchor of a clock started at `start`: the end of its local day (民法典 art. 201).
    pub fn anchor(&self, start: i64) -> i64 {
        self.calendar.end_of_day(start)
    }

    /// The deadline of a clock started at `start` with `budget` milliseconds, excluding
    /// `pauses` (sorted by start; they may overlap).
    ///
    /// The counted time at the clock's current instant is carried along rather than
    /// looked up again for each use (the engine asks for several deadlines an event).
    pub fn deadline(&self, start: i64, budget: i64, pauses: &[Pause]) -> i64 {
        let (anchor, anchor_elapsed) = match self.kind {
            DayKind::Working => self.calendar.end_of_day_and_working_time(start),
            DayKind::Natural => {
                let anchor = self.anchor(start);
                (anchor, anchor)
            }
        };
        if budget <= 0 {
            return anchor;
        }
        let (mut cur, mut cur_elapsed) = (anchor, anchor_elapsed);
        let mut left = budget;
        for p in pauses {
            if p.to <= cur {
                continue;
            }
            if p.from > cur {
                let available = self.elapsed(p.from) - cur_elapsed;
                if available >= left {
                    return self.finish(self.instant_at(cur_elapsed + left));
                }
                left -= available;
            }
            // `p.to` is after `cur` here.
            cur = p.to;
            cur_elapsed = self.elapsed(cur);
        }
        self.finish(self.instant_at(cur_elapsed + left))
    }

    /// Natural-day periods ending on a day off run to the end of the next working day
    /// (民法典 art. 203).
    fn finish(&self, deadline: i64) -> i64 {
        match self.kind {
            DayKind::Working => deadline,
            DayKind::Natural => {
                let last_day = self.calendar.day_of(deadline - 1);
                if self.calendar.is_working_day(last_day) { deadline } else { self.calendar.end_of_next_working_day(last_day) }
            }
        }
    }

    /// The deadline with `changes` (sorted by instant) applied in order, each only if it
    /// occurs strictly before the deadline as it stands without it. Returns the deadline
    /// and how many changes were applied; `pauses` is scratch space.
    pub fn judged_deadline(&self, start: i64, budget: i64, changes: &[ClockChange], pauses: &mut Vec<Pause>) -> (i64, usize) {
        pauses.clear();
        let mut budget = budget;
        let mut deadline = self.deadline(start, budget, pauses);
        let mut applied = 0;
        for change in changes {
            if change.at() >= deadline {
                break;
            }
            match *change {
                ClockChange::Pause(p) => pauses.push(p),
                ClockChange::Extend { budget: more, .. } => budget += more,
            }
            deadline = self.deadline(start, budget, pauses);
            applied += 1;
        }
        (deadline, applied)
    }

    /// Counted time consumed between `anchor` and `t`, outside `pauses`.
    pub fn consumed(&self, anchor: i64, t: i64, pauses: &[Pause]) -> i64 {
        if t <= anchor {
            return 0;
        }
        let mut total = 0;
        let mut cur = anchor;
        for p in pauses {
            if p.to <= cur || p.from >= t {
                continue;
            }
            if p.from > cur {
                total += self.elapsed(p.from) - self.elapsed(cur);
            }
            cur = cur.max(p.to);
        }
        if cur < t {
            total += self.elapsed(t) - self.elapsed(cur);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendars;
    use crate::time::Timestamp;

    fn at(text: &str) -> i64 {
        Timestamp::parse_rfc3339(text).unwrap().0
    }

    fn days(n: i64) -> i64 {
        n * DAY_MS
    }

    fn show(t: i64) -> String {
        Timestamp(t).to_rfc3339_in(chrono_tz::Asia::Shanghai)
    }

    /// The worked examples of DOMAIN §3.5.
    #[test]
    fn worked_examples_of_the_spec() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        let cases = [
            ("2024-09-27T15:00:00+08:00", 20, "2024-10-31T00:00:00+08:00"),
            ("2024-05-11T10:00:00+08:00", 5, "2024-05-18T00:00:00+08:00"),
            ("2024-03-04T09:00:00+08:00", 5, "2024-03-12T00:00:00+08:00"),
            ("2024-02-08T16:00:00+08:00", 5, "2024-02-22T00:00:00+08:00"),
            ("2024-06-07T11:00:00+08:00", 0, "2024-06-08T00:00:00+08:00"),
            ("2024-06-08T09:00:00+08:00", 10, "2024-06-25T00:00:00+08:00"),
        ];
        for (start, n, want) in cases {
            assert_eq!(show(c.deadline(at(start), days(n), &[])), want, "{n} days from {start}");
        }
    }

    #[test]
    fn worked_examples_with_pauses() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        let start = at("2024-03-04T09:00:00+08:00");
        let five = Pause { from: at("2024-03-05T14:00:00+08:00"), to: at("2024-03-08T10:00:00+08:00") };
        assert_eq!(show(c.deadline(start, days(5), &[five])), "2024-03-14T20:00:00+08:00");
        assert_eq!(show(c.deadline(start, days(4), &[five])), "2024-03-13T20:00:00+08:00", "WARNING at 4 days");
        // Expected 2 days: the pause ends at its expected end, 03-08 00:00.
        let two = Pause { from: five.from, to: at("2024-03-08T00:00:00+08:00") };
        assert_eq!(show(c.deadline(start, days(5), &[two])), "2024-03-14T10:00:00+08:00");
    }

    #[test]
    fn three_days_from_monday_end_on_thursday() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        assert_eq!(show(c.deadline(at("2024-03-04T10:00:00+08:00"), days(3), &[])), "2024-03-08T00:00:00+08:00");
    }

    #[test]
    fn start_on_a_weekend_or_holiday_counts_from_the_next_working_day() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        // Saturday start: Mon..Wed.
        assert_eq!(show(c.deadline(at("2024-03-09T10:00:00+08:00"), days(3), &[])), "2024-03-14T00:00:00+08:00");
        // Start on National Day 2024-10-03: the holiday runs to 10-07, then 10-08, 10-09 (10-12 Sat is worked).
        assert_eq!(show(c.deadline(at("2024-10-03T10:00:00+08:00"), days(2), &[])), "2024-10-10T00:00:00+08:00");
    }

    #[test]
    fn adjusted_working_days_of_2025_count() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        // Fri 2025-01-24: next working days are Sun 01-26 (adjusted) and Mon 01-27, then the Spring Festival.
        assert_eq!(show(c.deadline(at("2025-01-24T10:00:00+08:00"), days(2), &[])), "2025-01-28T00:00:00+08:00");
        // 2025-02-05 Wed .. 02-08 Sat (adjusted) is the 4th working day.
        assert_eq!(show(c.deadline(at("2025-02-04T10:00:00+08:00"), days(4), &[])), "2025-02-09T00:00:00+08:00");
        // Fri 2025-04-25: Sun 04-27 adjusted, Mon 04-28, Tue 04-29, Wed 04-30.
        assert_eq!(show(c.deadline(at("2025-04-25T10:00:00+08:00"), days(1), &[])), "2025-04-28T00:00:00+08:00");
        // Fri 2025-09-26: Sun 09-28 adjusted, Mon 09-29.
        assert_eq!(show(c.deadline(at("2025-09-26T10:00:00+08:00"), days(2), &[])), "2025-09-30T00:00:00+08:00");
        // Thu 2025-10-09: Fri 10-10, Sat 10-11 adjusted.
        assert_eq!(show(c.deadline(at("2025-10-09T10:00:00+08:00"), days(2), &[])), "2025-10-12T00:00:00+08:00");
    }

    #[test]
    fn a_pause_before_the_anchor_consumes_nothing() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        let start = at("2024-03-04T09:00:00+08:00");
        // Paused from 11:00 Monday to Wednesday 12:00: the clock runs from Wed 12:00 with all 3 days.
        let p = Pause { from: at("2024-03-04T11:00:00+08:00"), to: at("2024-03-06T12:00:00+08:00") };
        assert_eq!(show(c.deadline(start, days(3), &[p])), "2024-03-11T12:00:00+08:00");
        // A pause wholly inside the start day changes nothing.
        let q = Pause { from: at("2024-03-04T11:00:00+08:00"), to: at("2024-03-04T15:00:00+08:00") };
        assert_eq!(c.deadline(start, days(3), &[q]), c.deadline(start, days(3), &[]));
    }

    #[test]
    fn changes_after_the_deadline_do_not_move_it() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        let start = at("2024-03-04T09:00:00+08:00");
        let mut scratch = Vec::new();
        let late = ClockChange::Extend { at: at("2024-03-12T00:00:00+08:00"), budget: days(5) };
        let (d, n) = c.judged_deadline(start, days(5), &[late], &mut scratch);
        assert_eq!((show(d), n), ("2024-03-12T00:00:00+08:00".to_owned(), 0), "an extension at the deadline instant is after it");
        let timely = ClockChange::Extend { at: at("2024-03-11T23:59:59+08:00"), budget: days(5) };
        let (d, n) = c.judged_deadline(start, days(5), &[timely], &mut scratch);
        assert_eq!((show(d), n), ("2024-03-19T00:00:00+08:00".to_owned(), 1));
    }

    #[test]
    fn natural_days_end_on_the_next_working_day_after_a_day_off() {
        let cals = Calendars::builtin();
        let c = Counter { calendar: cals.default_calendar(), kind: DayKind::Natural };
        // 10 natural days from 2024-09-24 end at the end of 10-04, inside National Day: run to 10-08.
        assert_eq!(show(c.deadline(at("2024-09-24T10:00:00+08:00"), days(10), &[])), "2024-10-09T00:00:00+08:00");
        // Ending on an ordinary working day, nothing moves.
        assert_eq!(show(c.deadline(at("2024-03-04T10:00:00+08:00"), days(3), &[])), "2024-03-08T00:00:00+08:00");
    }

    /// The deadline as §3.3 defines it, each counted time looked up where it is used:
    /// what [`Counter::deadline`] computes with fewer lookups.
    fn deadline_by_definition(c: &Counter<'_>, start: i64, budget: i64, pauses: &[Pause]) -> i64 {
        let anchor = c.anchor(start);
        if budget <= 0 {
            return anchor;
        }
        let mut cur = anchor;
        let mut left = budget;
        for p in pauses {
            if p.to <= cur {
                continue;
            }
            if p.from > cur {
                let available = c.elapsed(p.from) - c.elapsed(cur);
                if available >= left {
                    return c.finish(c.instant_at(c.elapsed(cur) + left));
                }
                left -= available;
            }
            cur = cur.max(p.to);
        }
        c.finish(c.instant_at(c.elapsed(cur) + left))
    }

    /// Random starts (over the tables' whole span and past both ends), budgets and
    /// overlapping pauses, in working and natural days, with and without office hours:
    /// the same deadline as by the definition.
    #[test]
    fn the_deadline_is_the_definition_s() {
        use proptest::prelude::*;
        let cals = Calendars::builtin();
        let mut spec = cals.default_calendar().spec().clone();
        spec.name = "office".into();
        spec.office_hours = vec!["09:00-12:00".into(), "13:30-17:30".into()];
        let office = crate::calendar::Calendar::compile(spec).expect("calendar");
        let calendars = [cals.default_calendar(), &office];
        let case = (
            -200 * DAY_MS..160 * 365 * DAY_MS,
            -DAY_MS..90 * DAY_MS,
            proptest::collection::vec((0..120 * DAY_MS, 0..30 * DAY_MS), 0..5),
            any::<bool>(),
            0..2usize,
        );
        proptest!(ProptestConfig::with_cases(5_000), |((start, budget, pauses, natural, k) in case)| {
            let c = Counter { calendar: calendars[k], kind: if natural { DayKind::Natural } else { DayKind::Working } };
            let mut pauses: Vec<Pause> =
                pauses.into_iter().map(|(from, len)| Pause { from: start + from - 10 * DAY_MS, to: start + from - 10 * DAY_MS + len }).collect();
            pauses.sort_by_key(|p| p.from);
            prop_assert_eq!(c.deadline(start, budget, &pauses), deadline_by_definition(&c, start, budget, &pauses));
        });
    }

    #[test]
    fn consumed_matches_the_deadline() {
        let cals = Calendars::builtin();
        let c = Counter::working(cals.default_calendar());
        let start = at("2024-03-04T09:00:00+08:00");
        let p = [Pause { from: at("2024-03-05T14:00:00+08:00"), to: at("2024-03-08T10:00:00+08:00") }];
        let d = c.deadline(start, days(5), &p);
        assert_eq!(c.consumed(c.anchor(start), d, &p), days(5));
        assert!(c.consumed(c.anchor(start), d - 1, &p) < days(5));
    }
}
