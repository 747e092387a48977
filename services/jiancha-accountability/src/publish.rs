//! Published reports (通报, DOMAIN §7): a numbered, immutable snapshot of a month's or a
//! quarter's statistics, with the issuing body, the date, the weights in force, the
//! departments' names, the change of rank against the previous period, the cases marked
//! 通报 by the escalation chain, and the audit log's head hash. Every format (HTML, CSV,
//! JSON, XLSX) is rendered once, when published, and stored: showing a report later
//! gives the same bytes whatever changed since. Publishing a period already published
//! changes nothing and names the existing report.

use crate::stats::{self, GroupBy, Publication, PublicizedCase, Report, Weights};
use crate::store::{CaseFilter, Store, StoreError};
use crate::workflow::{self, WorkflowError};
use chrono::{Datelike, NaiveDate};
use jiancha_core::{Catalog, Timestamp};
use jiancha_platform::config::ReportsConfig;
use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

/// Why a report cannot be published or shown.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The period or the format.
    #[error("{0}")]
    Request(String),
    /// The audit log does not verify: nothing is published over a broken chain.
    #[error("the audit log does not verify ({0}); run `jiancha audit verify` — nothing published")]
    Audit(String),
    /// XLSX.
    #[error("xlsx: {0}")]
    Xlsx(#[from] XlsxError),
}

impl From<sqlx::Error> for PublishError {
    fn from(e: sqlx::Error) -> Self {
        PublishError::Store(StoreError::Db(e))
    }
}

/// A published report's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Published {
    /// 监察绩效通报〔2026〕3号.
    pub number: String,
    /// The period: `2026-11` or `2026-Q4`.
    pub period: String,
    /// When it was published, milliseconds.
    pub issued_at: i64,
    /// The issuing body.
    pub issued_by: String,
    /// The audit log's head hash when published.
    pub audit_head: String,
    /// SHA-256 of the JSON snapshot.
    pub sha256: String,
}

/// What a published report is, in its JSON form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// Number, issuer, date, audit head, cases marked 通报.
    pub publication: Publication,
    /// The figures.
    pub report: Report,
}

/// The formats a report is published in.
pub const FORMATS: [&str; 4] = ["html", "csv", "json", "xlsx"];

/// The period before a month or a quarter.
pub fn previous_period(label: &str) -> Result<String, PublishError> {
    let bad = || PublishError::Request(format!("period `{label}`: a report is published for a month (2026-11) or a quarter (2026-Q4)"));
    if let Some((y, q)) = label.split_once("-Q") {
        let (y, q): (i32, u32) = (y.parse().map_err(|_| bad())?, q.parse().map_err(|_| bad())?);
        if !(1..=4).contains(&q) {
            return Err(bad());
        }
        return Ok(if q == 1 { format!("{}-Q4", y - 1) } else { format!("{y}-Q{}", q - 1) });
    }
    let (y, m) = label.split_once('-').ok_or_else(bad)?;
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m.to_string().len() > 2 || !(1..=12).contains(&m) || label.len() != 7 {
        return Err(bad());
    }
    Ok(if m == 1 { format!("{}-12", y - 1) } else { format!("{y}-{:02}", m - 1) })
}

async fn published_row(store: &Store, where_: &str, value: &str) -> Result<Option<sqlx::any::AnyRow>, PublishError> {
    Ok(sqlx::query(&format!(
        "SELECT number, period, issued_at, issued_by, audit_head, sha256, body, html, csv, xlsx FROM reports WHERE {where_} = $1 \
         ORDER BY year DESC, serial DESC LIMIT 1"
    ))
    .bind(value)
    .fetch_optional(store.pool())
    .await?)
}

fn header(r: &sqlx::any::AnyRow) -> Result<Published, sqlx::Error> {
    Ok(Published {
        number: r.try_get("number")?,
        period: r.try_get("period")?,
        issued_at: r.try_get("issued_at")?,
        issued_by: r.try_get("issued_by")?,
        audit_head: r.try_get("audit_head")?,
        sha256: r.try_get("sha256")?,
    })
}

