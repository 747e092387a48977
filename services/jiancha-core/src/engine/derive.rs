//! The words of an alert: a one-sentence message and the derivation — the events and
//! calendar facts that produced it — in Chinese and English, so that the department it
//! accuses can check it by hand. Built only when an alert is emitted.

use super::item::{Ev, Item};
use super::rules::*;
use crate::alert::{AlertKind, Bilingual};
use crate::calendar::Calendar;
use crate::catalog::DayKind;
use crate::clock::{ClockChange, Counter};
use crate::event::{EventType, LawfulSuspension};
use crate::intern::Interner;
use crate::time::{HOUR_MS, Short, Timestamp};
use std::fmt::{self, Write as _};

/// Everything the texts may cite.
pub(crate) struct View<'a> {
    pub item: &'a Item,
    pub resolved: Option<&'a Resolved>,
    pub names: &'a Interner,
    pub calendar: &'a Calendar,
    pub changes: &'a [ClockChange],
    pub step_changes: &'a [ClockChange],
    pub late_limit_ms: i64,
}

impl View<'_> {
    fn t(&self, at: i64) -> Short {
        Timestamp(at).short(self.calendar.tz())
    }

    fn ev(&self, i: u32) -> &Ev {
        &self.item.events[i as usize]
    }

    fn eid(&self, i: u32) -> &str {
        self.item.event_id(self.ev(i))
    }

    fn actor(&self, e: &Ev) -> &str {
        self.names.name(e.actor)
    }

    fn step_name(&self, k: u16) -> &str {
        self.resolved.map_or("?", |r| &r.service.steps[k as usize].name)
    }

    fn suspension_kind(&self, e: &Ev) -> (String, String) {
        let name = self.names.name(e.suspension_name()).to_string();
        match LawfulSuspension::parse(&name) {
            Some(k) => (format!("{}（{}）", k.zh(), name), name),
            None => (name.clone(), name),
        }
    }
}

fn days(ms: i64, unit: i64) -> String {
    if unit > 0 && ms % unit == 0 {
        (ms / unit).to_string()
    } else {
        format!("{:.2}", ms as f64 / unit.max(1) as f64).trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn kind_zh(kind: DayKind) -> &'static str {
    match kind {
        DayKind::Working => "个工作日",
        DayKind::Natural => "个自然日",
    }
}

fn kind_en(kind: DayKind) -> &'static str {
    match kind {
        DayKind::Working => "working day(s)",
        DayKind::Natural => "natural day(s)",
    }
}

