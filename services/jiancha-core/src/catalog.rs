//! The service catalog (DOMAIN §4): limits per service, read from TOML and validated.
//!
//! Every problem found is reported at once, each naming the service and the key, so an
//! operator fixes a file in one pass.

use crate::calendar::{Calendars, DEFAULT_CALENDAR};
use crate::event::LawfulSuspension;
use crate::time::{HOUR_MS, parse_duration_ms};
use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// How a service's limits are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayKind {
    /// 工作日: only working days count.
    Working,
    /// 自然日: every day counts (a period ending on a holiday runs to the next working day).
    Natural,
}

/// One workflow step (环节) and its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The name events use in `step`.
    pub name: Arc<str>,
    /// Its limit in days (of the service's day kind).
    pub days: u32,
}

/// A catalogued service with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// 事项编码.
    pub code: Arc<str>,
    /// 事项名称.
    pub name: Arc<str>,
    /// The implementing department's code.
    pub department: Arc<str>,
    /// 法定时限, days.
    pub statutory_days: u32,
    /// 承诺时限, days.
    pub promised_days: u32,
    /// How the decision clocks count.
    pub day_kind: DayKind,
    /// The calendar's name.
    pub calendar: Arc<str>,
    /// Working days to accept, refuse or ask for correction.
    pub acceptance_days: u32,
    /// Working days from an approval to delivery; 0 = no certificate.
    pub delivery_days: u32,
    /// 统一/联合/集中办理.
    pub joint: bool,
    /// Largest lawful extension, days.
    pub extension_max_days: u32,
    /// Highest lawful total fee, fen.
    pub fee_cap_fen: u64,
    /// Lawful suspension kinds as a bit set of [`LawfulSuspension::bit`].
    pub allowed_suspensions: u16,
    /// Whether the decider must differ from the review step's actors.
    pub separation_of_duties: bool,
    /// Index into `steps` of the review step, when there are steps.
    pub review_step: Option<usize>,
    /// Ordered steps.
    pub steps: Vec<Step>,
    /// Warning margin in thousandths of a day.
    pub warn_millidays: u32,
    /// Abolished from this date (已取消).
    pub cancelled_on: Option<NaiveDate>,
}

impl Service {
    /// Whether the suspension kind is lawful for this service.
    pub fn allows(&self, kind: LawfulSuspension) -> bool {
        self.allowed_suspensions & kind.bit() != 0
    }
}

/// A validated catalog.
#[derive(Clone, Debug)]
pub struct Catalog {
    services: Vec<Arc<Service>>,
    by_code: FxHashMap<Arc<str>, usize>,
    /// `[[department]]` tables: code and name (市场监督管理局), in file order.
    departments: Vec<(Arc<str>, Arc<str>)>,
    /// LATE_REPORT fires when an event arrives more than this after it occurred.
    pub late_report_limit_ms: i64,
}

/// One problem in a catalog file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogProblem {
    /// Where: `[defaults]`, `service "A001" (#3)`, or the TOML position.
    pub location: String,
    /// The key at fault.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.location, self.key, self.message)
    }
}

/// A catalog refused, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CatalogError {
    /// The problems, in file order.
    pub problems: Vec<CatalogProblem>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the catalog has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    department: Vec<DepartmentFile>,
    #[serde(default)]
    service: Vec<ServiceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentFile {
    code: String,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    statutory_days: Option<u32>,
    day_kind: Option<DayKind>,
    calendar: Option<String>,
    acceptance_days: Option<u32>,
    delivery_days: Option<u32>,
    extension_max_days: Option<u32>,
    fee_cap_fen: Option<u64>,
    allowed_suspensions: Option<Vec<String>>,
    separation_of_duties: Option<bool>,
    warn_days: Option<f64>,
    late_report_limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    code: String,
    name: String,
    department: String,
    statutory_days: Option<u32>,
    promised_days: Option<u32>,
    day_kind: Option<DayKind>,
    calendar: Option<String>,
    acceptance_days: Option<u32>,
    delivery_days: Option<u32>,
    joint: Option<bool>,
    extension_max_days: Option<u32>,
    fee_cap_fen: Option<u64>,
    allowed_suspensions: Option<Vec<String>>,
    separation_of_duties: Option<bool>,
    review_step: Option<String>,
    warn_days: Option<f64>,
    cancelled_on: Option<toml::value::Datetime>,
    #[serde(default)]
    step: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: String,
    days: u32,
}

