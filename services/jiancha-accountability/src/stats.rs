//! Performance statistics (绩效评估, DOMAIN §7) per department or per service over a
//! period, with the score and ranking; written as CSV, JSON or an HTML page with charts
//! (the monthly and quarterly 绩效评估通报). Definitions: docs/statistics.md.

use crate::store::{Store, StoreError};
use crate::workflow::Disposition;
use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use jiancha_core::Catalog;
use serde::Serialize;
use sqlx::Row as _;
use std::collections::BTreeMap;

/// The score's weights (the `[accountability.weights]` configuration).
pub use jiancha_platform::config::ScoreWeights as Weights;

/// A period: `[from, to)` in milliseconds, and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// As asked: `2025-03`, `2025-Q1`, `2025`, `2025-03-01..2025-03-15`.
    pub label: String,
    /// First day.
    pub first: NaiveDate,
    /// Day after the last.
    pub end: NaiveDate,
    /// Start instant.
    pub from: i64,
    /// End instant (exclusive).
    pub to: i64,
}

/// The longest period a report covers: a leap year.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// Reads a period in the calendar's zone.
pub fn parse_period(text: &str, tz: Tz) -> Result<Period, String> {
    let bad =
        || format!("period `{text}`: use 2025-03 (month), 2025-Q1 (quarter), 2025 (year) or 2025-03-01..2025-03-15 (days, both included)");
    let date = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).ok_or_else(bad);
    // Years the calendars cover; also keeps `y + 1` from overflowing on hostile input.
    let year = |t: &str| t.parse::<i32>().ok().filter(|y| (1971..=2119).contains(y)).ok_or_else(bad);
    let (first, end) = if let Some((a, b)) = text.split_once("..") {
        let a = NaiveDate::parse_from_str(a.trim(), "%Y-%m-%d").map_err(|_| bad())?;
        let b = NaiveDate::parse_from_str(b.trim(), "%Y-%m-%d").map_err(|_| bad())?;
        (a, b.succ_opt().ok_or_else(bad)?)
    } else if let Some((y, q)) = text.split_once("-Q") {
        let y = year(y)?;
        let q: u32 = q.parse().ok().filter(|q| (1..=4).contains(q)).ok_or_else(bad)?;
        let first = date(y, 3 * q - 2, 1)?;
        (first, if q == 4 { date(y + 1, 1, 1)? } else { date(y, 3 * q + 1, 1)? })
    } else if let Some((y, m)) = text.split_once('-') {
        let y = year(y)?;
        let m: u32 = m.parse().ok().filter(|m| (1..=12).contains(m)).ok_or_else(bad)?;
        (date(y, m, 1)?, if m == 12 { date(y + 1, 1, 1)? } else { date(y, m + 1, 1)? })
    } else {
        let y = year(text)?;
        (date(y, 1, 1)?, date(y + 1, 1, 1)?)
    };
    if end <= first {
        return Err(bad());
    }
    if !(1971..=2119).contains(&first.year()) || !(1971..=2120).contains(&end.year()) {
        return Err(format!("period `{text}`: years 1971 to 2119 only"));
    }
    if (end - first).num_days() > MAX_PERIOD_DAYS {
        return Err(format!("period `{text}`: at most {MAX_PERIOD_DAYS} days (a year); ask for several periods"));
    }
    let instant =
        |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map_or(0, |t| t.timestamp_millis());
    Ok(Period { label: text.to_owned(), first, end, from: instant(first), to: instant(end) })
}

/// Group by department or by service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// 部门.
    Department,
    /// 事项.
    Service,
}

impl GroupBy {
    /// From `department` / `service`.
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        match s {
            "" | "department" => Ok(GroupBy::Department),
            "service" => Ok(GroupBy::Service),
            other => Err(format!("group_by `{other}`: department or service")),
        }
    }
}

