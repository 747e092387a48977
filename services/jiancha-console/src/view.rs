//! What every page shares: the frame with its navigation, the two languages, times in the
//! calendar's zone with the weekday, and the labels of levels, kinds and statuses — never
//! colour alone: every card says 预警, 黄牌 or 红牌 in words.

use crate::session::User;
use chrono::{DateTime, Datelike, FixedOffset};
use chrono_tz::Tz;
use jiancha_platform::auth::Role;
use jiancha_proto::v1::{AlertKind, AlertStatus, CaseStatus, Disposition, ItemStatus, Level};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The page language: Chinese unless the user switched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// 中文.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// From the `lang` cookie's value.
    pub fn from_cookie(value: Option<&str>) -> Lang {
        if value == Some("en") { Lang::En } else { Lang::Zh }
    }
}

/// What a page is rendered for.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The user, None on public pages.
    pub user: Option<User>,
    /// The session's CSRF token (empty without a session).
    pub csrf: String,
    /// Language.
    pub lang: Lang,
    /// Display zone.
    pub tz: Tz,
    /// The path, for the active tab and the language switch.
    pub path: String,
}

impl Ctx {
    /// The logged-in user (pages behind login only get a Ctx with one).
    pub fn user(&self) -> &User {
        // Handlers behind login build Ctx from a session; public pages never call this.
        self.user.as_ref().unwrap_or(&ANONYMOUS)
    }

    /// Shorthand for `lang.t`.
    pub fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.t(zh, en)
    }

    /// The hidden CSRF field every form that changes something carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// An RFC 3339 instant as `2026-12-03 周四 09:00` in the display zone.
    pub fn time(&self, rfc3339: &str) -> String {
        fmt_time(rfc3339, self.tz, self.lang)
    }
}

static ANONYMOUS: User = User { subject: String::new(), name: String::new(), role: Role::Auditor, department: None };

/// 周一 … 周日 / Mon … Sun.
pub fn weekday(d: chrono::Weekday, lang: Lang) -> &'static str {
    const ZH: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
    const EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let i = d.num_days_from_monday() as usize;
    match lang {
        Lang::Zh => ZH[i],
        Lang::En => EN[i],
    }
}

/// `2026-12-03 周四 09:00`; the text as given when it is not an instant.
pub fn fmt_time(rfc3339: &str, tz: Tz, lang: Lang) -> String {
    match DateTime::<FixedOffset>::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&tz);
            format!("{} {} {}", t.format("%Y-%m-%d"), weekday(t.weekday(), lang), t.format("%H:%M"))
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// A deadline as an applicant reads it: a deadline at midnight is the end of the day
/// before (`2026-12-16 周三 当日结束`), as the derivations say it.
pub fn fmt_deadline(rfc3339: &str, tz: Tz, lang: Lang) -> String {
    match DateTime::<FixedOffset>::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&tz);
            if chrono::Timelike::num_seconds_from_midnight(&t.time()) == 0 {
                let day = t.date_naive().pred_opt().unwrap_or(t.date_naive());
                match lang {
                    Lang::Zh => format!("{} {} 当日结束", day.format("%Y-%m-%d"), weekday(day.weekday(), lang)),
                    Lang::En => format!("end of {} ({})", day.format("%Y-%m-%d"), weekday(day.weekday(), lang)),
                }
            } else {
                fmt_time(rfc3339, tz, lang)
            }
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// Level label: 预警 / 黄牌 / 红牌.
pub fn level_label(level: i32, lang: Lang) -> &'static str {
    match Level::try_from(level).unwrap_or(Level::Unspecified) {
        Level::Warning => lang.t("预警", "Warning"),
        Level::Yellow => lang.t("黄牌", "Yellow card"),
        Level::Red => lang.t("红牌", "Red card"),
        Level::Unspecified => lang.t("无", "None"),
    }
}

/// The CSS class of a level.
pub fn level_class(level: i32) -> &'static str {
    match Level::try_from(level).unwrap_or(Level::Unspecified) {
        Level::Warning => "lv-warning",
        Level::Yellow => "lv-yellow",
        Level::Red => "lv-red",
        Level::Unspecified => "lv-none",
    }
}

/// A level badge: the colour and the word.
pub fn level_badge(level: i32, lang: Lang) -> Markup {
    html! { span class={"badge " (level_class(level))} { (level_label(level, lang)) } }
}