/// Publishes the report of `period` (a month or a quarter) at `now`: Ok((report, true))
/// when published now, Ok((existing, false)) when the period was published before.
pub async fn publish(
    store: &Store,
    catalog: &Catalog,
    zone: chrono_tz::Tz,
    period: &str,
    weights: &Weights,
    config: &ReportsConfig,
    now: i64,
) -> Result<(Published, bool), PublishError> {
    let previous = previous_period(period)?;
    if let Some(row) = published_row(store, "period", period).await? {
        return Ok((header(&row)?, false));
    }
    let range = stats::parse_period(period, zone).map_err(PublishError::Request)?;
    let mut report = stats::report(store, catalog, &range, GroupBy::Department, weights).await?;
    // The previous period's ranks: from its published report when there is one (what
    // was announced), else as computed now.
    let before: Report = match published_row(store, "period", &previous).await? {
        Some(row) => {
            let body: String = row.try_get("body")?;
            serde_json::from_str::<Snapshot>(&body)
                .map(|s| s.report)
                .map_err(|e| PublishError::Request(format!("report of {previous}: {e}")))?
        }
        None => {
            let range = stats::parse_period(&previous, zone).map_err(PublishError::Request)?;
            stats::report(store, catalog, &range, GroupBy::Department, weights).await?
        }
    };
    for row in &mut report.rows {
        row.previous_rank = before.rows.iter().find(|b| b.key == row.key && b.score.is_some()).map(|b| b.rank);
    }
    let head = match store.verify_audit().await? {
        Ok(head) => head.hash,
        Err(broken) => return Err(PublishError::Audit(broken.to_string())),
    };
    let issued = Timestamp(now).in_zone(zone);
    let year = i64::from(issued.year());
    let serial: i64 = sqlx::query("SELECT COALESCE(MAX(serial), 0) + 1 FROM reports WHERE year = $1")
        .bind(year)
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    let number = format!("{}〔{year}〕{serial}号", config.number_prefix);
    // The cases marked 通报 not yet in a report: they are now, each with an audit entry.
    let mut cases = Vec::new();
    let mut after = 0;
    loop {
        let page = store.cases(&CaseFilter { publicized: Some(true), after_case_id: after, limit: 1000, ..CaseFilter::default() }).await?;
        let Some(last) = page.last() else { break };
        after = last.case_id;
        for c in page.into_iter().filter(|c| c.state.reported_in.is_none()) {
            let marked = store
                .change(c.case_id, now, "system", "SYSTEM", "REPORTED", |s| {
                    workflow::mark_reported(s, &number).ok_or_else(|| WorkflowError::State("already in a report".into()))
                })
                .await;
            match marked {
                Ok(_) | Err(StoreError::Workflow(_)) => {}
                Err(e) => return Err(e.into()),
            }
            cases.push(PublicizedCase {
                case_id: c.case_id,
                department: catalog.department_name(&c.department_code).unwrap_or(&c.department_code).to_owned(),
                item_id: c.item_id.clone(),
                summary: c.message_zh.clone(),
            });
        }
    }
    let publication = Publication {
        number: number.clone(),
        issued_by: config.issuing_body.clone(),
        issued_on: format!("{}年{}月{}日", issued.year(), issued.month(), issued.day()),
        audit_head: head.clone(),
        previous_period: previous,
        cases,
    };
    let snapshot = Snapshot { publication, report };
    let json = serde_json::to_string_pretty(&snapshot).map_err(|e| PublishError::Request(e.to_string()))? + "\n";
    let html = snapshot.report.to_published_html(&snapshot.publication);
    let csv = snapshot.report.to_csv();
    let xlsx = to_xlsx(&snapshot, issued.date_naive())?;
    let sha256 = crate::audit::sha256_hex(json.as_bytes());
    sqlx::query(
        "INSERT INTO reports (number, year, serial, period, issued_at, issued_by, audit_head, body, html, csv, xlsx, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&number)
    .bind(year)
    .bind(serial)
    .bind(period)
    .bind(now)
    .bind(&config.issuing_body)
    .bind(&head)
    .bind(&json)
    .bind(&html)
    .bind(&csv)
    .bind(crate::audit::hex(&xlsx))
    .bind(&sha256)
    .execute(store.pool())
    .await?;
    Ok((
        Published { number, period: period.to_owned(), issued_at: now, issued_by: config.issuing_body.clone(), audit_head: head, sha256 },
        true,
    ))
}

/// Every published report, newest first.
pub async fn list(store: &Store) -> Result<Vec<Published>, PublishError> {
    let rows = sqlx::query("SELECT number, period, issued_at, issued_by, audit_head, sha256 FROM reports ORDER BY year DESC, serial DESC")
        .fetch_all(store.pool())
        .await?;
    Ok(rows.iter().map(header).collect::<Result<_, _>>()?)
}

/// A published report as a file: (media type, file name, bytes); None when no report
/// has that number.
pub async fn file(store: &Store, number: &str, format: &str) -> Result<Option<(&'static str, String, Vec<u8>)>, PublishError> {
    let Some(row) = published_row(store, "number", number).await? else { return Ok(None) };
    let period: String = row.try_get("period")?;
    let name = |ext: &str| format!("jiancha-report-{period}-{}.{ext}", number.chars().filter(char::is_ascii_digit).collect::<String>());
    Ok(Some(match format {
        "html" => ("text/html; charset=utf-8", name("html"), row.try_get::<String, _>("html")?.into_bytes()),
        "csv" => ("text/csv; charset=utf-8", name("csv"), row.try_get::<String, _>("csv")?.into_bytes()),
        "json" => ("application/json", name("json"), row.try_get::<String, _>("body")?.into_bytes()),
        "xlsx" => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            name("xlsx"),
            unhex(&row.try_get::<String, _>("xlsx")?).ok_or_else(|| PublishError::Request("the stored XLSX is damaged".into()))?,
        ),
        other => return Err(PublishError::Request(format!("format `{other}`: one of {}", FORMATS.join(", ")))),
    }))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.len().is_multiple_of(2).then_some(())?;
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The report as an XLSX workbook: one sheet, header frozen, A4 landscape.
fn to_xlsx(s: &Snapshot, issued_on: NaiveDate) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let properties =
        rust_xlsxwriter::DocProperties::new().set_title(&s.publication.number).set_author(&s.publication.issued_by).set_creation_datetime(
            &rust_xlsxwriter::ExcelDateTime::from_ymd(issued_on.year() as u16, issued_on.month() as u8, issued_on.day() as u8)?,
        );
    book.set_properties(&properties);
    let sheet = book.add_worksheet();
    sheet.set_name(s.report.period.replace(['[', ']', '*', '?', '/', '\\', ':'], "-"))?;
    sheet.set_landscape();
    sheet.set_paper_size(9);
    let bold = Format::new().set_bold();
    let title = Format::new().set_bold().set_font_size(14);
    let percent = Format::new().set_num_format("0.0%");
    let two = Format::new().set_num_format("0.00");
    let centre = Format::new().set_align(FormatAlign::Center);
    sheet.write_string_with_format(0, 0, &s.publication.number, &title)?;
    sheet.write_string(1, 0, format!("{}　{}", s.publication.issued_by, s.publication.issued_on))?;
    sheet.write_string(2, 0, format!("行政审批绩效评估通报（{}，{} 至 {}）", s.report.period, s.report.from, s.report.to))?;
    let headers = [
        "排名",
        "名次变化",
        "部门",
        "收件",
        "受理",
        "办结",
        "按时办结率",
        "提前办结率",
        "超承诺时限",
        "超法定时限",
        "平均用时(工作日)",
        "P90用时",
        "承诺时限使用率",
        "预警",
        "黄牌",
        "红牌",
        "迟报率",
        "屡犯标记",
        "得分",
    ];
    let top = 4;
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(top, c as u16, *h, &bold)?;
    }
    sheet.set_freeze_panes(top + 1, 0)?;
    for (i, x) in s.report.rows.iter().enumerate() {
        let r = top + 1 + i as u32;
        sheet.write_number(r, 0, f64::from(x.rank))?;
        let change = match x.previous_rank {
            Some(before) if before > x.rank => format!("↑{}", before - x.rank),
            Some(before) if before < x.rank => format!("↓{}", x.rank - before),
            _ => "—".to_owned(),
        };
        sheet.write_string_with_format(r, 1, change, &centre)?;
        sheet.write_string(r, 2, &x.name)?;
        for (c, v) in [(3, x.received), (4, x.accepted), (5, x.decided)] {
            sheet.write_number(r, c, v as f64)?;
        }
        let mut optional = |c: u16, v: Option<f64>, f: &Format| match v {
            Some(v) => sheet.write_number_with_format(r, c, v, f).map(|_| ()),
            None => sheet.write_string_with_format(r, c, "—", &centre).map(|_| ()),
        };
        optional(6, x.on_time_rate, &percent)?;
        optional(7, x.early_rate, &percent)?;
        optional(10, x.mean_working_days, &two)?;
        optional(11, x.p90_working_days, &two)?;
        optional(12, x.promised_share_used, &percent)?;
        optional(16, x.late_report_share, &percent)?;
        optional(18, x.score, &two)?;
        for (c, v) in [
            (8, x.overdue_promised),
            (9, x.overdue_statutory),
            (13, x.warnings),
            (14, x.yellow),
            (15, x.red),
            (17, x.repeat_offender_marks),
        ] {
            sheet.write_number(r, c, v as f64)?;
        }
    }
    sheet.set_column_width(2, 22)?;
    let w = &s.report.weights;
    let foot = top + 2 + s.report.rows.len() as u32;
    sheet.write_string(
        foot,
        0,
        format!(
            "评分：基础分{}，每百件办结扣：环节超时{}分、黄牌{}分、红牌{}分、屡犯标记{}分；不予追究不扣分（核减）；本期无办结的部门不评分（“—”）。",
            w.base, w.step_overdue, w.yellow, w.red, w.repeat_offender
        ),
    )?;
    sheet.write_string(foot + 1, 0, format!("审计日志头哈希：{}", s.publication.audit_head))?;
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_previous_period_of_a_month_and_a_quarter() {
        assert_eq!(super::previous_period("2026-11").unwrap(), "2026-10");
        assert_eq!(super::previous_period("2026-01").unwrap(), "2025-12");
        assert_eq!(super::previous_period("2026-Q1").unwrap(), "2025-Q4");
        assert_eq!(super::previous_period("2026-Q3").unwrap(), "2026-Q2");
        for bad in ["2026", "2026-13", "2026-Q5", "2026-03-01..2026-03-05", "x"] {
            assert!(super::previous_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_bytes_round_trip() {
        let bytes = vec![0u8, 1, 0xfe, 0xff, 0x50, 0x4b];
        assert_eq!(super::unhex(&crate::audit::hex(&bytes)).unwrap(), bytes);
        assert!(super::unhex("abc").is_none());
    }
}