/// The one-sentence message of a fact.
pub(crate) fn message(v: &View<'_>, f: &Fact) -> Bilingual {
    let item = v.item.item_id();
    let at = v.t(f.at);
    let unit_of = |tr: &Trace| match tr.kind {
        DayKind::Working => v.calendar.day_len(),
        DayKind::Natural => crate::time::DAY_MS,
    };
    let budget = |f: &Fact| f.trace.map(|tr| (days(tr.budget, unit_of(&tr)), tr.kind)).unwrap_or(("?".into(), DayKind::Working));
    let (zh, en) = match f.kind {
        AlertKind::AcceptanceOverdue => {
            let (n, _) = budget(f);
            let start = f.trace.map_or(String::new(), |tr| v.t(tr.start).to_string());
            (
                format!(
                    "办件{item}自{start}收件起{n}个工作日内未受理、未作出不予受理决定、也未一次性告知补正，受理期限已于{at}届满，依法视为自{start}起受理"
                ),
                format!(
                    "Item {item} was neither accepted, refused nor sent a correction notice within {n} working days of {start}; the acceptance window ended at {at} and the item is deemed accepted as of {start}"
                ),
            )
        }
        AlertKind::CorrectionRepeated => (
            format!("办件{item}第{}次告知补正，违反一次性告知要求（行政许可法第三十二条、第七十二条）", f.info),
            format!("Item {item}: correction notice number {}; missing materials must be requested once (ALL arts. 32, 72(4))", f.info),
        ),
        AlertKind::CorrectionLate => (
            format!("办件{item}在受理期限届满后或已受理后于{at}才告知补正"),
            format!("Item {item}: correction requested at {at}, after the acceptance window ended or after acceptance"),
        ),
        AlertKind::PromisedDeadlineNear => {
            let margin = v.resolved.map_or("?".into(), |r| days(i64::from(r.service.warn_millidays), 1000));
            (
                format!("办件{item}承诺时限剩余不足{margin}日（预警时点{at}），尚未作出决定"),
                format!("Item {item}: less than {margin} day(s) of the promised limit remain (warning point {at}) and no decision is made"),
            )
        }
        AlertKind::PromisedOverdue | AlertKind::StatutoryOverdue => {
            let (n, k) = budget(f);
            let (zh, en) = if f.kind == AlertKind::PromisedOverdue { ("承诺时限", "promised") } else { ("法定时限", "statutory") };
            let ext = extension_days(v, f);
            let (ext_zh, ext_en) = if !ext.is_empty() {
                (format!("（含延期{ext}日）"), format!(" (with a {ext}-day extension)"))
            } else {
                Default::default()
            };
            if n == "0" {
                (
                    format!("即办件{item}未在受理当日办结（{zh}：当日办结，截止{at}）"),
                    format!("Instant item {item} was not decided on the day it was accepted ({en} limit: the same day, ended {at})"),
                )
            } else {
                (
                    format!("办件{item}超过{zh}{n}{}{ext_zh}，截止{at}仍未作出决定", kind_zh(k)),
                    format!("Item {item} passed its {en} limit of {n} {}{ext_en} at {at} without a decision", kind_en(k)),
                )
            }
        }
        AlertKind::StepOverdue => {
            let (n, k) = budget(f);
            let step = match f.trigger {
                Trigger::Step(s) => v.step_name(s),
                _ => "?",
            };
            (
                format!("办件{item}「{step}」环节超过时限{n}{}，截止{at}未办结", kind_zh(k)),
                format!("Item {item}: step \"{step}\" passed its limit of {n} {} at {at} without completing", kind_en(k)),
            )
        }
        AlertKind::SuspensionIrregular => {
            let (kz, ke) = event_index(f).map(|i| v.suspension_kind(v.ev(i))).unwrap_or_default();
            (
                format!("办件{item}以「{kz}」为由挂起，不属于该事项依法可中止计时的特别程序，时限照常计算"),
                format!(
                    "Item {item} was suspended for \"{ke}\", which is not a lawful suspension for this service; its clocks keep running"
                ),
            )
        }
        AlertKind::SuspensionOverdue => {
            let (n, _) = budget(f);
            let (kz, ke) = match f.trigger {
                Trigger::StartedBy(i) => v.suspension_kind(v.ev(i)),
                _ => Default::default(),
            };
            (
                format!("办件{item}特别程序「{kz}」预计{n}个工作日，截止{at}仍未恢复或作出决定，时限恢复计算"),
                format!("Item {item}: the {ke} suspension expected to take {n} working days did not end by {at}; the clocks run again"),
            )
        }
        AlertKind::ExtensionIrregular => {
            let (zh, en) = extension_reasons(v, f);
            (format!("办件{item}违规延期：{zh}（行政许可法第四十二条）"), format!("Item {item}: irregular extension: {en} (ALL art. 42)"))
        }
        AlertKind::ReasonMissing => {
            let denial = event_index(f).is_some_and(|i| v.ev(i).ty == EventType::Decided);
            let (zh, en) = if denial {
                ("作出不予许可决定", "denied the application")
            } else {
                ("作出不予受理决定", "refused to accept the application")
            };
            (
                format!("办件{item}于{at}{zh}但未说明理由（行政许可法第三十八条、第七十二条）"),
                format!("Item {item} {en} at {at} without stating a reason (ALL arts. 38, 72(7))"),
            )
        }
        AlertKind::FeeIrregular => {
            let cap = v.resolved.map_or(0, |r| r.service.fee_cap_fen);
            (
                format!("办件{item}累计收费{}元，超过该事项收费上限{}元（行政许可法第五十八条、第七十五条）", yuan(f.info), yuan(cap)),
                format!("Item {item}: fees reached CNY {}, over the service's cap of CNY {} (ALL arts. 58, 75)", yuan(f.info), yuan(cap)),
            )
        }
        AlertKind::ProcedureViolation => {
            let ty = event_index(f).map_or(EventType::Submitted, |i| v.ev(i).ty);
            let (zh, en) = match f.info {
                VIOLATION_BEFORE_ACCEPTANCE => ("发生在受理之前", "happened before the item was accepted"),
                VIOLATION_AFTER_DECISION => ("发生在作出决定之后", "happened after the decision"),
                VIOLATION_AFTER_CLOSURE => ("发生在办件办结之后（办结后修改）", "happened after the item was closed"),
                _ => ("发生时尚无准予许可决定", "happened with no approval decision"),
            };
            (
                format!("办件{item}的{}（{}）{zh}，违反法定程序", ty.zh(), ty.as_str()),
                format!("Item {item}: {} {en}, against the lawful procedure", ty.as_str()),
            )
        }
        AlertKind::SeparationOfDuties => {
            let actor = event_index(f).map_or("", |i| v.actor(v.ev(i)));
            let step = v.resolved.and_then(|r| r.service.review_step).map_or("?", |k| v.step_name(k as u16));
            (
                format!("办件{item}的决定人「{actor}」同时办理了「{step}」环节，审批职责未分离"),
                format!("Item {item}: the decider \"{actor}\" also performed step \"{step}\"; review and decision were not separated"),
            )
        }
        AlertKind::DeliveryOverdue => {
            let (n, _) = budget(f);
            (
                format!("办件{item}准予许可后{n}个工作日内未送达，截止{at}（行政许可法第四十四条）"),
                format!("Item {item}: not delivered within {n} working days of the approval; the limit ended at {at} (ALL art. 44)"),
            )
        }
        AlertKind::ServiceNotInCatalog => {
            let code = v.names.name(v.item.service);
            match (f.info, v.resolved.and_then(|r| r.service.cancelled_on)) {
                (1, Some(date)) => (
                    format!("办件{item}申请的事项「{code}」已于{date}取消，仍在受理（取消事项反弹）"),
                    format!("Item {item} applies for service \"{code}\", abolished on {date}"),
                ),
                _ => (
                    format!("办件{item}申请的事项「{code}」不在事项目录中"),
                    format!("Item {item} applies for service \"{code}\", which is not in the catalog"),
                ),
            }
        }
        AlertKind::LateReport => {
            let delay = duration(f.info as i64);
            (
                format!(
                    "办件{item}的事件发生于{at}，{delay}后才报送，超过报送时限{}（数据不实时，存在补录或体外循环风险）",
                    duration(v.late_limit_ms)
                ),
                format!(
                    "Item {item}: an event of {at} reached the system {delay} later, over the {} reporting limit",
                    duration(v.late_limit_ms)
                ),
            )
        }
        AlertKind::CalendarMissing => (String::new(), String::new()),
    };
    Bilingual { zh, en }
}