/// One row of a report. A row with no item decided in the period has no rates and no
/// score (`None`: shown as "—", ranked last), not rates of 0 (DOMAIN §7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct Row {
    pub key: String,
    pub name: String,
    pub department_code: String,
    pub received: u64,
    pub accepted: u64,
    pub decided: u64,
    pub decided_on_time: u64,
    pub decided_early: u64,
    pub on_time_rate: Option<f64>,
    pub early_rate: Option<f64>,
    pub overdue_promised: u64,
    pub overdue_statutory: u64,
    /// Working days from acceptance to decision, working-day services only.
    pub mean_working_days: Option<f64>,
    pub p90_working_days: Option<f64>,
    /// Days used over the promised limit as lawfully extended, every service.
    pub promised_share_used: Option<f64>,
    pub warnings: u64,
    pub yellow: u64,
    pub red: u64,
    pub step_overdue: u64,
    /// YELLOW and RED alerts whose case was resolved NO_FAULT (核减): counted above, taken
    /// off nothing in the score. (STEP_OVERDUE is a WARNING: it opens no case.)
    pub waived_yellow: u64,
    pub waived_red: u64,
    /// Items received with at least one LATE_REPORT, over items received.
    pub late_report_share: Option<f64>,
    pub dispositions: BTreeMap<String, u64>,
    pub repeat_offender_marks: u64,
    pub score: Option<f64>,
    /// Equal scores share a rank (1, 2, 2, 4); rows with no score come last, sharing one.
    pub rank: u32,
    /// The rank in the previous period's report, when it had one (published reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rank: Option<u32>,
    #[serde(skip)]
    used: Vec<f64>,
    #[serde(skip)]
    shares: Vec<f64>,
    #[serde(skip)]
    late_items: u64,
}

/// A report.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// The period as asked.
    pub period: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// The weights the scores were computed with.
    pub weights: Weights,
    /// One row per department or service, by rank.
    pub rows: Vec<Row>,
}

