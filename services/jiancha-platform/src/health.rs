//! Readiness, shared by every role in the process: each role says whether it can do its
//! work now (the monitor: partitions restored and caught up; the gateway: its views
//! read; accountability: the database answers), and `/readyz` on the metrics listener
//! and the gRPC health service answer from the same place.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Metric: 1 while a role is ready, 0 while not, by `role`.
pub const READY: &str = "jiancha_ready";

/// One role's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Whether it can serve.
    pub ready: bool,
    /// What it is doing, for people: `"8 partitions restored, lag 0"`.
    pub detail: String,
}

fn checks() -> &'static Mutex<BTreeMap<&'static str, Check>> {
    static CHECKS: OnceLock<Mutex<BTreeMap<&'static str, Check>>> = OnceLock::new();
    CHECKS.get_or_init(Default::default)
}

/// Records a role's state; returns whether it changed.
pub fn set(role: &'static str, ready: bool, detail: impl Into<String>) -> bool {
    let check = Check { ready, detail: detail.into() };
    let mut all = checks().lock().unwrap_or_else(|e| e.into_inner());
    if all.get(role) == Some(&check) {
        return false;
    }
    if all.get(role).is_none_or(|c| c.ready != check.ready) {
        tracing::info!(role, ready, detail = %check.detail, "Readiness changed");
        metrics::gauge!(READY, "role" => role).set(if ready { 1.0 } else { 0.0 });
    }
    all.insert(role, check);
    true
}

/// Takes a role out (it stopped).
pub fn remove(role: &'static str) {
    checks().lock().unwrap_or_else(|e| e.into_inner()).remove(role);
}

/// Every role's state, and whether all are ready (false while none has reported).
pub fn report() -> (bool, BTreeMap<&'static str, Check>) {
    let all = checks().lock().unwrap_or_else(|e| e.into_inner()).clone();
    (!all.is_empty() && all.values().all(|c| c.ready), all)
}

/// Whether `role` is ready.
pub fn is_ready(role: &str) -> bool {
    checks().lock().unwrap_or_else(|e| e.into_inner()).get(role).is_some_and(|c| c.ready)
}