/// The derivation of a fact: the facts that produced it.
pub(crate) fn derivation(v: &View<'_>, f: &Fact) -> Bilingual {
    let mut zh = Lines::new("；");
    let mut en = Lines::new("; ");
    if let Some(i) = event_index(f) {
        let e = v.ev(i);
        let actor = v.actor(e);
        let by_zh = if actor.is_empty() { String::new() } else { format!("，经办人{actor}") };
        let by_en = if actor.is_empty() { String::new() } else { format!(" by {actor}") };
        zh.push(format_args!("依据事件{}（{}，发生于{}{by_zh}）", v.eid(i), e.ty.zh(), v.t(e.at)));
        en.push(format_args!("from event {} ({}{by_en} at {})", v.eid(i), e.ty.as_str(), v.t(e.at)));
        event_rule_facts(v, f, e, &mut zh, &mut en);
    }
    if let Some(tr) = f.trace {
        clock_facts(v, f, &tr, &mut zh, &mut en);
    }
    Bilingual { zh: zh.end("。"), en: en.end(".") }
}

/// Parts written into one text as they come, with a separator between them: the lines of
/// a derivation, the reasons of an irregular extension.
pub(crate) struct Lines {
    text: String,
    separator: &'static str,
    empty: bool,
}

impl Lines {
    fn new(separator: &'static str) -> Lines {
        Lines { text: String::with_capacity(256), separator, empty: true }
    }