/// Alert kinds in Chinese and English.
pub fn kind_label(kind: i32, lang: Lang) -> &'static str {
    use AlertKind as K;
    let (zh, en) = match K::try_from(kind).unwrap_or(K::Unspecified) {
        K::AcceptanceOverdue => ("受理超期", "Acceptance overdue"),
        K::CorrectionRepeated => ("多次补正", "Repeated correction"),
        K::CorrectionLate => ("补正告知超期", "Late correction notice"),
        K::PromisedDeadlineNear => ("承诺时限临近", "Promised deadline near"),
        K::PromisedOverdue => ("超承诺时限", "Promised limit passed"),
        K::StatutoryOverdue => ("超法定时限", "Statutory limit passed"),
        K::StepOverdue => ("环节超时", "Step overdue"),
        K::SuspensionIrregular => ("违规暂停", "Irregular suspension"),
        K::SuspensionOverdue => ("特别程序超期", "Suspension overdue"),
        K::ExtensionIrregular => ("违规延期", "Irregular extension"),
        K::ReasonMissing => ("缺少理由", "Reason missing"),
        K::FeeIrregular => ("违规收费", "Irregular fee"),
        K::ProcedureViolation => ("程序违规", "Procedure violation"),
        K::SeparationOfDuties => ("审批分离违规", "Separation of duties"),
        K::DeliveryOverdue => ("送达超期", "Delivery overdue"),
        K::ServiceNotInCatalog => ("事项不在目录", "Service not in catalog"),
        K::LateReport => ("迟报", "Late report"),
        K::CalendarMissing => ("缺少日历", "Calendar missing"),
        K::Unspecified => ("未知", "Unknown"),
    };
    lang.t(zh, en)
}

/// Item status words.
pub fn item_status_label(status: i32, lang: Lang) -> &'static str {
    use ItemStatus as S;
    let (zh, en) = match S::try_from(status).unwrap_or(S::Unspecified) {
        S::Received => ("已申请", "Received"),
        S::CorrectionPending => ("待补正", "Correction pending"),
        S::Accepted => ("已受理", "Accepted"),
        S::Suspended => ("特别程序中", "Suspended"),
        S::Decided => ("已决定", "Decided"),
        S::Closed => ("已办结", "Closed"),
        S::Unspecified => ("未知", "Unknown"),
    };
    lang.t(zh, en)
}

/// Case status words.
pub fn case_status_label(status: i32, lang: Lang) -> &'static str {
    use CaseStatus as S;
    let (zh, en) = match S::try_from(status).unwrap_or(S::Unspecified) {
        S::CaseFiled => ("投诉待受理", "Complaint filed"),
        S::CaseOpen => ("待说明", "Open"),
        S::CaseReplied => ("已说明", "Replied"),
        S::CaseResolved => ("已处理", "Resolved"),
        S::Unspecified => ("未知", "Unknown"),
    };
    lang.t(zh, en)
}

/// Disposition words.
pub fn disposition_label(d: i32, lang: Lang) -> &'static str {
    use Disposition as D;
    let (zh, en) = match D::try_from(d).unwrap_or(D::Unspecified) {
        D::NoFault => ("不予追究", "No fault"),
        D::Rectify => ("责令整改", "Rectify"),
        D::EfficiencyWarning => ("效能告诫", "Efficiency warning"),
        D::Criticism => ("通报批评", "Public criticism"),
        D::Admonition => ("诫勉谈话", "Admonition"),
        D::Referred => ("移送纪委监委", "Referred"),
        D::Unspecified => ("—", "—"),
    };
    lang.t(zh, en)
}

/// FIRED / RETRACTED words.
pub fn alert_status_label(s: i32, lang: Lang) -> &'static str {
    match AlertStatus::try_from(s).unwrap_or(AlertStatus::Unspecified) {
        AlertStatus::Fired => lang.t("生效", "Fired"),
        AlertStatus::Retracted => lang.t("已撤回", "Retracted"),
        AlertStatus::Unspecified => "—",
    }
}

/// Role words.
pub fn role_label(role: Role, lang: Lang) -> &'static str {
    match role {
        Role::Inspector => lang.t("纪检监察", "Inspector"),
        Role::Department => lang.t("部门", "Department"),
        Role::Operator => lang.t("运维", "Operator"),
        Role::Auditor => lang.t("审计", "Auditor"),
        Role::Intake => lang.t("投诉受理系统", "Complaint intake"),
    }
}

