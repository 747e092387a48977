//! 办件: lists of items filtered on the server, and one item drawn on a working-day axis
//! with its events, clocks, pauses, alerts and every clock's derivation.

use super::{grpc_error, options, pager};
use crate::svg::esc;
use crate::view::{self, Ctx, derivation, frame, item_status_label, kind_label, level_badge};
use crate::{App, Auth, html};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use jiancha_core::calendar::{Calendar, Calendars};
use jiancha_core::catalog::Catalog;
use jiancha_platform::Config;
use jiancha_proto::v1::{ClockStatus, GetItemRequest, ItemStatus, ItemTimeline, Level, ListItemsRequest};
use maud::html;
use serde::Deserialize;
use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The catalog and calendars, for the axis: reread at most every 30 s, so that a
/// calendar changed through the catalog page shows soon.
#[derive(Debug)]
pub struct Rules {
    config: Config,
    cached: RwLock<Option<Loaded>>,
}

/// Rules as read, and when.
type Loaded = (Instant, Arc<Catalog>, Arc<Calendars>);

impl Rules {
    /// Rules of `config`.
    pub fn new(config: &Config) -> Rules {
        Rules { config: config.clone(), cached: RwLock::new(None) }
    }

    /// The calendar of a service (the default one when unknown).
    pub fn calendar(&self, service: Option<&str>) -> Arc<Calendar> {
        let fresh = self
            .cached
            .read()
            .ok()
            .and_then(|c| c.as_ref().filter(|(at, ..)| at.elapsed().as_secs() < 30).map(|(_, a, b)| (a.clone(), b.clone())));
        let (catalog, calendars) = match fresh {
            Some(x) => x,
            None => {
                let (catalog, calendars) = jiancha_platform::rules::load_rules(self.config.catalog.as_ref(), &self.config.calendar_files())
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "The console could not load the catalog; the axis uses the built-in calendar");
                        (Arc::new(Catalog::empty()), Calendars::builtin())
                    });
                let calendars = Arc::new(calendars);
                if let Ok(mut c) = self.cached.write() {
                    *c = Some((Instant::now(), catalog.clone(), calendars.clone()));
                }
                (catalog, calendars)
            }
        };
        service
            .and_then(|s| catalog.get(s))
            .and_then(|s| calendars.get(&s.calendar).cloned())
            .unwrap_or_else(|| calendars.default_calendar().clone())
    }
}

/// The list's filters.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    page: String,
}

