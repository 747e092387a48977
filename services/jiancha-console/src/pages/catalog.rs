//! 事项与日历: the catalog and calendars in force; operators edit them, see every problem
//! at its line and field, preview which deadlines a change moves, then apply it.

use super::grpc_error;
use crate::view::{self, Ctx, frame, kind_label, level_badge};
use crate::{App, Auth, html};
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use jiancha_platform::auth::Role;
use jiancha_proto::v1::{
    GetCatalogRequest, ListCalendarsRequest, PreviewChangeRequest, PreviewChangeResponse, ReplaceCalendarRequest, ReplaceCatalogRequest,
};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use tonic::Status;
use tonic_types::StatusExt;

/// The edit form.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    /// `catalog` or a calendar's name.
    #[serde(default)]
    target: String,
    #[serde(default)]
    toml: String,
    #[serde(default)]
    version: String,
    /// `preview` or `apply`.
    #[serde(default)]
    op: String,
}

/// The page as it stands.
pub async fn page(State(app): State<Arc<App>>, Auth(ctx): Auth) -> Response {
    render(&app, &ctx, None).await
}

/// What the last preview or apply said.
enum Outcome {
    Preview(ChangeForm, PreviewChangeResponse),
    Refused(ChangeForm, Status),
}

async fn render(app: &App, ctx: &Ctx, outcome: Option<Outcome>) -> Response {
    let user = ctx.user().clone();
    let mut client = app.backends.catalog(&user);
    let catalog = match client.get_catalog(GetCatalogRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(ctx, &status),
    };
    let calendars = match client.list_calendars(ListCalendarsRequest {}).await {
        Ok(r) => r.into_inner().calendars,
        Err(status) => return grpc_error(ctx, &status),
    };
    let operator = user.role == Role::Operator;
    let can_preview = user.role != Role::Department;
    let edited = match &outcome {
        Some(Outcome::Preview(f, _) | Outcome::Refused(f, _)) => Some(f),
        None => None,
    };
    let editor = |target: &str, text: &str, version: &str| -> Markup {
        let (text, version) = match edited.filter(|f| f.target == target) {
            Some(f) => (f.toml.as_str(), f.version.as_str()),
            None => (text, version),
        };
        html! {
            form method="post" action="/catalog" class="stack editor" {
                (ctx.csrf_field())
                input type="hidden" name="target" value=(target);
                input type="hidden" name="version" value=(version);
                label { (ctx.t("TOML 文本", "TOML text")) textarea name="toml" rows="18" spellcheck="false" readonly[!operator] { (text) } }
                @if can_preview { div class="row" {
                    button type="submit" name="op" value="preview" { (ctx.t("预览影响", "Preview the effect")) }
                    @if operator { button type="submit" name="op" value="apply" class="primary" { (ctx.t("应用", "Apply")) } }
                } }
            }
        }
    };
    let body = html! {
        @if let Some(o) = &outcome { (outcome_view(ctx, o)) }
        h2 { (ctx.t("事项目录", "Service catalog")) }
        p class="meta" { (catalog.services) " " (ctx.t("个事项", "services")) " · " (catalog.source) " · " (ctx.t("版本", "version")) " " code { (catalog.version.get(..12).unwrap_or(&catalog.version)) } }
        (editor("catalog", &catalog.toml, &catalog.version))
        h2 { (ctx.t("工作日历", "Calendars")) }
        @for cal in &calendars {
            details open[edited.is_some_and(|f| f.target == cal.name)] {
                summary { strong { (cal.name) } " · " (cal.source) " · " (ctx.t("已发布年份", "years")) " " (cal.years.first().copied().unwrap_or_default()) "–" (cal.years.last().copied().unwrap_or_default()) }
                (editor(&cal.name, &cal.toml, &cal.version))
            }
        }
    };
    html(frame(ctx, ctx.t("事项与日历", "Catalog and calendars"), body))
}