/// The pages a role may open: (path, 中文, English).
pub fn tabs(role: Role) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut t = Vec::new();
    if role != Role::Operator {
        t.push(("/", "实时监控", "Live board"));
        t.push(("/items", "办件", "Items"));
        t.push(("/cases", "问责", "Cases"));
    }
    t.push(("/stats", "绩效", "Performance"));
    t.push(("/catalog", "事项与日历", "Catalog & calendars"));
    if matches!(role, Role::Auditor | Role::Inspector) {
        t.push(("/audit", "审计", "Audit"));
    }
    t
}

/// The frame of a page behind login.
pub fn frame(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let lang_attr = ctx.t("zh-CN", "en");
    html! {
        (DOCTYPE)
        html lang=(lang_attr) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (ctx.t("电子监察", "jiancha")) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { (ctx.t("跳到正文", "Skip to content")) }
                header class="top" {
                    span class="brand" { "监察 " small { (ctx.t("电子监察系统", "Electronic supervision")) } }
                    @if let Some(user) = &ctx.user {
                        nav aria-label=(ctx.t("主导航", "Main")) {
                            @for (path, zh, en) in tabs(user.role) {
                                @let active = if path == "/" { ctx.path == "/" } else { ctx.path.starts_with(path) };
                                a href=(path) aria-current=[active.then_some("page")] { (ctx.t(zh, en)) }
                            }
                        }
                        div class="who" {
                            span { (user.name) " · " (role_label(user.role, ctx.lang))
                                @if let Some(d) = user.scope() { " " (d) } }
                            (lang_switch(ctx))
                            form method="post" action="/logout" class="inline" {
                                (ctx.csrf_field())
                                button type="submit" { (ctx.t("退出", "Log out")) }
                            }
                        }
                    } @else {
                        div class="who" { (lang_switch(ctx)) }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn lang_switch(ctx: &Ctx) -> Markup {
    let (to, label) = match ctx.lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    html! { a class="lang" href={"/lang?to=" (to) "&back=" (urlencode(&ctx.path))} lang=[(to == "zh").then_some("zh-CN")] { (label) } }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A derivation shown as its sentences, one per line (they are joined with `；`).
pub fn derivation(text: &str) -> Markup {
    html! {
        ol class="derivation" {
            @for part in text.split('；').map(str::trim).filter(|p| !p.is_empty()) {
                li { (part.trim_end_matches('。')) }
            }
        }
    }
}

/// Raw markup (SVG drawn by [`crate::svg`]).
pub fn raw(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

/// A notice box.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class={"notice " (kind)} role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_the_display_zone_and_the_weekday() {
        assert_eq!(fmt_time("2026-12-03T01:30:00Z", chrono_tz::Asia::Shanghai, Lang::Zh), "2026-12-03 周四 09:30");
        assert_eq!(fmt_time("2026-12-06T23:30:00+08:00", chrono_tz::Asia::Shanghai, Lang::En), "2026-12-06 Sun 23:30");
        assert_eq!(fmt_time("not a time", chrono_tz::Asia::Shanghai, Lang::Zh), "not a time");
        assert_eq!(fmt_deadline("2026-12-17T00:00:00+08:00", chrono_tz::Asia::Shanghai, Lang::Zh), "2026-12-16 周三 当日结束");
        assert_eq!(fmt_deadline("2026-12-17T00:00:00+08:00", chrono_tz::Asia::Shanghai, Lang::En), "end of 2026-12-16 (Wed)");
        assert_eq!(fmt_deadline("2026-12-17T17:30:00+08:00", chrono_tz::Asia::Shanghai, Lang::Zh), "2026-12-17 周四 17:30");
    }

    #[test]
    fn levels_are_words_not_only_colours() {
        assert_eq!(level_label(3, Lang::Zh), "红牌");
        assert_eq!(level_label(2, Lang::Zh), "黄牌");
        assert_eq!(level_label(1, Lang::Zh), "预警");
        let badge = level_badge(3, Lang::En).into_string();
        assert!(badge.contains("lv-red") && badge.contains("Red card"), "{badge}");
    }

    #[test]
    fn derivations_are_split_into_steps_and_escaped() {
        let d = derivation("起算：受理；法定时限20个工作日；期限届满：<b>。").into_string();
        assert_eq!(d.matches("<li>").count(), 3);
        assert!(d.contains("&lt;b&gt;"), "{d}");
        assert_eq!(urlencode("SCJG 1/办"), "SCJG%201/%E5%8A%9E");
    }
}