/// The item list (and the search by id).
pub async fn list(State(app): State<Arc<App>>, Auth(ctx): Auth, Query(q): Query<ListQuery>) -> Response {
    let q_id = q.q.trim();
    if !q_id.is_empty() {
        let department = ctx.user().scope().unwrap_or(q.department.trim()).to_owned();
        let dept = if department.is_empty() { "_".to_owned() } else { department };
        return Redirect::to(&format!("/items/{}/{}", view::urlencode(&dept), view::urlencode(q_id))).into_response();
    }
    let scoped = ctx.user().scope().map(str::to_owned);
    let request = ListItemsRequest {
        department_code: scoped.clone().or_else(|| Some(q.department.clone()).filter(|d| !d.is_empty())),
        service_code: Some(q.service.clone()).filter(|s| !s.is_empty()),
        status: ItemStatus::from_str_name(&q.status).map(|s| s as i32),
        overdue: match q.overdue.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        min_level: Level::from_str_name(&q.level).map(|l| l as i32),
        page_size: 50,
        page_token: q.page.clone(),
    };
    let response = match app.backends.monitor(ctx.user()).list_items(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    let filters = [
        ("department", q.department.as_str()),
        ("service", q.service.as_str()),
        ("status", q.status.as_str()),
        ("overdue", q.overdue.as_str()),
        ("level", q.level.as_str()),
    ];
    let statuses: Vec<(&str, &str)> = std::iter::once(("", ctx.t("全部", "All")))
        .chain((1..=6).filter_map(|s| ItemStatus::try_from(s).ok().map(|st| (st.as_str_name(), item_status_label(s, ctx.lang)))))
        .collect();
    let body = html! {
        form class="filters" method="get" action="/items" role="search" {
            label { (ctx.t("办件编号", "Item id")) " " input name="q" size="24" placeholder="SCJG-20261201-00001"; }
            button type="submit" { (ctx.t("查找", "Find")) }
        }
        form class="filters" method="get" action="/items" {
            @if scoped.is_none() {
                label { (ctx.t("部门", "Department")) " " input name="department" value=(q.department) size="8"; }
            }
            label { (ctx.t("事项", "Service")) " " input name="service" value=(q.service) size="10"; }
            label { (ctx.t("状态", "Status")) " " select name="status" { (options(&q.status, &statuses)) } }
            label { (ctx.t("超期", "Overdue")) " " select name="overdue" { (options(&q.overdue, &[("", ctx.t("全部", "All")), ("yes", ctx.t("超期", "Overdue")), ("no", ctx.t("未超期", "Not overdue"))])) } }
            label { (ctx.t("等级", "Level")) " " select name="level" { (options(&q.level, &[("", ctx.t("全部", "All")), ("WARNING", ctx.t("预警及以上", "Warning and up")), ("YELLOW", ctx.t("黄牌及以上", "Yellow and up")), ("RED", ctx.t("红牌", "Red"))])) } }
            button type="submit" { (ctx.t("筛选", "Filter")) }
        }
        table class="list" {
            thead { tr {
                th scope="col" { (ctx.t("办件编号", "Item")) } th scope="col" { (ctx.t("部门", "Department")) } th scope="col" { (ctx.t("事项", "Service")) }
                th scope="col" { (ctx.t("状态", "Status")) } th scope="col" { (ctx.t("最高等级", "Card")) } th scope="col" { (ctx.t("生效告警", "Alerts")) }
                th scope="col" { (ctx.t("下一期限", "Next deadline")) }
            } }
            tbody {
                @for it in &response.items {
                    tr {
                        td { a href={"/items/" (view::urlencode(&it.department_code)) "/" (view::urlencode(&it.item_id))} { (it.item_id) } }
                        td { (it.department_code) }
                        td { (it.service_code.as_deref().unwrap_or("—")) }
                        td { (item_status_label(it.status, ctx.lang)) @if it.overdue { " " span class="tag overdue" { (ctx.t("超期", "overdue")) } } }
                        td { @if it.level != 0 { (level_badge(it.level, ctx.lang)) } @else { "—" } }
                        td { (it.alerts_in_force) }
                        td { (it.next_deadline.as_deref().map(|d| ctx.time(d)).unwrap_or_else(|| "—".into())) }
                    }
                }
                @if response.items.is_empty() { tr { td colspan="7" { (ctx.t("没有符合条件的办件", "No item matches")) } } }
            }
        }
        (pager(&ctx, "/items", &filters, &q.page, &response.next_page_token))
    };
    html(frame(&ctx, ctx.t("办件", "Items"), body))
}

/// One item's page. `_` as the department: the one item of that id (an inspector's search).
pub async fn item(State(app): State<Arc<App>>, Auth(ctx): Auth, Path((department, item_id)): Path<(String, String)>) -> Response {
    let department = if department == "_" { String::new() } else { department };
    let department = ctx.user().scope().map(str::to_owned).unwrap_or(department);
    let timeline = match app.backends.monitor(ctx.user()).get_item(GetItemRequest { item_id, department_code: department }).await {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    let calendar = app.rules.calendar(timeline.service_code.as_deref());
    let axis = axis(&ctx, &timeline, &calendar, app.tz);
    let t = &timeline;
    let body = html! {
        dl class="facts" {
            dt { (ctx.t("部门", "Department")) } dd { (t.department_code) }
            dt { (ctx.t("事项", "Service")) } dd { (t.service_code.as_deref().unwrap_or("—")) " " (t.service_name.as_deref().unwrap_or("")) }
            dt { (ctx.t("状态", "Status")) } dd { (item_status_label(t.status, ctx.lang)) }
            dt { (ctx.t("计算时点", "As of")) } dd { (ctx.time(&t.as_of)) }
        }
        h2 { (ctx.t("工作日时间轴", "Working-day axis")) }
        figure class="axis" { (view::raw(axis)) figcaption { (ctx.t("灰色为休息日，红色为法定节假日，“班”为调休上班日，斜线为依法暂停计时的特别程序。", "Grey: rest days; red: public holidays; 班: adjusted working days; hatched: lawful pauses.")) } }
        h2 { (ctx.t("时限", "Clocks")) }
        @for c in &t.clocks {
            section class="clock" {
                h3 { (c.label_zh) " " small { code { (c.name) } } " " span class={"tag clock-" (clock_class(c.status))} { (clock_label(&ctx, c.status)) } }
                p {
                    (ctx.t("起算", "Started")) " " (ctx.time(&c.started_at)) "；"
                    (ctx.t("期限", "Deadline")) " " strong { (ctx.time(&c.deadline)) } "；"
                    (ctx.t("时限", "Budget")) " " (c.budget_days) (if c.day_kind == "WORKING" { ctx.t("个工作日", " working days") } else { ctx.t("个自然日", " days") }) "；"
                    (ctx.t("剩余", "Left")) " " (format!("{:.1}", c.remaining_days))
                }
                @if let Some(d) = &c.derivation {
                    details open[c.status == ClockStatus::Overdue as i32] {
                        summary { (ctx.t("推导过程", "Derivation")) }
                        (derivation(if ctx.lang == view::Lang::En && !d.en.is_empty() { &d.en } else { &d.zh }))
                    }
                }
            }
        }
        h2 { (ctx.t("生效告警", "Alerts in force")) }
        @if t.alerts.is_empty() { p { (ctx.t("无", "None")) } }
        @for a in &t.alerts {
            article class="card" {
                header { (level_badge(a.level, ctx.lang)) " " strong { (kind_label(a.kind, ctx.lang)) } " " (ctx.time(&a.triggered_at)) }
                @if let Some(m) = &a.message { p { (if ctx.lang == view::Lang::En { &m.en } else { &m.zh }) } }
                @if let Some(d) = &a.derivation { details { summary { (ctx.t("推导过程", "Derivation")) } (derivation(&d.zh)) } }
            }
        }
        h2 { (ctx.t("事件", "Events")) }
        table class="list" {
            thead { tr { th scope="col" { (ctx.t("发生时间", "Occurred")) } th scope="col" { (ctx.t("事件", "Event")) } th scope="col" { (ctx.t("内容", "Detail")) } th scope="col" { (ctx.t("经办人", "Actor")) } th scope="col" { (ctx.t("接收时间", "Received")) } } }
            tbody { @for e in &t.events { tr {
                td { (ctx.time(&e.occurred_at)) }
                td { (event_label(&ctx, e.r#type)) }
                td { (e.detail.as_deref().unwrap_or("")) }
                td { (e.actor.as_deref().unwrap_or("—")) }
                td { (ctx.time(&e.received_at)) }
            } } }
        }
        h2 { (ctx.t("告警记录（含撤回）", "Alert history (with retractions)")) }
        table class="list" {
            thead { tr { th scope="col" { (ctx.t("时间", "Triggered")) } th scope="col" { (ctx.t("等级", "Card")) } th scope="col" { (ctx.t("类型", "Kind")) } th scope="col" { (ctx.t("状态", "State")) } } }
            tbody { @for h in &t.history { tr class=[(h.status == 2).then_some("retracted")] {
                td { (ctx.time(&h.triggered_at)) } td { (level_badge(h.level, ctx.lang)) } td { (kind_label(h.kind, ctx.lang)) } td { (view::alert_status_label(h.status, ctx.lang)) }
            } } }
        }
    };
    html(frame(&ctx, &format!("{} {}", ctx.t("办件", "Item"), t.item_id), body))
}

fn clock_class(status: i32) -> &'static str {
    match ClockStatus::try_from(status).unwrap_or(ClockStatus::Unspecified) {
        ClockStatus::Running => "running",
        ClockStatus::Paused => "paused",
        ClockStatus::Met => "met",
        ClockStatus::Overdue => "overdue",
        ClockStatus::Unspecified => "none",
    }
}

fn clock_label(ctx: &Ctx, status: i32) -> &str {
    match ClockStatus::try_from(status).unwrap_or(ClockStatus::Unspecified) {
        ClockStatus::Running => ctx.t("计时中", "running"),
        ClockStatus::Paused => ctx.t("暂停", "paused"),
        ClockStatus::Met => ctx.t("按时", "met"),
        ClockStatus::Overdue => ctx.t("超期", "overdue"),
        ClockStatus::Unspecified => "—",
    }
}

/// Event types in words.
pub fn event_label(ctx: &Ctx, t: i32) -> &str {
    let name = jiancha_proto::v1::EventType::try_from(t).map(|t| t.as_str_name()).unwrap_or("");
    match name {
        "SUBMITTED" => ctx.t("申请", "Submitted"),
        "CORRECTION_REQUESTED" => ctx.t("一次性告知补正", "Correction requested"),
        "CORRECTION_SUBMITTED" => ctx.t("补正材料提交", "Correction submitted"),
        "ACCEPTED" => ctx.t("受理", "Accepted"),
        "NOT_ACCEPTED" => ctx.t("不予受理", "Not accepted"),
        "STEP_COMPLETED" => ctx.t("环节完成", "Step completed"),
        "SUSPENDED" => ctx.t("特别程序开始", "Suspended"),
        "RESUMED" => ctx.t("特别程序结束", "Resumed"),
        "EXTENDED" => ctx.t("延期", "Extended"),
        "FEE_CHARGED" => ctx.t("收费", "Fee charged"),
        "DECIDED" => ctx.t("作出决定", "Decided"),
        "DELIVERED" => ctx.t("送达", "Delivered"),
        "WITHDRAWN" => ctx.t("撤回申请", "Withdrawn"),
        other => other,
    }
}

fn instant(s: &str, tz: Tz) -> Option<DateTime<Tz>> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&tz))
}

/// The item on a working-day axis: one column per day (rest days grey, holidays red with
/// their name, 调休 working days marked 班), events as marks, each clock as a bar from its
/// start to its deadline, lawful pauses hatched, alerts as cards at their instant.
fn axis(ctx: &Ctx, t: &ItemTimeline, calendar: &Calendar, tz: Tz) -> String {
    let mut instants: Vec<DateTime<Tz>> = t.events.iter().filter_map(|e| instant(&e.occurred_at, tz)).collect();
    for c in &t.clocks {
        instants.extend(instant(&c.started_at, tz));
        instants.extend(instant(&c.deadline, tz));
    }
    instants.extend(instant(&t.as_of, tz));
    let (Some(first), Some(last)) = (instants.iter().min().copied(), instants.iter().max().copied()) else { return String::new() };
    let start: NaiveDate = first.date_naive();
    let mut end: NaiveDate = last.date_naive();
    // Long stories are cut at 120 days after the start (the tables below hold everything).
    if (end - start).num_days() > 120 {
        end = start + Duration::days(120);
    }
    let days = (end - start).num_days() + 1;
    let left = 130.0;
    let col = (760.0 / days as f64).clamp(6.0, 28.0);
    let width = left + col * days as f64 + 10.0;
    let rows = 2 + t.clocks.len();
    let row_h = 24.0;
    let top = 34.0;
    let height = top + row_h * rows as f64 + 10.0;
    let x_of = |d: DateTime<Tz>| -> f64 {
        let day = (d.date_naive() - start).num_days() as f64;
        let secs = chrono::Timelike::num_seconds_from_midnight(&d.time()) as f64;
        (left + (day + secs / 86_400.0) * col).clamp(left, width - 10.0)
    };
    let mut s = format!(
        r#"<svg class="axis" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="{a}" xmlns="http://www.w3.org/2000/svg"><title>{a}</title><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern></defs>"#,
        a = esc(ctx.t("办件工作日时间轴", "The item on a working-day axis"))
    );
    for i in 0..days {
        let date = start + Duration::days(i);
        let x = left + col * i as f64;
        let index = calendar.day_index(date);
        let (class, label) = match index {
            Some(ix) if calendar.is_holiday(ix) => {
                ("d-holiday", calendar.holiday_name(ix).map(|(zh, _)| zh.to_owned()).unwrap_or_default())
            }
            Some(ix) if calendar.is_adjusted_working_day(ix) => ("d-adjusted", "调休上班".to_owned()),
            Some(ix) if !calendar.is_working_day(ix) => ("d-rest", ctx.t("休息日", "rest day").to_owned()),
            Some(_) => ("d-work", ctx.t("工作日", "working day").to_owned()),
            None => ("d-unknown", ctx.t("日历未覆盖", "not in the calendar").to_owned()),
        };
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{top}" width="{col:.1}" height="{h:.1}" class="{class}"><title>{d} {w} {l}</title></rect>"#,
            h = row_h * rows as f64,
            d = date,
            w = view::weekday(chrono::Datelike::weekday(&date), ctx.lang),
            l = esc(&label)
        );
        if class == "d-adjusted" && col >= 10.0 {
            let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="mini">班</text>"#, x + col / 2.0, top - 4.0);
        }
        let every = ((40.0 / col).ceil() as i64).max(1);
        if i % every == 0 {
            let _ = write!(s, r#"<text x="{x:.1}" y="12" class="lbl">{}</text>"#, date.format("%m-%d"));
        }
    }
    // Lawful pauses, hatched over every row.
    for c in t.clocks.iter().filter(|c| c.name.starts_with("suspension:")) {
        if let Some(a) = instant(&c.started_at, tz) {
            let b = c.stopped_at.as_deref().and_then(|x| instant(x, tz)).or_else(|| instant(&t.as_of, tz)).unwrap_or(a);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{top}" width="{w:.1}" height="{h:.1}" fill="url(#hatch)" class="pause"><title>{l}</title></rect>"#,
                x = x_of(a),
                w = (x_of(b) - x_of(a)).max(2.0),
                h = row_h * rows as f64,
                l = esc(&format!("{} {}", ctx.t("依法暂停计时", "Lawful pause"), c.label_zh))
            );
        }
    }
    // Row 0: events.
    let y0 = top + 4.0;
    let _ =
        write!(s, r#"<text x="{}" y="{}" text-anchor="end" class="lbl">{}</text>"#, left - 6.0, y0 + 13.0, esc(ctx.t("事件", "Events")));
    for e in &t.events {
        if let Some(at) = instant(&e.occurred_at, tz) {
            let x = x_of(at);
            let _ = write!(
                s,
                r#"<path d="M{x:.1},{y0:.1} l5,8 l-5,8 l-5,-8 z" class="event"><title>{} {}</title></path>"#,
                esc(&ctx.time(&e.occurred_at)),
                esc(event_label(ctx, e.r#type))
            );
        }
    }
    // A row per clock.
    for (i, c) in t.clocks.iter().enumerate() {
        let y = top + row_h * (i + 1) as f64 + 4.0;
        let _ = write!(s, r#"<text x="{}" y="{:.1}" text-anchor="end" class="lbl">{}</text>"#, left - 6.0, y + 13.0, esc(&c.label_zh));
        if let (Some(a), Some(d)) = (instant(&c.started_at, tz), instant(&c.deadline, tz)) {
            let stop = c.stopped_at.as_deref().and_then(|x| instant(x, tz));
            let (xa, xd) = (x_of(a), x_of(d));
            let _ = write!(
                s,
                r#"<rect x="{xa:.1}" y="{y:.1}" width="{w:.1}" height="16" class="clock clock-{k}"><title>{l}: {s} → {e}</title></rect><line x1="{xd:.1}" x2="{xd:.1}" y1="{y1:.1}" y2="{y2:.1}" class="deadline"/>"#,
                w = (xd - xa).max(2.0),
                k = clock_class(c.status),
                l = esc(&c.label_zh),
                s = esc(&ctx.time(&c.started_at)),
                e = esc(&ctx.time(&c.deadline)),
                y1 = y - 3.0,
                y2 = y + 19.0
            );
            if let Some(stop) = stop {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" class="stop"><title>{}</title></circle>"#,
                    x_of(stop),
                    y + 8.0,
                    esc(ctx.t("停止", "stopped"))
                );
            }
        }
    }
    // Last row: alerts.
    let y = top + row_h * (rows - 1) as f64 + 4.0;
    let _ =
        write!(s, r#"<text x="{}" y="{:.1}" text-anchor="end" class="lbl">{}</text>"#, left - 6.0, y + 13.0, esc(ctx.t("告警", "Alerts")));
    for h in &t.history {
        if let Some(at) = instant(&h.triggered_at, tz) {
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="10" height="14" class="mark {} {}"><title>{} {} {}</title></rect>"#,
                x_of(at) - 5.0,
                view::level_class(h.level),
                if h.status == 2 { "retracted" } else { "" },
                esc(view::level_label(h.level, ctx.lang)),
                esc(kind_label(h.kind, ctx.lang)),
                esc(view::alert_status_label(h.status, ctx.lang))
            );
        }
    }
    // Now.
    if let Some(now) = instant(&t.as_of, tz) {
        let x = x_of(now);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="20" y2="{:.1}" class="now"/><text x="{x:.1}" y="30" class="mini" text-anchor="middle">{}</text>"#,
            height - 8.0,
            esc(ctx.t("现在", "now"))
        );
    }
    s.push_str("</svg>");
    s
}
