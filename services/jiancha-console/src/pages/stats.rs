//! 绩效: the ranking and scores of a month or quarter (StatsService), a chart of the
//! scores, the trend over the last 12 months, drill-down to a department's items and
//! cases; the page prints on A4 landscape and exports CSV.

use super::{grpc_error, options};
use crate::view::{self, frame};
use crate::{App, Auth, html};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate};
use jiancha_proto::v1::{GetReportRequest, GetStatsRequest, ListReportsRequest, StatsReport, StatsRow};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// The period and grouping asked for.
#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    period: String,
    #[serde(default)]
    group_by: String,
    #[serde(default)]
    department: String,
}

/// Reports already computed: (role, department, period, grouping) → when, report. The
/// services' answer depends on the caller's role and department only, so users of the same
/// role and department share it. A report older than its time to live (10 minutes for past
/// months, which change rarely; 30 s for the current period) is still shown while a fresh
/// one is computed in the background: the page always answers at once after the first
/// time, and shows when its figures were computed.
pub type StatsCache = dashmap::DashMap<StatsKey, (std::time::Instant, StatsReport)>;

/// Role, department, period, grouping.
pub type StatsKey = (jiancha_platform::auth::Role, Option<String>, String, String);

async fn fetch(app: &App, user: &crate::session::User, key: &StatsKey) -> Result<StatsReport, tonic::Status> {
    let fresh = app.backends.stats(user).get_stats(GetStatsRequest { period: key.2.clone(), group_by: key.3.clone() }).await?.into_inner();
    if app.stats_cache.len() > 10_000 {
        app.stats_cache.retain(|_, e| e.0.elapsed() < std::time::Duration::from_secs(600));
    }
    app.stats_cache.insert(key.clone(), (std::time::Instant::now(), fresh.clone()));
    Ok(fresh)
}

async fn cached_report(
    app: &Arc<App>,
    ctx: &crate::view::Ctx,
    period: &str,
    group_by: &str,
    current: bool,
) -> Result<StatsReport, tonic::Status> {
    let user = ctx.user().clone();
    let key: StatsKey = (user.role, user.scope().map(str::to_owned), period.to_owned(), group_by.to_owned());
    let ttl = std::time::Duration::from_secs(if current { 30 } else { 600 });
    let cached = app.stats_cache.get(&key).map(|e| (e.0, e.1.clone()));
    match cached {
        Some((at, report)) if at.elapsed() < ttl => Ok(report),
        Some((_, stale)) => {
            // Mark it fresh now so that one request refreshes it, not every request.
            if let Some(mut e) = app.stats_cache.get_mut(&key) {
                e.0 = std::time::Instant::now();
            }
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = fetch(&app, &user, &key).await {
                    tracing::warn!(error = %e, "Refreshing a performance report failed; the older one is shown");
                }
            });
            Ok(stale)
        }
        None => fetch(app, &user, &key).await,
    }
}

fn this_month(app: &App) -> NaiveDate {
    let today = chrono::Utc::now().with_timezone(&app.tz).date_naive();
    today.with_day(1).unwrap_or(today)
}

fn pct(r: &StatsRow, x: f64) -> String {
    if r.rated { format!("{:.1}%", x * 100.0) } else { "—".to_owned() }
}

/// A figure of a row that decided nothing in the period is not defined: "—", not 0.
fn num(r: &StatsRow, x: f64) -> String {
    if r.rated { format!("{x:.1}") } else { "—".to_owned() }
}