impl Catalog {
    /// Reads and validates a catalog, checking calendar names against `calendars`.
    pub fn from_toml(text: &str, calendars: &Calendars) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError {
            problems: vec![CatalogProblem {
                location: toml_location(text, e.span()),
                key: e.message().split('`').nth(1).unwrap_or("-").to_owned(),
                message: e.message().trim().to_owned(),
            }],
        })?;
        let mut problems = Vec::new();
        let d = &file.defaults;
        let mut problem = |location: &str, key: &str, message: String| {
            problems.push(CatalogProblem { location: location.to_owned(), key: key.to_owned(), message })
        };

        let late_report_limit_ms = match &d.late_report_limit {
            None => HOUR_MS,
            Some(text) => parse_duration_ms(text).unwrap_or_else(|| {
                problem("[defaults]", "late_report_limit", format!("`{text}` is not a duration such as \"1h\" or \"30m\""));
                HOUR_MS
            }),
        };
        let default_suspensions = match &d.allowed_suspensions {
            None => all_suspensions(),
            Some(list) => suspension_set(list, "[defaults]", &mut problem),
        };
        if let Some(w) = d.warn_days.filter(|w| !(w.is_finite() && *w >= 0.0)) {
            problem("[defaults]", "warn_days", format!("{w} must be a number of days >= 0"));
        }
        let default_calendar = d.calendar.clone().unwrap_or_else(|| DEFAULT_CALENDAR.to_owned());
        if calendars.get(&default_calendar).is_none() {
            problem("[defaults]", "calendar", unknown_calendar(&default_calendar, calendars));
        }

        let mut services = Vec::with_capacity(file.service.len());
        let mut by_code = FxHashMap::default();
        for (n, s) in file.service.iter().enumerate() {
            let at = format!("service \"{}\" (#{})", s.code, n + 1);
            if s.code.trim().is_empty() {
                problem(&at, "code", "must not be blank".into());
            }
            if by_code.contains_key(s.code.as_str()) {
                problem(&at, "code", format!("\"{}\" is already used by an earlier service", s.code));
            }
            let joint = s.joint.unwrap_or(false);
            let statutory_days = s.statutory_days.or(if joint { None } else { d.statutory_days }).unwrap_or(if joint { 45 } else { 20 });
            let promised_days = s.promised_days.unwrap_or(statutory_days);
            if promised_days > statutory_days {
                problem(
                    &at,
                    "promised_days",
                    format!("{promised_days} is more than statutory_days {statutory_days}: a promise must not exceed the law"),
                );
            }
            let extension_max_days =
                s.extension_max_days.or(if joint { None } else { d.extension_max_days }).unwrap_or(if joint { 15 } else { 10 });
            let calendar = s.calendar.clone().unwrap_or_else(|| default_calendar.clone());
            if s.calendar.is_some() && calendars.get(&calendar).is_none() {
                problem(&at, "calendar", unknown_calendar(&calendar, calendars));
            }
            let step_sum: u64 = s.step.iter().map(|st| u64::from(st.days)).sum();
            if step_sum > u64::from(promised_days) {
                problem(&at, "step", format!("the steps' days add up to {step_sum}, more than promised_days {promised_days}"));
            }
            let mut names: Vec<&str> = Vec::new();
            for st in &s.step {
                if st.name.trim().is_empty() {
                    problem(&at, "step.name", "must not be blank".into());
                } else if names.contains(&st.name.as_str()) {
                    problem(&at, "step.name", format!("\"{}\" appears twice", st.name));
                }
                names.push(&st.name);
            }
            let review_step = match &s.review_step {
                None => (!s.step.is_empty()).then_some(0),
                Some(name) => {
                    let found = s.step.iter().position(|st| &st.name == name);
                    if found.is_none() {
                        problem(&at, "review_step", format!("\"{name}\" is not one of the service's steps ({})", names.join(", ")));
                    }
                    found
                }
            };
            let warn_days = s.warn_days.or(d.warn_days).unwrap_or_else(|| (f64::from(promised_days) / 2.0).min(1.0));
            if !(warn_days.is_finite() && warn_days >= 0.0) {
                problem(&at, "warn_days", format!("{warn_days} must be a number of days >= 0"));
            } else if warn_days > f64::from(promised_days) {
                problem(&at, "warn_days", format!("{warn_days} is more than promised_days {promised_days}"));
            }
            let cancelled_on = s.cancelled_on.as_ref().and_then(|dt| {
                let date = dt.date.and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)));
                if date.is_none() || dt.time.is_some() {
                    problem(&at, "cancelled_on", format!("`{dt}` must be a date such as 2024-07-01"));
                }
                date
            });
            let allowed_suspensions = match &s.allowed_suspensions {
                None => default_suspensions,
                Some(list) => suspension_set(list, &at, &mut problem),
            };
            let service = Service {
                code: Arc::from(s.code.as_str()),
                name: Arc::from(s.name.as_str()),
                department: Arc::from(s.department.as_str()),
                statutory_days,
                promised_days,
                day_kind: s.day_kind.or(d.day_kind).unwrap_or(DayKind::Working),
                calendar: Arc::from(calendar.as_str()),
                acceptance_days: s.acceptance_days.or(d.acceptance_days).unwrap_or(5),
                delivery_days: s.delivery_days.or(d.delivery_days).unwrap_or(10),
                joint,
                extension_max_days,
                fee_cap_fen: s.fee_cap_fen.or(d.fee_cap_fen).unwrap_or(0),
                allowed_suspensions,
                separation_of_duties: s.separation_of_duties.or(d.separation_of_duties).unwrap_or(true),
                review_step,
                steps: s.step.iter().map(|st| Step { name: Arc::from(st.name.as_str()), days: st.days }).collect(),
                warn_millidays: (warn_days.clamp(0.0, 1e6) * 1000.0).round() as u32,
                cancelled_on,
            };
            by_code.insert(service.code.clone(), services.len());
            services.push(Arc::new(service));
        }
        let mut departments: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for (i, d) in file.department.iter().enumerate() {
            let at = format!("department[{i}]");
            if d.code.trim().is_empty() || d.name.trim().is_empty() {
                problem(&at, "code", "a department needs a code and a name".to_owned());
            } else if departments.iter().any(|(c, _)| **c == *d.code) {
                problem(&at, "code", format!("department \"{}\" is listed twice", d.code));
            } else {
                departments.push((Arc::from(d.code.as_str()), Arc::from(d.name.as_str())));
            }
        }
        if problems.is_empty() {
            Ok(Catalog { services, by_code, departments, late_report_limit_ms })
        } else {
            Err(CatalogError { problems })
        }
    }

    /// A catalog with no services (every SUBMITTED then raises SERVICE_NOT_IN_CATALOG).
    pub fn empty() -> Catalog {
        Catalog { services: Vec::new(), by_code: FxHashMap::default(), departments: Vec::new(), late_report_limit_ms: HOUR_MS }
    }

    /// The service of that code.
    pub fn get(&self, code: &str) -> Option<&Arc<Service>> {
        self.by_code.get(code).map(|&i| &self.services[i])
    }

    /// Every service, in file order.
    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    /// The name of a department from the `[[department]]` tables, if listed.
    pub fn department_name(&self, code: &str) -> Option<&str> {
        self.departments.iter().find(|(c, _)| &**c == code).map(|(_, n)| &**n)
    }

    /// The `[[department]]` tables: code and name, in file order.
    pub fn departments(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.departments
    }
}

