//! 实时监控, the live board: alert cards pushed as they fire and retract (server-sent
//! events over MonitorService.WatchAlerts, called as the user), filters, today's counts
//! per level and per department, an opt-in sound and desktop notice for red cards.

use super::{grpc_error, options};
use crate::view::{Ctx, frame, kind_label, level_label};
use crate::{App, Auth, html};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset};
use futures::StreamExt;
use jiancha_proto::v1::{AlertKind, AlertStatus, Level, WatchAlertsRequest};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The board's filters.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    department: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    kind: String,
}

fn level_of(name: &str) -> Level {
    Level::from_str_name(name).unwrap_or(Level::Unspecified)
}

fn kind_of(name: &str) -> AlertKind {
    AlertKind::from_str_name(name).unwrap_or(AlertKind::Unspecified)
}

/// Every alert kind with its label, for the filter.
pub fn kinds(ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
    (1..=18).filter_map(|k| AlertKind::try_from(k).ok().map(|kind| (kind.as_str_name(), kind_label(k, ctx.lang)))).collect()
}

/// The board.
pub async fn page(Auth(ctx): Auth, Query(f): Query<Filters>) -> Response {
    // Operators see no alerts (DOMAIN §6): their start page is the catalog.
    if ctx.user().role == jiancha_platform::auth::Role::Operator {
        return axum::response::Redirect::to("/catalog").into_response();
    }
    let scoped = ctx.user().scope().map(str::to_owned);
    let stream_url = super::query_string(&[
        ("department", scoped.as_deref().unwrap_or(&f.department)),
        ("service", &f.service),
        ("level", &f.level),
        ("kind", &f.kind),
    ]);
    let mut kind_choices = vec![("", ctx.t("全部类型", "All kinds"))];
    kind_choices.extend(kinds(&ctx));
    let body = html! {
        form class="filters" method="get" action="/" {
            @if scoped.is_none() {
                label { (ctx.t("部门", "Department")) " " input name="department" value=(f.department) size="8" placeholder="SCJG"; }
            }
            label { (ctx.t("事项", "Service")) " " input name="service" value=(f.service) size="10" placeholder="SCJG-001"; }
            label { (ctx.t("等级", "Level")) " "
                select name="level" { (options(&f.level, &[("", ctx.t("全部", "All")), ("WARNING", ctx.t("预警及以上", "Warning and up")), ("YELLOW", ctx.t("黄牌及以上", "Yellow and up")), ("RED", ctx.t("红牌", "Red"))])) }
            }
            label { (ctx.t("类型", "Kind")) " " select name="kind" { (options(&f.kind, &kind_choices)) } }
            button type="submit" { (ctx.t("筛选", "Filter")) }
            label class="opt" { input type="checkbox" id="red-alarm"; " " (ctx.t("红牌声音与桌面提醒", "Sound and desktop notice for red cards")) }
        }
        section class="counts" aria-label=(ctx.t("今日统计", "Today")) {
            h2 { (ctx.t("今日", "Today")) " " span id="today" {} }
            div class="tiles" {
                div class="tile lv-warning" { span class="n" id="n-WARNING" { "0" } " " (level_label(1, ctx.lang)) }
                div class="tile lv-yellow" { span class="n" id="n-YELLOW" { "0" } " " (level_label(2, ctx.lang)) }
                div class="tile lv-red" { span class="n" id="n-RED" { "0" } " " (level_label(3, ctx.lang)) }
            }
            table class="by-dept" {
                caption { (ctx.t("按部门", "By department")) }
                thead { tr { th scope="col" { (ctx.t("部门", "Department")) } th scope="col" { (level_label(1, ctx.lang)) } th scope="col" { (level_label(2, ctx.lang)) } th scope="col" { (level_label(3, ctx.lang)) } } }
                tbody id="by-dept" {}
            }
        }
        p class="live-status" id="live-status" role="status" aria-live="polite" { (ctx.t("正在连接…", "Connecting…")) }
        section id="board" class="board" data-stream={"/live/events" (stream_url)}
            data-lang=(if ctx.lang == crate::view::Lang::En { "en" } else { "zh" })
            aria-label=(ctx.t("告警", "Alerts")) aria-live="polite" {}
        template id="card-template" {
            article class="card" {
                header { span class="badge" {} " " strong class="kind" {} " " span class="state" {} }
                p class="what" { a class="item" {} " " span class="dept" {} " " span class="when" {} }
                p class="msg" {}
                details { summary { (ctx.t("推导过程", "Derivation")) } ol class="derivation" {} }
            }
        }
    };
    html(frame(&ctx, ctx.t("实时监控", "Live board"), body))
}