/// The page.
pub async fn page(State(app): State<Arc<App>>, Auth(ctx): Auth, Query(q): Query<StatsQuery>) -> Response {
    let month = this_month(&app);
    let period = if q.period.trim().is_empty() { month.format("%Y-%m").to_string() } else { q.period.trim().to_owned() };
    let group_by = if q.group_by == "service" { "service" } else { "department" };
    let this = month.format("%Y-%m").to_string();
    let report = match cached_report(&app, &ctx, &period, group_by, period == this).await {
        Ok(r) => r,
        Err(status) => return grpc_error(&ctx, &status),
    };
    // The trend: the last 12 months, the department asked for or all together, asked
    // for at once.
    let months: Vec<NaiveDate> = (0..12u32).rev().map(|back| month.checked_sub_months(Months::new(back)).unwrap_or(month)).collect();
    let reports = futures::future::join_all(months.iter().map(|m| {
        let p = m.format("%Y-%m").to_string();
        let (app, ctx) = (&app, &ctx);
        async move { cached_report(app, ctx, &p, "department", *m == month).await.ok() }
    }))
    .await;
    let trend: Vec<(String, Option<f64>)> = months
        .iter()
        .zip(reports)
        .map(|(m, r)| (m.format("%y-%m").to_string(), r.and_then(|r| on_time(&r, &q.department)).map(|v| v * 100.0)))
        .collect();
    let max_score = report.rows.iter().map(|r| r.score).fold(0.0, f64::max).max(100.0);
    let bars: Vec<(String, f64, String)> =
        report.rows.iter().map(|r| (format!("{} {}", r.rank, label(r)), if r.rated { r.score } else { 0.0 }, num(r, r.score))).collect();
    // Published reports (通报): numbered, immutable; each downloads as it was published.
    let published = match app.backends.stats(ctx.user()).list_reports(ListReportsRequest {}).await {
        Ok(r) => r.into_inner().reports,
        Err(status) => return grpc_error(&ctx, &status),
    };
    let subject = if q.department.is_empty() { ctx.t("全部部门", "all departments").to_owned() } else { q.department.clone() };
    let body = html! {
        form class="filters noprint" method="get" action="/stats" {
            label { (ctx.t("期间", "Period")) " " input name="period" value=(period) size="22" placeholder="2026-11 / 2026-Q4"; }
            label { (ctx.t("分组", "Group by")) " " select name="group_by" { (options(group_by, &[("department", ctx.t("部门", "Department")), ("service", ctx.t("事项", "Service"))])) } }
            button type="submit" { (ctx.t("查看", "Show")) }
            a class="button" href={"/stats.csv?period=" (view::urlencode(&period)) "&group_by=" (group_by)} download { (ctx.t("导出 CSV", "Export CSV")) }
        }
        p class="meta" { (report.from) " — " (report.to) " · " (ctx.t("生成于", "generated")) " " (ctx.time(&report.generated_at)) }
        h2 { (ctx.t("综合得分", "Scores")) }
        figure { (view::raw(crate::svg::bars(ctx.t("综合得分", "Scores"), &bars, max_score))) }
        table class="list ranking" {
            thead { tr {
                th scope="col" { (ctx.t("排名", "Rank")) } th scope="col" { (if group_by == "service" { ctx.t("事项", "Service") } else { ctx.t("部门", "Department") }) }
                th scope="col" { (ctx.t("得分", "Score")) } th scope="col" { (ctx.t("受理", "Accepted")) } th scope="col" { (ctx.t("办结", "Decided")) }
                th scope="col" { (ctx.t("按时办结率", "On time")) } th scope="col" { (ctx.t("提前办结率", "Early")) }
                th scope="col" { (view::level_label(1, ctx.lang)) } th scope="col" { (view::level_label(2, ctx.lang)) } th scope="col" { (view::level_label(3, ctx.lang)) }
                th scope="col" { (ctx.t("平均用时（工作日）", "Mean working days")) } th scope="col" class="noprint" { (ctx.t("明细", "Details")) }
            } }
            tbody { @for r in &report.rows { tr {
                td { (r.rank) } td { (label(r)) } td { (num(r, r.score)) } td { (r.accepted) } td { (r.decided) }
                td { (pct(r, r.on_time_rate)) } td { (pct(r, r.early_rate)) } td { (r.warnings) } td { (r.yellow) } td { (r.red) }
                td { (num(r, r.mean_working_days)) }
                td class="noprint" {
                    a href={"/items?department=" (view::urlencode(&r.department_code))} { (ctx.t("办件", "items")) } " · "
                    a href={"/cases?department=" (view::urlencode(&r.department_code))} { (ctx.t("案件", "cases")) } " · "
                    a href={"/stats?period=" (view::urlencode(&period)) "&department=" (view::urlencode(&r.department_code))} { (ctx.t("趋势", "trend")) }
                }
            } } }
        }
        p class="meta" { (ctx.t("本期无办结的不评分（“—”），排在最后；得分相同者名次相同。", "Rows with nothing decided have no score (“—”) and come last; equal scores share a rank.")) }
        h2 { (ctx.t("近12个月按时办结率", "On-time rate, last 12 months")) " · " (subject) }
        figure { (view::raw(crate::svg::line(ctx.t("按时办结率（%）", "On-time rate (%)"), &trend, 100.0))) }
        section class="published noprint" {
            h2 { (ctx.t("已发布通报", "Published reports")) }
            @if published.is_empty() {
                p { (ctx.t("尚未发布（jiancha report publish --period 2026-11）", "None yet (jiancha report publish --period 2026-11)")) }
            } @else {
                table class="list" {
                    thead { tr { th scope="col" { (ctx.t("文号", "Number")) } th scope="col" { (ctx.t("期间", "Period")) } th scope="col" { (ctx.t("发布时间", "Issued")) } th scope="col" { (ctx.t("下载", "Download")) } } }
                    tbody { @for r in &published { tr {
                        td { (r.number) } td { (r.period) } td { (ctx.time(&r.issued_at)) }
                        td { @for (i, f) in ["html", "csv", "xlsx", "json"].iter().enumerate() {
                            @if i > 0 { " · " }
                            a href={"/reports/" (view::urlencode(&r.number)) "/" (f)} { (f.to_uppercase()) }
                        } }
                    } } }
                }
            }
        }
    };
    html(frame(&ctx, &format!("{} {}", ctx.t("绩效评估通报", "Performance report"), report.period), body))
}

