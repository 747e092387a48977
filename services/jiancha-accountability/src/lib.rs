//! The accountability queue (责任追究, DOMAIN §6) and performance statistics (绩效评估, §7).
//!
//! `jiancha accountability` consumes the alert topic (every YELLOW and RED alert opens
//! exactly one case; a retraction closes it as NO_FAULT) and the monitor's state
//! changelog (what the statistics need of each item), keeps cases in PostgreSQL or
//! SQLite with a hash-chained audit log, escalates unreplied YELLOW cases (督办), and
//! serves AccountabilityService and StatsService over gRPC with the gateway's roles.

pub mod api;
pub mod audit;
pub mod facts;
pub mod service;
pub mod stats;
pub mod store;
pub mod workflow;

pub mod notify;
pub mod publish;

use jiancha_core::clock::Counter;
use jiancha_core::{Calendars, Catalog};
use jiancha_platform::config::EscalationChain;
use std::sync::{Arc, RwLock};
use store::CaseRow;
use workflow::{Status, Step};

/// The instant `days` working days of the service's calendar after `from` (the start day
/// not counted, holidays and 调休 as the monitor counts them); the default calendar when
/// the service is unknown.
pub fn working_days_after(catalog: &Catalog, calendars: &Calendars, service_code: Option<&str>, from: i64, days: u32) -> i64 {
    let calendar =
        service_code.and_then(|c| catalog.get(c)).and_then(|s| calendars.get(&s.calendar)).unwrap_or_else(|| calendars.default_calendar());
    let counter = Counter::working(calendar);
    counter.deadline(from, i64::from(days) * counter.unit(), &[])
}

/// The escalation chain of a case awaiting an answer: when 催办, 督办 and 通报 fall, from
/// its clock, with the calendars in force now.
pub fn schedule(catalog: &Catalog, calendars: &Calendars, chain: &EscalationChain, case: &CaseRow) -> [(Step, i64); 3] {
    let supervise = if case.state.status == Status::Filed { chain.complaint_acceptance_days } else { chain.supervise_days };
    let at = |days: u32| working_days_after(catalog, calendars, case.service_code.as_deref(), case.clock_from, days);
    [
        (Step::Remind, at(chain.remind_days.min(supervise))),
        (Step::Supervise, at(supervise)),
        (Step::Publicize, at(chain.publicize_days.max(supervise))),
    ]
}

/// The catalog and calendars in force. The service replaces them when their files change
/// (`reload_interval`, as the monitor does), so the escalation chain, the case pages and
/// the statistics follow a calendar year loaded without a restart (DOMAIN §3.1).
#[derive(Debug)]
pub struct Rules(RwLock<(Arc<Catalog>, Calendars)>);

impl Rules {
    /// Rules to share.
    pub fn new(catalog: Arc<Catalog>, calendars: Calendars) -> Arc<Rules> {
        Arc::new(Rules(RwLock::new((catalog, calendars))))
    }

    /// The catalog and calendars now.
    pub fn get(&self) -> (Arc<Catalog>, Calendars) {
        self.0.read().map_or_else(|e| e.into_inner().clone(), |r| r.clone())
    }

    /// Puts new ones in force.
    pub fn set(&self, catalog: Arc<Catalog>, calendars: Calendars) {
        match self.0.write() {
            Ok(mut r) => *r = (catalog, calendars),
            Err(e) => *e.into_inner() = (catalog, calendars),
        }
    }
}