fn all_suspensions() -> u16 {
    LawfulSuspension::ALL.iter().fold(0, |acc, k| acc | k.bit())
}

fn suspension_set(list: &[String], at: &str, problem: &mut impl FnMut(&str, &str, String)) -> u16 {
    let mut set = 0;
    for name in list {
        match LawfulSuspension::parse(name) {
            Some(k) => set |= k.bit(),
            None => problem(
                at,
                "allowed_suspensions",
                format!(
                    "\"{name}\" is not a lawful suspension kind (ALL art. 45): {}",
                    LawfulSuspension::ALL.map(|k| k.as_str()).join(", ")
                ),
            ),
        }
    }
    set
}

fn unknown_calendar(name: &str, calendars: &Calendars) -> String {
    let known: Vec<&str> = calendars.iter().map(|c| c.name()).collect();
    format!("calendar \"{name}\" is not loaded (known: {})", known.join(", "))
}

fn toml_location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}")
        }
        None => "catalog".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_toml(text, &Calendars::builtin())
    }

    #[test]
    fn defaults_and_joint_rules() {
        let c = load(
            r#"
            [[service]]
            code = "A"
            name = "a"
            department = "D"
            [[service]]
            code = "J"
            name = "j"
            department = "D"
            joint = true
            promised_days = 30
            [[service.step]]
            name = "承办"
            days = 10
            [[service.step]]
            name = "审核"
            days = 10
            "#,
        )
        .unwrap();
        let a = c.get("A").unwrap();
        assert_eq!((a.statutory_days, a.promised_days, a.extension_max_days, a.acceptance_days, a.delivery_days), (20, 20, 10, 5, 10));
        assert_eq!(a.warn_millidays, 1000);
        assert_eq!(a.fee_cap_fen, 0);
        assert!(a.allows(LawfulSuspension::Hearing) && a.allows(LawfulSuspension::ExpertReview));
        let j = c.get("J").unwrap();
        assert_eq!((j.statutory_days, j.extension_max_days, j.review_step), (45, 15, Some(0)));
        assert_eq!(c.late_report_limit_ms, HOUR_MS);
    }

    #[test]
    fn instant_service_has_no_warning_margin() {
        let c = load("[[service]]\ncode = \"I\"\nname = \"i\"\ndepartment = \"D\"\npromised_days = 0\n").unwrap();
        assert_eq!(c.get("I").unwrap().warn_millidays, 0);
        let c = load("[[service]]\ncode = \"H\"\nname = \"h\"\ndepartment = \"D\"\npromised_days = 1\n").unwrap();
        assert_eq!(c.get("H").unwrap().warn_millidays, 500, "half of a one-day promise");
    }

    #[test]
    fn every_problem_is_named() {
        let err = load(
            r#"
            [defaults]
            late_report_limit = "soon"
            [[service]]
            code = "A"
            name = "a"
            department = "D"
            statutory_days = 10
            promised_days = 12
            calendar = "mars"
            allowed_suspensions = ["HEARING", "LUNCH"]
            review_step = "批准"
            [[service.step]]
            name = "承办"
            days = 13
            [[service]]
            code = "A"
            name = "again"
            department = "D"
            "#,
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in ["late_report_limit", "promised_days", "mars", "LUNCH", "review_step", "add up to 13", "already used"] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
        assert!(text.contains("service \"A\" (#1)"), "{text}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_position() {
        let err = load("[[service]]\ncode = \"A\"\nname = \"a\"\ndepartment = \"D\"\npromise_days = 3\n").unwrap_err();
        let p = &err.problems[0];
        assert!(p.message.contains("promise_days"), "{p}");
        assert!(p.location.starts_with("line 5"), "{p}");
    }
}
