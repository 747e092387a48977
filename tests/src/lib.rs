//! Helpers shared by the workspace-level tests: replaying a file through the engine and
//! normalising alerts for comparison.

pub mod grpc;
pub mod kafka;
pub mod pg;
pub mod process;

use jiancha_core::{Alert, Calendars, Catalog, Engine, Replay, Timestamp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Loads a catalog file with the built-in calendars.
pub fn load_catalog(path: &Path) -> Catalog {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Catalog::from_toml(&text, &Calendars::builtin()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replays JSON lines (invalid ones skipped) and returns every alert update.
pub fn replay_lines<'a>(catalog: &Catalog, lines: impl IntoIterator<Item = &'a str>, until: Option<Timestamp>) -> Vec<Alert> {
    let mut replay = Replay::new(Engine::new(Arc::new(catalog.clone()), Calendars::builtin()));
    let mut out = Vec::new();
    for line in lines.into_iter().filter(|l| !l.trim().is_empty()) {
        let _ = replay.arrive_json(line.as_bytes(), &mut |a| out.push(a));
    }
    replay.finish(until, &mut |a| out.push(a));
    out
}

/// The fields of an alert a person checks in a golden file.
pub fn normalise(a: &Alert) -> Value {
    json!({
        "status": a.status.as_str(),
        "item_id": a.item_id,
        "kind": a.kind.as_str(),
        "level": a.level.as_str(),
        "triggered_at": a.triggered_at.to_rfc3339_in(a.zone),
        "event_id": a.event_id,
    })
}

/// The final state of every alert id: its last update.
pub fn final_states(updates: &[Alert]) -> std::collections::BTreeMap<String, Alert> {
    let mut last = std::collections::BTreeMap::new();
    for a in updates {
        last.insert(a.alert_id.clone(), a.clone());
    }
    last
}