fn in_period(t: Option<i64>, p: &Period) -> bool {
    t.is_some_and(|t| t >= p.from && t < p.to)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Whether an alert kind fires at a deadline: its instant is the end of the deadline's
/// last day (24:00, written 00:00 of the next day), counted in the period that day is in.
fn at_deadline(kind: &str) -> bool {
    kind.ends_with("_OVERDUE")
}

/// The score of a row (DOMAIN §7): `base` less the weighted alerts and repeat-offender
/// marks per 100 items decided, within 0..=base; None with nothing decided.
pub fn score(x: &Row, weights: &Weights) -> Option<f64> {
    if x.decided == 0 {
        return None;
    }
    let scored = |all: u64, waived: u64| all.saturating_sub(waived) as f64;
    let penalty = weights.step_overdue * x.step_overdue as f64
        + weights.yellow * scored(x.yellow, x.waived_yellow)
        + weights.red * scored(x.red, x.waived_red)
        + weights.repeat_offender * x.repeat_offender_marks as f64;
    Some((weights.base - penalty * 100.0 / x.decided as f64).clamp(0.0, weights.base.max(0.0)))
}

/// Ranks rows in place: by score (two decimals, as printed), equal scores sharing a rank
/// and listed by key; rows with no score after all others, sharing the next rank.
pub fn rank(rows: &mut [Row]) {
    let printed = |x: &Row| x.score.map(|s| (s * 100.0).round() as i64);
    rows.sort_by(|a, b| printed(b).cmp(&printed(a)).then(a.key.cmp(&b.key)));
    for i in 0..rows.len() {
        rows[i].rank = if i > 0 && printed(&rows[i]) == printed(&rows[i - 1]) { rows[i - 1].rank } else { i as u32 + 1 };
    }
}

/// Computes the report of `period` grouped by `group_by`.
pub async fn report(store: &Store, catalog: &Catalog, period: &Period, group_by: GroupBy, weights: &Weights) -> Result<Report, StoreError> {
    let pool = store.pool();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let key_of = |department: &str, service: Option<&str>| -> String {
        match group_by {
            GroupBy::Department => department.to_owned(),
            GroupBy::Service => service.unwrap_or("(unknown)").to_owned(),
        }
    };
    fn row<'a>(rows: &'a mut BTreeMap<String, Row>, key: String, department: &str) -> &'a mut Row {
        rows.entry(key.clone()).or_insert_with(|| Row { key, department_code: department.to_owned(), ..Row::default() })
    }
    if group_by == GroupBy::Department {
        // Every department of the catalog has a row, even with nothing in the period.
        for (code, _) in catalog.departments() {
            row(&mut rows, code.to_string(), code);
        }
    }

    let items = sqlx::query(
        "SELECT department_code, service_code, submitted_at, accepted_at, decided_at, promised_days, used_days, promised_met, \
         late_reports, natural_days FROM items WHERE (submitted_at >= $1 AND submitted_at < $2) OR (accepted_at >= $1 AND accepted_at < $2) \
         OR (decided_at >= $1 AND decided_at < $2)",
    )
    .bind(period.from)
    .bind(period.to)
    .fetch_all(pool)
    .await?;
    for r in &items {
        let department: String = r.try_get("department_code")?;
        let service: Option<String> = r.try_get("service_code")?;
        let x = row(&mut rows, key_of(&department, service.as_deref()), &department);
        let submitted: Option<i64> = r.try_get("submitted_at")?;
        if in_period(submitted, period) {
            x.received += 1;
            if r.try_get::<i64, _>("late_reports")? > 0 {
                x.late_items += 1;
            }
        }
        if in_period(r.try_get("accepted_at")?, period) {
            x.accepted += 1;
        }
        if in_period(r.try_get("decided_at")?, period) {
            x.decided += 1;
            let promised: Option<f64> = r.try_get("promised_days")?;
            let used: Option<f64> = r.try_get("used_days")?;
            let natural = r.try_get::<i64, _>("natural_days")? != 0;
            let met = r.try_get::<Option<i64>, _>("promised_met")? == Some(1);
            if met {
                x.decided_on_time += 1;
            }
            if let Some(u) = used {
                if !natural {
                    x.used.push(u);
                }
                if let Some(p) = promised.filter(|p| *p > 0.0) {
                    x.shares.push(u / p);
                    if met && p - u >= 1.0 {
                        x.decided_early += 1;
                    }
                }
            }
        }
    }

    // Alerts at a deadline count in the period of the deadline's day: (from, to]; others [from, to).
    // An alert whose case was resolved NO_FAULT is waived (核减).
    let alerts = sqlx::query(
        "SELECT a.department_code, a.service_code, a.kind, a.level, a.triggered_at, \
         CASE WHEN c.status = 'RESOLVED' AND c.disposition = 'NO_FAULT' THEN 1 ELSE 0 END AS waived \
         FROM alerts a LEFT JOIN cases c ON c.alert_id = a.alert_id WHERE a.status = 'FIRED' \
         AND a.triggered_at >= $1 AND a.triggered_at <= $2 AND a.department_code IS NOT NULL",
    )
    .bind(period.from)
    .bind(period.to)
    .fetch_all(pool)
    .await?;
    for r in &alerts {
        let kind: String = r.try_get("kind")?;
        let at: i64 = r.try_get("triggered_at")?;
        let inside = if at_deadline(&kind) { at > period.from && at <= period.to } else { at < period.to };
        if !inside {
            continue;
        }
        let department: String = r.try_get("department_code")?;
        let service: Option<String> = r.try_get("service_code")?;
        let level: String = r.try_get("level")?;
        let waived = r.try_get::<i64, _>("waived")? != 0;
        let x = row(&mut rows, key_of(&department, service.as_deref()), &department);
        match level.as_str() {
            "WARNING" => x.warnings += 1,
            "YELLOW" => {
                x.yellow += 1;
                x.waived_yellow += u64::from(waived);
            }
            "RED" => {
                x.red += 1;
                x.waived_red += u64::from(waived);
            }
            _ => {}
        }
        match kind.as_str() {
            "PROMISED_OVERDUE" => x.overdue_promised += 1,
            "STATUTORY_OVERDUE" => x.overdue_statutory += 1,
            "STEP_OVERDUE" => x.step_overdue += 1,
            _ => {}
        }
    }

    let cases = sqlx::query(
        "SELECT department_code, service_code, disposition, repeat_department, repeat_actor FROM cases \
         WHERE status = 'RESOLVED' AND resolved_at >= $1 AND resolved_at < $2",
    )
    .bind(period.from)
    .bind(period.to)
    .fetch_all(pool)
    .await?;
    for r in &cases {
        let department: String = r.try_get("department_code")?;
        let service: Option<String> = r.try_get("service_code")?;
        let x = row(&mut rows, key_of(&department, service.as_deref()), &department);
        if let Some(d) = r.try_get::<Option<String>, _>("disposition")? {
            *x.dispositions.entry(d).or_default() += 1;
        }
        x.repeat_offender_marks += (r.try_get::<i64, _>("repeat_department")? + r.try_get::<i64, _>("repeat_actor")?) as u64;
    }

    let mut out: Vec<Row> = rows.into_values().collect();
    for x in &mut out {
        x.name = match group_by {
            GroupBy::Department => catalog.department_name(&x.key).unwrap_or(&x.key).to_owned(),
            GroupBy::Service => catalog.get(&x.key).map_or_else(|| x.key.clone(), |s| s.name.to_string()),
        };
        for d in Disposition::ALL {
            x.dispositions.entry(d.as_str().to_owned()).or_default();
        }
        let rated = x.decided > 0;
        x.on_time_rate = ratio(x.decided_on_time, x.decided);
        x.early_rate = ratio(x.decided_early, x.decided);
        x.used.sort_by(f64::total_cmp);
        x.mean_working_days = mean(&x.used).filter(|_| rated);
        x.p90_working_days = (rated && !x.used.is_empty()).then(|| percentile(&x.used, 0.9));
        x.promised_share_used = mean(&x.shares).filter(|_| rated);
        x.late_report_share = ratio(x.late_items, x.received);
        x.score = score(x, weights);
    }
    rank(&mut out);
    let last = period.end.pred_opt().unwrap_or(period.end);
    Ok(Report {
        period: period.label.clone(),
        from: period.first.to_string(),
        to: last.to_string(),
        group_by,
        weights: weights.clone(),
        rows: out,
    })
}