fn label(r: &StatsRow) -> String {
    if r.name.is_empty() || r.name == r.key { r.key.clone() } else { format!("{} {}", r.key, r.name) }
}

/// The on-time rate of a department (or of all rows together), None without decisions.
fn on_time(report: &StatsReport, department: &str) -> Option<f64> {
    let rows = report.rows.iter().filter(|r| department.is_empty() || r.department_code == department);
    let (decided, on_time) = rows.fold((0u64, 0u64), |(d, o), r| (d + r.decided, o + r.decided_on_time));
    (decided > 0).then(|| on_time as f64 / decided as f64)
}

fn csv_field(s: &str) -> String {
    // Quote every field; a leading = + - @ is defused so that a spreadsheet shows text.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The report as CSV (UTF-8 with a byte-order mark, so that spreadsheet programs read the Chinese).
pub async fn csv(State(app): State<Arc<App>>, Auth(ctx): Auth, Query(q): Query<StatsQuery>) -> Response {
    let period = if q.period.trim().is_empty() { this_month(&app).format("%Y-%m").to_string() } else { q.period.trim().to_owned() };
    let group_by = if q.group_by == "service" { "service" } else { "department" };
    let report = match app.backends.stats(ctx.user()).get_stats(GetStatsRequest { period: period.clone(), group_by: group_by.into() }).await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    let mut out = String::from(
        "\u{feff}排名,代码,名称,部门,得分,申请,受理,办结,按时办结,按时办结率,提前办结率,超承诺时限,超法定时限,平均用时,预警,黄牌,红牌\n",
    );
    for r in &report.rows {
        let fields = [
            r.rank.to_string(),
            csv_field(&r.key),
            csv_field(&r.name),
            csv_field(&r.department_code),
            if r.rated { format!("{:.2}", r.score) } else { String::new() },
            r.received.to_string(),
            r.accepted.to_string(),
            r.decided.to_string(),
            r.decided_on_time.to_string(),
            if r.rated { format!("{:.4}", r.on_time_rate) } else { String::new() },
            if r.rated { format!("{:.4}", r.early_rate) } else { String::new() },
            r.overdue_promised.to_string(),
            r.overdue_statutory.to_string(),
            if r.rated { format!("{:.2}", r.mean_working_days) } else { String::new() },
            r.warnings.to_string(),
            r.yellow.to_string(),
            r.red.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let file = format!(
        "attachment; filename=\"jiancha-{}-{group_by}.csv\"",
        period.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)], out).into_response()
}

/// A published report (通报), as the file it was published as.
pub async fn published(
    State(app): State<Arc<App>>,
    Auth(ctx): Auth,
    axum::extract::Path((number, format)): axum::extract::Path<(String, String)>,
) -> Response {
    match app.backends.stats(ctx.user()).get_report(GetReportRequest { number, format }).await {
        Ok(r) => {
            let file = r.into_inner();
            let disposition =
                format!("attachment; filename=\"{}\"", file.file_name.replace(|c: char| !c.is_ascii_graphic() || c == '"', "_"));
            ([(header::CONTENT_TYPE, file.media_type), (header::CONTENT_DISPOSITION, disposition)], file.content).into_response()
        }
        Err(status) => grpc_error(&ctx, &status),
    }
}
