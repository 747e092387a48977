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

use jiancha_core::clock::Counter;
use jiancha_core::{Calendars, Catalog};

/// When a YELLOW case opened at `opened_at` escalates if not replied: 5 working days of
/// the service's calendar (the start day not counted, holidays and 调休 as the monitor
/// counts them); the default calendar when the service is unknown.
pub fn escalation_deadline(catalog: &Catalog, calendars: &Calendars, service_code: Option<&str>, opened_at: i64) -> i64 {
    let calendar =
        service_code.and_then(|c| catalog.get(c)).and_then(|s| calendars.get(&s.calendar)).unwrap_or_else(|| calendars.default_calendar());
    let counter = Counter::working(calendar);
    counter.deadline(opened_at, workflow::ESCALATION_WORKING_DAYS * counter.unit(), &[])
}