const CSV_HEADER: &str = "rank,key,name,department_code,received,accepted,decided,decided_on_time,on_time_rate,decided_early,early_rate,\
overdue_promised,overdue_statutory,mean_working_days,p90_working_days,promised_share_used,warnings,yellow,red,step_overdue,\
late_report_share,no_fault,rectify,efficiency_warning,criticism,admonition,referred,repeat_offender_marks,score";

/// A CSV field, quoted when it holds a separator, a quote or a line break (CR or LF).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// The byte-order mark that makes Excel and WPS on Chinese Windows read UTF-8.
pub const BOM: &str = "\u{feff}";

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.decimals$}"))
}

/// A rate as a percentage, "—" when there is none.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// A number with `decimals`, "—" when there is none.
pub fn number(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.decimals$}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a published report adds to the page: its number, issuing body, date, the audit
/// head, and the cases marked for publication (通报).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Publication {
    /// 监察绩效通报〔2026〕3号.
    pub number: String,
    /// The issuing body.
    pub issued_by: String,
    /// The issue date (the calendar's zone).
    pub issued_on: String,
    /// The audit log's head hash when issued.
    pub audit_head: String,
    /// The previous period compared against.
    pub previous_period: String,
    /// Cases marked 通报 (unanswered past the chain's last step): case id, department
    /// name, item, what happened.
    pub cases: Vec<PublicizedCase>,
}

/// A case in a published report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct PublicizedCase {
    pub case_id: i64,
    pub department: String,
    pub item_id: Option<String>,
    pub summary: String,
}