    fn push(&mut self, line: impl Line) {
        if !self.empty {
            self.text.push_str(self.separator);
        }
        self.empty = false;
        line.write_to(&mut self.text);
    }

    fn end(mut self, end: &str) -> String {
        self.text.push_str(end);
        self.text
    }
}

/// What [`Lines::push`] takes: a fixed text, copied as it is, or `format_args!`, written
/// straight into the text (through `write!` it went through the formatter twice).
pub(crate) trait Line {
    fn write_to(self, text: &mut String);
}

impl Line for &str {
    fn write_to(self, text: &mut String) {
        text.push_str(self);
    }
}

impl Line for fmt::Arguments<'_> {
    fn write_to(self, text: &mut String) {
        text.write_fmt(self).expect("writing to a String");
    }
}

fn event_index(f: &Fact) -> Option<u32> {
    match f.trigger {
        Trigger::Event(i) => Some(i),
        _ => None,
    }
}

fn event_rule_facts(v: &View<'_>, f: &Fact, e: &Ev, zh: &mut Lines, en: &mut Lines) {
    let earlier = |ty: EventType| -> Vec<String> {
        v.item
            .events
            .iter()
            .filter(|x| x.ty == ty && (x.at, x.ty) <= (e.at, e.ty))
            .map(|x| format!("{} {}", v.item.event_id(x), v.t(x.at)))
            .collect()
    };
    match f.kind {
        AlertKind::CorrectionRepeated => {
            let list = earlier(EventType::CorrectionRequested).join("、");
            zh.push(format_args!("本件补正告知依次为：{list}"));
            en.push(format_args!("correction notices so far: {list}"));
        }
        AlertKind::CorrectionLate => {
            zh.push("告知补正时本件已受理或视为受理");
            en.push("when the notice was given the item was already accepted or deemed accepted");
        }
        AlertKind::FeeIrregular => {
            let list = earlier(EventType::FeeCharged);
            let cap = v.resolved.map_or(0, |r| r.service.fee_cap_fen);
            zh.push(format_args!("收费记录：{}；累计{}分，上限{}分", list.join("、"), f.info, cap));
            en.push(format_args!("fees: {}; total {} fen, cap {} fen", list.join(", "), f.info, cap));
        }
        AlertKind::ExtensionIrregular => {
            let approver = v.names.name(e.approver());
            let max = v.resolved.map_or(0, |r| r.service.extension_max_days);
            zh.push(format_args!("延期{}日，批准人「{approver}」，该事项延期上限{max}日", e.days()));
            en.push(format_args!("extension of {} days approved by \"{approver}\"; the service allows at most {max} days", e.days()));
        }
        AlertKind::SeparationOfDuties => {
            let review = v.resolved.and_then(|r| r.service.review_step);
            let list: Vec<String> = v
                .item
                .events
                .iter()
                .filter(|x| {
                    x.ty == EventType::StepCompleted
                        && x.actor == e.actor
                        && review.is_some_and(|k| v.resolved.is_some_and(|r| r.step_names.get(k) == Some(&(x.arg as u32))))
                })
                .map(|x| format!("{} {}", v.item.event_id(x), v.t(x.at)))
                .collect();
            zh.push(format_args!("同一人办结审核环节的事件：{}", list.join("、")));
            en.push(format_args!("review step completed by the same official in: {}", list.join(", ")));
        }
        AlertKind::LateReport => {
            let arrived = e.at + i64::from(e.delay_ms);
            zh.push(format_args!(
                "到达时间{}，迟报{}，报送时限{}",
                v.t(arrived),
                duration(i64::from(e.delay_ms)),
                duration(v.late_limit_ms)
            ));
            en.push(format_args!(
                "arrived {}, {} late; the limit is {}",
                v.t(arrived),
                duration(i64::from(e.delay_ms)),
                duration(v.late_limit_ms)
            ));
        }
        AlertKind::ProcedureViolation if f.info == VIOLATION_BEFORE_ACCEPTANCE => {
            let acc = v.item.events.iter().find(|x| x.ty == EventType::Accepted);
            match acc {
                Some(a) => {
                    zh.push(format_args!("受理事件{}发生于{}，晚于本事件", v.item.event_id(a), v.t(a.at)));
                    en.push(format_args!("the acceptance {} happened at {}, after this event", v.item.event_id(a), v.t(a.at)));
                }
                None => {
                    zh.push("本件尚无受理记录（或在受理期限届满前发生）");
                    en.push("the item has no acceptance (or this happened before the acceptance window ran out)");
                }
            }
        }
        _ => {}
    }
}