/// The stream: one `alert` event per update, its id the resume cursor (the browser sends
/// it back as Last-Event-ID when it reconnects, so nothing is missed or repeated).
pub async fn events(State(app): State<Arc<App>>, Auth(ctx): Auth, headers: HeaderMap, Query(f): Query<Filters>) -> Response {
    let cursor = headers.get("last-event-id").and_then(|v| v.to_str().ok()).unwrap_or("earliest").to_owned();
    let level = level_of(&f.level);
    let request = WatchAlertsRequest {
        cursor,
        department_codes: if f.department.is_empty() { vec![] } else { vec![f.department.clone()] },
        kinds: if f.kind.is_empty() { vec![] } else { vec![kind_of(&f.kind) as i32] },
        min_level: level as i32,
    };
    let stream = match app.backends.monitor(ctx.user()).watch_alerts(request).await {
        Ok(s) => s.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    metrics::gauge!(crate::LIVE_STREAMS).increment(1.0);
    let tz = app.tz;
    let lang = ctx.lang;
    let service = f.service.clone();
    let guard = StreamGuard;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let hello =
        futures::stream::once(async move { Ok::<_, std::convert::Infallible>(Event::default().event("hello").data(today.to_string())) });
    let updates = stream.take_while(|r| futures::future::ready(r.is_ok())).filter_map(move |r| {
        let _keep = &guard;
        let out = r.ok().and_then(|u| {
            let a = u.alert?;
            if !service.is_empty() && a.service_code.as_deref() != Some(service.as_str()) {
                return None;
            }
            let triggered = DateTime::<FixedOffset>::parse_from_rfc3339(&a.triggered_at).ok()?.with_timezone(&tz);
            let zh = lang == crate::view::Lang::Zh;
            let (message, derivation) = match (a.message, a.derivation) {
                (Some(m), Some(d)) => {
                    if zh {
                        (m.zh, d.zh)
                    } else {
                        (m.en, d.en)
                    }
                }
                (m, d) => (m.map(|m| m.zh).unwrap_or_default(), d.map(|d| d.zh).unwrap_or_default()),
            };
            let data = serde_json::json!({
                "id": a.alert_id,
                "retracted": a.status == AlertStatus::Retracted as i32,
                "state": crate::view::alert_status_label(a.status, lang),
                "level": Level::try_from(a.level).unwrap_or(Level::Unspecified).as_str_name(),
                "level_label": level_label(a.level, lang),
                "kind": kind_label(a.kind, lang),
                "item": a.item_id,
                "department": a.department_code,
                "service": a.service_code,
                "when": crate::view::fmt_time(&a.triggered_at, tz, lang),
                "day": triggered.date_naive().to_string(),
                "message": message,
                "derivation": derivation.split('；').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            });
            Some(Ok(Event::default().event("alert").id(u.cursor).data(data.to_string())))
        });
        futures::future::ready(out)
    });
    // The date again every minute, so that a board open past midnight starts the new
    // day's counts. The stream ends when the watch ends (the browser then reconnects).
    let days = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        Some((Some(Ok(Event::default().event("hello").data(today.to_string()))), ()))
    });
    let until_watch_ends = updates.map(Some).chain(futures::stream::once(async { None }));
    let events = futures::stream::select(until_watch_ends, days)
        .take_while(|e| futures::future::ready(e.is_some()))
        .filter_map(futures::future::ready);
    Sse::new(hello.chain(events)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// Counts the open live streams for the metrics.
struct StreamGuard;

impl Drop for StreamGuard {
    fn drop(&mut self) {
        metrics::gauge!(crate::LIVE_STREAMS).decrement(1.0);
    }
}