impl Report {
    /// CSV (UTF-8 with a byte-order mark), one row per department or service, by rank;
    /// rates and scores of rows with nothing decided are empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(BOM);
        out += CSV_HEADER;
        out.push('\n');
        for x in &self.rows {
            let d = |k: &str| x.dispositions.get(k).copied().unwrap_or(0);
            out += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                x.rank,
                csv_field(&x.key),
                csv_field(&x.name),
                csv_field(&x.department_code),
                x.received,
                x.accepted,
                x.decided,
                x.decided_on_time,
                opt(x.on_time_rate, 4),
                x.decided_early,
                opt(x.early_rate, 4),
                x.overdue_promised,
                x.overdue_statutory,
                opt(x.mean_working_days, 2),
                opt(x.p90_working_days, 2),
                opt(x.promised_share_used, 4),
                x.warnings,
                x.yellow,
                x.red,
                x.step_overdue,
                opt(x.late_report_share, 4),
                d("NO_FAULT"),
                d("RECTIFY"),
                d("EFFICIENCY_WARNING"),
                d("CRITICISM"),
                d("ADMONITION"),
                d("REFERRED"),
                x.repeat_offender_marks,
                opt(x.score, 2)
            );
        }
        out
    }

    /// The page of the 绩效评估通报: a ranking table and bar charts (inline SVG, no
    /// scripts), printable on A4 landscape.
    pub fn to_html(&self) -> String {
        self.page(None)
    }

    /// The page of a published report: `to_html` with the number, the issuing body, the
    /// change of rank and the cases marked 通报.
    pub fn to_published_html(&self, p: &Publication) -> String {
        self.page(Some(p))
    }

    fn page(&self, publication: Option<&Publication>) -> String {
        let by = if self.group_by == GroupBy::Department { "部门" } else { "事项" };
        let w = &self.weights;
        let bars = |title: &str, value: &dyn Fn(&Row) -> Option<f64>, max: f64, fmt: &dyn Fn(f64) -> String| {
            let h = 22 * self.rows.len() + 30;
            let mut svg = format!("<h2>{title}</h2><svg width=\"760\" height=\"{h}\" role=\"img\" aria-label=\"{title}\">");
            for (i, x) in self.rows.iter().enumerate() {
                let y = 20 + 22 * i;
                // Long names end in an ellipsis before the bars; the whole name is the tooltip.
                let short: String =
                    if x.name.chars().count() > 12 { x.name.chars().take(11).chain(['…']).collect() } else { x.name.clone() };
                svg += &format!("<text x=\"0\" y=\"{}\" font-size=\"12\"><title>{}</title>{}</text>", y + 12, esc(&x.name), esc(&short));
                match value(x) {
                    Some(v) => {
                        let width = if max > 0.0 { (v / max * 480.0).clamp(0.0, 480.0) } else { 0.0 };
                        svg += &format!(
                            "<rect x=\"200\" y=\"{y}\" width=\"{width:.1}\" height=\"16\" fill=\"#b22\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
                            206.0 + width,
                            y + 12,
                            fmt(v)
                        );
                    }
                    None => svg += &format!("<text x=\"206\" y=\"{}\" font-size=\"12\">—（本期无办结）</text>", y + 12),
                }
            }
            svg + "</svg>"
        };
        let mut page = format!(
            "<!doctype html><html lang=\"zh\"><meta charset=\"utf-8\"><title>绩效评估通报 {p}</title>\
             <style>@page{{size:A4 landscape;margin:12mm}}body{{font-family:\"Noto Sans CJK SC\",sans-serif;margin:2em}}\
             table{{border-collapse:collapse;font-size:11px}}td,th{{border:1px solid #999;padding:2px 5px;text-align:right}}\
             td.name{{text-align:left;max-width:16em}}h2{{break-after:avoid}}svg,table{{break-inside:avoid}}\
             @media print{{body{{margin:0}}}}</style>",
            p = esc(&self.period),
        );
        if let Some(p) = publication {
            page +=
                &format!("<p class=\"number\">{}</p><p class=\"issuer\">{}　{}</p>", esc(&p.number), esc(&p.issued_by), esc(&p.issued_on));
        }
        page += &format!(
            "<h1>行政审批绩效评估通报（{p}，{from} 至 {to}，按{by}）</h1>\
             <table><tr><th>排名</th>{change}<th>{by}</th><th>收件</th><th>受理</th><th>办结</th><th>按时办结率</th><th>提前办结率</th><th>超承诺时限</th><th>超法定时限</th>\
             <th>平均用时(工作日)</th><th>P90用时</th><th>承诺时限使用率</th><th>预警</th><th>黄牌</th><th>红牌</th><th>核减</th><th>迟报率</th><th>屡犯标记</th><th>得分</th></tr>",
            p = esc(&self.period),
            from = self.from,
            to = self.to,
            change = if publication.is_some() { "<th>名次变化</th>" } else { "" },
        );
        for x in &self.rows {
            let change = match (publication, x.previous_rank) {
                (None, _) => String::new(),
                (Some(_), None) => "<td>—</td>".to_owned(),
                (Some(_), Some(before)) => {
                    let d = i64::from(before) - i64::from(x.rank);
                    format!(
                        "<td>{}</td>",
                        if d > 0 {
                            format!("↑{d}")
                        } else if d < 0 {
                            format!("↓{}", -d)
                        } else {
                            "—".into()
                        }
                    )
                }
            };
            page += &format!(
                "<tr><td>{}</td>{change}<td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                x.rank,
                esc(&x.name),
                x.received,
                x.accepted,
                x.decided,
                percent(x.on_time_rate),
                percent(x.early_rate),
                x.overdue_promised,
                x.overdue_statutory,
                number(x.mean_working_days, 2),
                number(x.p90_working_days, 2),
                percent(x.promised_share_used),
                x.warnings,
                x.yellow,
                x.red,
                x.waived_yellow + x.waived_red,
                percent(x.late_report_share),
                x.repeat_offender_marks,
                number(x.score, 2)
            );
        }
        page += "</table>";
        page += &bars("得分", &|x| x.score, w.base, &|v| format!("{v:.1}"));
        page += &bars("按时办结率", &|x| x.on_time_rate, 1.0, &|v| format!("{:.1}%", v * 100.0));
        let max_alerts = self.rows.iter().map(|x| (x.yellow + x.red) as f64).fold(0.0, f64::max);
        page += &bars("黄牌与红牌", &|x| Some((x.yellow + x.red) as f64), max_alerts, &|v| format!("{v:.0}"));
        if let Some(p) = publication {
            page += "<h2>通报案件（督办期满仍未说明）</h2>";
            if p.cases.is_empty() {
                page += "<p>本期无。</p>";
            } else {
                page += "<table><tr><th>案件</th><th>部门</th><th>办件</th><th>事由</th></tr>";
                for c in &p.cases {
                    page += &format!(
                        "<tr><td>{}</td><td class=\"name\">{}</td><td class=\"name\">{}</td><td class=\"name\">{}</td></tr>",
                        c.case_id,
                        esc(&c.department),
                        esc(c.item_id.as_deref().unwrap_or("—")),
                        esc(&c.summary)
                    );
                }
                page += "</table>";
            }
        }
        page += &format!(
            "<p>评分：基础分{}，每百件办结扣：环节超时{}分、黄牌{}分、红牌{}分、屡犯标记{}分；不予追究（含告警撤回）不扣分（核减）。本期无办结的{by}不评分（“—”），排在最后。</p>",
            w.base, w.step_overdue, w.yellow, w.red, w.repeat_offender
        );
        if let Some(p) = publication {
            page += &format!(
                "<p class=\"audit\">审计日志头哈希（发布时）：<code>{}</code>；名次变化对比 {}。</p>",
                esc(&p.audit_head),
                esc(&p.previous_period)
            );
        }
        page + "</html>\n"
    }
}