fn clock_facts(v: &View<'_>, f: &Fact, tr: &Trace, zh: &mut Lines, en: &mut Lines) {
    let c = Counter { calendar: v.calendar, kind: tr.kind };
    let unit = c.unit();
    let (origin_zh, origin_en) = origin(v, tr.origin);
    let anchor = c.anchor(tr.start);
    zh.push(format_args!("起算：{origin_zh}，{}", v.t(tr.start)));
    en.push(format_args!("start: {origin_en} at {}", v.t(tr.start)));
    zh.push(format_args!("起算当日不计入（民法典第二百零一条），自{}起计算", v.t(anchor)));
    en.push(format_args!("the start day is not counted (Civil Code art. 201): counting from {}", v.t(anchor)));
    let budget_days = days(tr.budget, unit);
    let (label_zh, label_en) = match f.kind {
        AlertKind::PromisedDeadlineNear => ("承诺时限预警点", "promised-limit warning point"),
        AlertKind::PromisedOverdue => ("承诺时限", "promised limit"),
        AlertKind::StatutoryOverdue => ("法定时限", "statutory limit"),
        AlertKind::StepOverdue => ("环节时限", "step limit"),
        AlertKind::AcceptanceOverdue => ("受理期限", "acceptance window"),
        AlertKind::SuspensionOverdue => ("特别程序预计期限", "suspension's expected length"),
        AlertKind::DeliveryOverdue => ("送达期限", "delivery limit"),
        _ => ("时限", "limit"),
    };
    let office = if v.calendar.has_office_hours() && tr.kind == DayKind::Working { "（按办公时间计）" } else { "" };
    zh.push(format_args!("{label_zh}{budget_days}{}{office}", kind_zh(tr.kind)));
    en.push(format_args!("{label_en}: {budget_days} {}{}", kind_en(tr.kind), if office.is_empty() { "" } else { " (office hours)" }));

    let changes = if tr.pauses_only { v.step_changes } else { v.changes };
    for ch in changes.iter().take(tr.applied as usize) {
        match *ch {
            ClockChange::Pause(p) => {
                let excluded = c.elapsed(p.to.max(anchor)) - c.elapsed(p.from.max(anchor));
                zh.push(format_args!(
                    "特别程序{}至{}不计入（扣除{}{}，行政许可法第四十五条）",
                    v.t(p.from),
                    v.t(p.to),
                    days(excluded.max(0), unit),
                    kind_zh(tr.kind)
                ));
                en.push(format_args!(
                    "suspension {} to {} excluded ({} {}, ALL art. 45)",
                    v.t(p.from),
                    v.t(p.to),
                    days(excluded.max(0), unit),
                    kind_en(tr.kind)
                ));
            }
            ClockChange::Extend { at, budget } => {
                zh.push(format_args!("{}依法延期{}日", v.t(at), days(budget, unit)));
                en.push(format_args!("lawfully extended by {} days at {}", days(budget, unit), v.t(at)));
            }
        }
    }
    if !tr.pauses_only || f.kind == AlertKind::StepOverdue {
        let skipped = v.item.events.iter().filter(|e| e.ty == EventType::Suspended).count()
            > changes.iter().take(tr.applied as usize).filter(|c| matches!(c, ClockChange::Pause(_))).count();
        if skipped && f.kind != AlertKind::SuspensionOverdue {
            zh.push("其他挂起不属依法中止或发生在期限届满之后，不中止计时");
            en.push("other suspensions were not lawful or came after the deadline and paused nothing");
        }
    }
    calendar_facts(v, anchor, f.at, tr.kind, zh, en);
    let last_day = v.calendar.date_of(Timestamp(f.at - 1));
    zh.push(format_args!("期限届满：{}（即{}当日结束）", v.t(f.at), last_day));
    en.push(format_args!("deadline: {} (end of {})", v.t(f.at), last_day));
}