fn line_of(text: &str) -> Option<usize> {
    let at = text.find("line ")?;
    text[at + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn outcome_view(ctx: &Ctx, outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Refused(form, status) => {
            let violations: Vec<(String, String)> = status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
                .unwrap_or_default();
            let lines: Vec<usize> =
                violations.iter().filter_map(|(f, d)| line_of(f).or_else(|| line_of(d))).chain(line_of(status.message())).collect();
            html! {
                div class="notice error" role="alert" {
                    p { strong { (ctx.t("未通过校验，未作任何更改：", "Not valid; nothing was changed: ")) } (status.message()) }
                    @if !violations.is_empty() { ul { @for (f, d) in &violations { li { code { (f) } "：" (d) } } } }
                }
                @if !lines.is_empty() {
                    pre class="excerpt" { @for (i, l) in form.toml.lines().enumerate() {
                        @let n = i + 1;
                        @if lines.iter().any(|&x| n + 2 >= x && n <= x + 2) {
                            span class=[lines.contains(&n).then_some("bad")] { (format!("{n:>4} │ {l}")) "\n" }
                        }
                    } }
                }
            }
        }
        Outcome::Preview(form, p) => html! {
            section class="notice info" role="status" {
                h2 { (ctx.t("变更预览", "Preview")) " · " (if form.target == "catalog" { ctx.t("事项目录", "catalog") } else { &form.target }) }
                p { (ctx.t("检查办件", "Items examined")) " " (p.items_examined) "，" (ctx.t("期限变化", "deadlines moved in")) " " strong { (p.items_changed) } " " (ctx.t("件。尚未应用。", "items. Not applied yet.")) }
                @if !p.items.is_empty() {
                    table class="list" {
                        thead { tr { th scope="col" { (ctx.t("办件", "Item")) } th scope="col" { (ctx.t("时限", "Clock")) } th scope="col" { (ctx.t("原期限", "Before")) } th scope="col" { (ctx.t("新期限", "After")) } th scope="col" { (ctx.t("将产生的告警", "Alerts it would publish")) } } }
                        tbody { @for it in p.items.iter().take(200) { @for (i, d) in it.deadlines.iter().enumerate() { tr {
                            td { @if i == 0 { a href={"/items/" (view::urlencode(&it.department_code)) "/" (view::urlencode(&it.item_id))} { (it.item_id) } } }
                            td { code { (d.clock) } }
                            td { (if d.before.is_empty() { "—".to_owned() } else { ctx.time(&d.before) }) }
                            td { (if d.after.is_empty() { "—".to_owned() } else { ctx.time(&d.after) }) }
                            td { @if i == 0 { @for a in &it.alerts { (level_badge(a.level, ctx.lang)) " " (kind_label(a.kind, ctx.lang)) " " (view::alert_status_label(a.status, ctx.lang)) br; } } }
                        } } } }
                    }
                }
            }
        },
    }
}

/// Preview or apply a change.
pub async fn change(State(app): State<Arc<App>>, auth: Auth, Form(f): Form<ChangeForm>) -> Response {
    if let Some(refused) = auth.refuse_csrf(&f.csrf) {
        return refused;
    }
    let ctx = auth.0;
    let mut client = app.backends.catalog(ctx.user());
    let is_catalog = f.target == "catalog";
    if f.op == "apply" {
        let result = if is_catalog {
            client.replace_catalog(ReplaceCatalogRequest { toml: f.toml.clone(), expected_version: f.version.clone() }).await.map(|_| ())
        } else {
            client
                .replace_calendar(ReplaceCalendarRequest {
                    name: f.target.clone(),
                    toml: f.toml.clone(),
                    expected_version: f.version.clone(),
                })
                .await
                .map(|_| ())
        };
        return match result {
            Ok(()) => Redirect::to("/catalog").into_response(),
            Err(status)
                if matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::Aborted | tonic::Code::FailedPrecondition) =>
            {
                render(&app, &ctx, Some(Outcome::Refused(f, status))).await
            }
            Err(status) => grpc_error(&ctx, &status),
        };
    }
    let request = if is_catalog {
        PreviewChangeRequest { catalog_toml: f.toml.clone(), calendar_tomls: vec![] }
    } else {
        PreviewChangeRequest { catalog_toml: String::new(), calendar_tomls: vec![f.toml.clone()] }
    };
    match client.preview_change(request).await {
        Ok(r) => render(&app, &ctx, Some(Outcome::Preview(f, r.into_inner()))).await,
        Err(status) if status.code() == tonic::Code::InvalidArgument => render(&app, &ctx, Some(Outcome::Refused(f, status))).await,
        Err(status) => grpc_error(&ctx, &status),
    }
}