/// The month or quarter a date is in, as a period label (for defaults).
pub fn month_label(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_in_the_calendar_zone() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let m = parse_period("2025-03", tz).unwrap();
        assert_eq!((m.first.to_string(), m.end.to_string()), ("2025-03-01".into(), "2025-04-01".into()));
        assert_eq!(m.from, jiancha_core::Timestamp::parse_rfc3339("2025-03-01T00:00:00+08:00").unwrap().0);
        let q = parse_period("2025-Q4", tz).unwrap();
        assert_eq!((q.first.to_string(), q.end.to_string()), ("2025-10-01".into(), "2026-01-01".into()));
        let r = parse_period("2025-03-01..2025-03-15", tz).unwrap();
        assert_eq!(r.end.to_string(), "2025-03-16");
        assert!(parse_period("2025-13", tz).is_err());
        assert!(parse_period("March", tz).unwrap_err().contains("2025-Q1"));
        // Hostile periods: refused with a reason, never an overflow or a scan of ages.
        assert!(parse_period("2147483647", tz).is_err());
        assert!(parse_period("2147483647-12", tz).is_err());
        assert!(parse_period("2147483647-Q4", tz).is_err());
        assert!(parse_period("1971-01-01..2119-12-31", tz).unwrap_err().contains("366 days"));
        assert!(parse_period("2024", tz).is_ok(), "a leap year is one period");
    }

    #[test]
    fn nearest_rank_percentile() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&[4.0], 0.9), 4.0);
        assert_eq!(percentile(&[], 0.9), 0.0);
    }
}