fn origin(v: &View<'_>, o: Origin) -> (String, String) {
    let describe = |i: u32| -> (String, String) {
        let e = v.ev(i);
        let id = v.eid(i);
        match e.ty {
            EventType::Accepted => (format!("受理（事件{id}）"), format!("acceptance (event {id})")),
            EventType::StepCompleted => {
                let step = v.names.name(e.arg as u32);
                (format!("前一环节「{step}」办结（事件{id}）"), format!("completion of step \"{step}\" (event {id})"))
            }
            EventType::Submitted | EventType::CorrectionSubmitted => (
                format!("视为受理：受理期限内未作处理，自{}（事件{id}）起视为受理（行政许可法第三十二条）", e.ty.zh()),
                format!("deemed acceptance: the window from {} (event {id}) passed in silence (ALL art. 32)", e.ty.as_str()),
            ),
            other => (format!("{}（事件{id}）", other.zh()), format!("{} (event {id})", other.as_str())),
        }
    };
    match o {
        Origin::Accepted(i) | Origin::Deemed(i) | Origin::Event(i) | Origin::Step(Some(i)) => {
            let (zh, en) = describe(i);
            if let (Origin::Event(_), EventType::Submitted | EventType::CorrectionSubmitted) = (o, v.ev(i).ty) {
                let id = v.eid(i);
                return (format!("{}（事件{id}）", v.ev(i).ty.zh()), format!("{} (event {id})", v.ev(i).ty.as_str()));
            }
            (zh, en)
        }
        Origin::Step(None) => ("受理".into(), "acceptance".into()),
    }
}

/// Holidays and adjusted working days crossed between the anchor and the deadline.
fn calendar_facts(v: &View<'_>, anchor: i64, deadline: i64, kind: DayKind, zh: &mut Lines, en: &mut Lines) {
    let cal = v.calendar;
    if deadline <= anchor {
        return;
    }
    let (first, last) = (cal.day_of(anchor), cal.day_of(deadline - 1));
    let mut holidays: Vec<(String, String, String, String)> = Vec::new();
    let mut adjusted: Vec<String> = Vec::new();
    let mut working = 0;
    for d in first..=last.min(first + 800) {
        if cal.is_working_day(d) {
            working += 1;
        }
        if cal.is_adjusted_working_day(d) {
            adjusted.push(format!("{}（{}）", cal.date(d), weekday_zh(cal.date(d))));
        }
        if let Some((name, name_en)) = cal.holiday_name(d) {
            let date = cal.date(d).to_string();
            match holidays.last_mut() {
                Some(h) if h.0 == name && cal.holiday_name(d - 1).is_some_and(|p| p.0 == name) => h.3 = date,
                _ => holidays.push((name.to_owned(), name_en.to_owned(), date.clone(), date)),
            }
        }
    }
    let cal_name = cal.name();
    if holidays.is_empty() {
        zh.push(format_args!("期间无法定节假日（日历{cal_name}）"));
        en.push(format_args!("no public holidays in the period (calendar {cal_name})"));
    } else {
        let list_zh: Vec<String> =
            holidays.iter().map(|h| if h.2 == h.3 { format!("{} {}", h.0, h.2) } else { format!("{} {}至{}", h.0, h.2, h.3) }).collect();
        let list_en: Vec<String> =
            holidays.iter().map(|h| if h.2 == h.3 { format!("{} {}", h.1, h.2) } else { format!("{} {} to {}", h.1, h.2, h.3) }).collect();
        zh.push(format_args!("跨越法定节假日：{}（日历{cal_name}）", list_zh.join("、")));
        en.push(format_args!("public holidays crossed: {} (calendar {cal_name})", list_en.join(", ")));
    }
    if !adjusted.is_empty() {
        zh.push(format_args!("调休上班日计入：{}", adjusted.join("、")));
        en.push(format_args!("adjusted working days counted: {}", adjusted.join(", ").replace('（', " (").replace('）', ")")));
    }
    if kind == DayKind::Working && !cal.has_office_hours() {
        zh.push(format_args!("期间共{working}个工作日"));
        en.push(format_args!("{working} working days in the period"));
    }
    if kind == DayKind::Natural && cal.is_working_day(cal.day_of(deadline - 1)) {
        zh.push("按自然日计算；期间最后一日为法定休假日的，以休假日结束的次日（工作日）为最后一日（民法典第二百零三条）");
        en.push(
            "counted in natural days; a period whose last day is a day off runs to the end of the next working day (Civil Code art. 203)",
        );
    }
    let years: Vec<i32> = {
        let mut ys = Vec::new();
        cal.uncovered_years_between(anchor, deadline, |y| ys.push(y));
        ys
    };
    if !years.is_empty() {
        let list = years.iter().map(|y| y.to_string()).collect::<Vec<_>>().join(", ");
        zh.push(format_args!("注意：日历缺少{list}年节假日安排，暂按周一至周五计算"));
        en.push(format_args!("note: no holiday notice for {list}; counted Mon-Fri until it is loaded"));
    }
}

