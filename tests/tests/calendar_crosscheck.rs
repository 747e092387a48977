//! The shipped cn-mainland calendar agrees, day by day from 2004 to its last year, with
//! an independent day list exported from the `chinesecalendar` package's `is_workday`
//! (tests/data/cn-mainland-days.csv, written by scripts/gen_cn_mainland_calendar.py).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use chrono::NaiveDate;
use jiancha_core::Calendars;
use jiancha_scenarios::repo_root;

#[test]
fn every_day_matches_the_reference() {
    let calendars = Calendars::builtin();
    let cal = calendars.default_calendar();
    let text = std::fs::read_to_string(repo_root().join("tests/data/cn-mainland-days.csv")).expect("fixture");
    let mut checked = 0;
    let mut years = std::collections::BTreeSet::new();
    for line in text.lines().skip(1) {
        let mut cols = line.split(',');
        let (date, working, kind) = (cols.next().unwrap(), cols.next().unwrap(), cols.next().unwrap());
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let day = cal.day_index(date).unwrap();
        assert_eq!(cal.is_working_day(day), working == "1", "{date}: working day?");
        assert_eq!(cal.is_holiday(day), kind == "holiday", "{date}: holiday?");
        assert_eq!(cal.is_adjusted_working_day(day), kind == "workday", "{date}: adjusted working day?");
        use chrono::Datelike;
        years.insert(date.year());
        checked += 1;
    }
    assert!(checked >= 365 * 23, "{checked} days checked");
    assert_eq!(years.first(), Some(&2004));
    for y in &years {
        assert!(cal.covers_year(*y), "year {y} has a notice");
    }
    assert_eq!(cal.covered_years().collect::<Vec<_>>(), years.into_iter().collect::<Vec<_>>());
}