fn weekday_zh(d: chrono::NaiveDate) -> &'static str {
    use chrono::Datelike;
    ["周一", "周二", "周三", "周四", "周五", "周六", "周日"][d.weekday().num_days_from_monday() as usize]
}

fn extension_days(v: &View<'_>, f: &Fact) -> String {
    let Some(tr) = f.trace else { return String::new() };
    let unit = Counter { calendar: v.calendar, kind: tr.kind }.unit();
    v.changes
        .iter()
        .take(tr.applied as usize)
        .filter_map(|c| match c {
            ClockChange::Extend { budget, .. } => Some(days(*budget, unit)),
            _ => None,
        })
        .next()
        .unwrap_or_default()
}

fn extension_reasons(v: &View<'_>, f: &Fact) -> (String, String) {
    let e = event_index(f).map(|i| *v.ev(i));
    let max = v.resolved.map_or(0, |r| r.service.extension_max_days);
    let mut zh = Lines::new("，");
    let mut en = Lines::new(", ");
    if f.info & EXT_NOT_FIRST != 0 {
        zh.push("非首次延期（只能延期一次）");
        en.push("not the first extension (only one is allowed)");
    }
    if f.info & EXT_NO_APPROVER != 0 {
        zh.push("未经负责人批准（无批准人）");
        en.push("no approver");
    }
    if f.info & EXT_SELF_APPROVED != 0 {
        zh.push("批准人与经办人为同一人");
        en.push("approved by its own actor");
    }
    if f.info & EXT_OVER_MAX != 0 {
        let d = e.map_or(0, |e| e.days());
        zh.push(format_args!("延期{d}日超过上限{max}日"));
        en.push(format_args!("{d} days is over the {max}-day maximum"));
    }
    if f.info & EXT_AFTER_DEADLINE != 0 {
        zh.push("法定时限届满后才延期");
        en.push("made after the statutory deadline had passed");
    }
    (zh.end(""), en.end(""))
}

fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn duration(ms: i64) -> String {
    let minutes = ms / 60_000;
    if ms >= 2 * 24 * HOUR_MS {
        format!("{:.1}d", ms as f64 / (24 * HOUR_MS) as f64)
    } else if ms >= HOUR_MS {
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    } else {
        format!("{minutes}m")
    }
}

/// A CALENDAR_MISSING alert's words. They name no item: every engine (one per
/// partition) that meets the gap emits the same update under the same id.
pub(crate) fn calendar_missing(calendar: &str, year: i32) -> (Bilingual, Bilingual) {
    (
        Bilingual {
            zh: format!("日历{calendar}缺少{year}年节假日安排，该年暂按周一至周五计算工作日，载入后自动重算"),
            en: format!(
                "Calendar {calendar} has no holiday notice for {year}; that year counts Mon-Fri until the notice is loaded, then open items are recomputed"
            ),
        },
        Bilingual {
            zh: format!("时限计算需要{year}年的日期；日历{calendar}已载入的年份中没有{year}年（国务院办公厅通常于上一年11-12月发布）"),
            en: format!(
                "a deadline computation needed a day of {year}; calendar {calendar} has no notice for that year (published each November/December)"
            ),
        },
    )
}
