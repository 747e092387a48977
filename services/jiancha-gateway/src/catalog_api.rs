//! CatalogService: read and replace the catalog and calendars, and preview a change.
//!
//! The files named in the configuration are the source of truth (reviewable, mounted
//! into every monitor): a replacement is validated, written atomically over the file,
//! and picked up by every monitor on its next reload check (`reload_interval`), which
//! recomputes every open item. See docs/grpc.md.

use crate::view::View;
use jiancha_core::calendar::{CN_MAINLAND_TOML, Calendar};
use jiancha_core::engine::{Effect, Engine, ItemStatus};
use jiancha_core::{Calendars, Catalog, Timestamp};
use jiancha_platform::Config;
use jiancha_platform::auth::{self, Role};
use jiancha_platform::errors::invalid;
use jiancha_platform::rules::DEMO_CATALOG;
use jiancha_platform::wall_clock;
use jiancha_proto::v1;
use jiancha_proto::v1::catalog_service_server::CatalogService;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use tracing::info;

/// Items a preview lists at most (the counts cover all).
const PREVIEW_LIMIT: usize = 1000;

/// The catalog service.
#[derive(Debug, Clone)]
pub struct CatalogApi {
    view: Arc<View>,
    config: Arc<Config>,
    /// Serialises replacements.
    writing: Arc<Mutex<()>>,
}

/// Hex SHA-256 of a text.
pub fn version(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    Status::internal(format!("{what}: {e}"))
}

/// Writes `text` over `path` atomically (a temporary file in the same directory, renamed).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().map_or("rules".into(), |n| n.to_string_lossy()), std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl CatalogApi {
    /// Over a view (whose engine gets each replacement at once) and the configuration
    /// naming the files.
    pub fn new(view: Arc<View>, config: Arc<Config>) -> CatalogApi {
        CatalogApi { view, config, writing: Arc::new(Mutex::new(())) }
    }

    fn catalog_text(&self) -> Result<(String, String), Status> {
        match &self.config.catalog {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| internal(&format!("reading {}", path.display()), e))?;
                Ok((text, path.display().to_string()))
            }
            None => Ok((DEMO_CATALOG.to_owned(), "deploy/demo/catalog.toml (built in)".to_owned())),
        }
    }

    /// Each calendar file, by the calendar name inside it.
    fn calendar_files(&self) -> BTreeMap<String, (PathBuf, String)> {
        let mut files = BTreeMap::new();
        for path in self.config.calendar_files() {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(cal) = Calendar::from_toml(&text)
            {
                files.insert(cal.name().to_owned(), (path, text));
            }
        }
        files
    }

    fn calendars_now(&self) -> Calendars {
        self.view.engine.read().unwrap_or_else(|e| e.into_inner()).calendars().clone()
    }

    fn catalog_document(text: String, source: String, services: usize) -> v1::CatalogDocument {
        v1::CatalogDocument { version: version(&text), toml: text, services: services as u32, source }
    }

    /// Parses proposed calendars onto the ones in force.
    fn proposed_calendars(&self, texts: &[String]) -> Result<Calendars, Status> {
        let mut calendars = self.calendars_now();
        let mut violations = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match Calendar::from_toml(text) {
                Ok(cal) => calendars.insert(cal),
                Err(e) => violations.push((format!("calendar_tomls[{i}]"), e.to_string())),
            }
        }
        if violations.is_empty() {
            Ok(calendars)
        } else {
            Err(invalid(format!("{} calendar(s) are not valid", violations.len()), violations))
        }
    }
}

/// Whether a calendar name may name a file: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_calendar_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// INVALID_ARGUMENT listing every problem of a catalog, each with where it is.
fn catalog_invalid(field: &str, e: &jiancha_core::catalog::CatalogError) -> Status {
    let violations = e.problems.iter().map(|p| (format!("{field}: {} `{}`", p.location, p.key), p.message.clone()));
    invalid(e.to_string(), violations)
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn get_catalog(&self, request: Request<v1::GetCatalogRequest>) -> Result<Response<v1::CatalogDocument>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("GetCatalog", &Role::ALL)?;
        let (text, source) = self.catalog_text()?;
        let services = self.view.engine.read().unwrap_or_else(|e| e.into_inner()).catalog().services().len();
        Ok(Response::new(Self::catalog_document(text, source, services)))
    }

    async fn replace_catalog(&self, request: Request<v1::ReplaceCatalogRequest>) -> Result<Response<v1::CatalogDocument>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("ReplaceCatalog", &[Role::Operator])?;
        let req = request.into_inner();
        let Some(path) = self.config.catalog.clone() else {
            return Err(Status::failed_precondition(
                "no catalog file is configured (the built-in demo catalog is in force); set `catalog` in the configuration",
            ));
        };
        let catalog = Catalog::from_toml(&req.toml, &self.calendars_now()).map_err(|e| catalog_invalid("toml", &e))?;
        let services = catalog.services().len();
        {
            let _guard = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let (current, _) = self.catalog_text()?;
            if !req.expected_version.is_empty() && req.expected_version != version(&current) {
                return Err(Status::aborted(format!(
                    "the catalog changed since version {}: it is now {}; read it again and reapply your change",
                    req.expected_version,
                    version(&current)
                )));
            }
            write_atomically(&path, &req.toml).map_err(|e| internal(&format!("writing {}", path.display()), e))?;
        }
        let mut effects = Vec::new();
        self.view.engine.write().unwrap_or_else(|e| e.into_inner()).replace_catalog(Arc::new(catalog), wall_clock(), &mut effects);
        info!(who = %caller.subject, file = %path.display(), services, version = %version(&req.toml), "Catalog replaced through the gateway");
        Ok(Response::new(Self::catalog_document(req.toml, path.display().to_string(), services)))
    }

    async fn list_calendars(&self, request: Request<v1::ListCalendarsRequest>) -> Result<Response<v1::ListCalendarsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("ListCalendars", &Role::ALL)?;
        let files = self.calendar_files();
        let calendars = self
            .calendars_now()
            .iter()
            .map(|cal| {
                let (toml, source) = match files.get(cal.name()) {
                    Some((path, text)) => (text.clone(), path.display().to_string()),
                    None if cal.name() == "cn-mainland" => (CN_MAINLAND_TOML.to_owned(), "built in".to_owned()),
                    None => (String::new(), "built in".to_owned()),
                };
                v1::CalendarDocument {
                    name: cal.name().to_owned(),
                    version: version(&toml),
                    toml,
                    years: cal.covered_years().collect(),
                    source,
                }
            })
            .collect();
        Ok(Response::new(v1::ListCalendarsResponse { calendars }))
    }

    async fn replace_calendar(&self, request: Request<v1::ReplaceCalendarRequest>) -> Result<Response<v1::CalendarDocument>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("ReplaceCalendar", &[Role::Operator])?;
        let req = request.into_inner();
        if !valid_calendar_name(&req.name) {
            return Err(invalid(
                format!("calendar name `{}` is not allowed", req.name.escape_debug()),
                vec![("name".into(), "must be 1-64 characters of A-Z, a-z, 0-9, `_` and `-`".into())],
            ));
        }
        let years: Vec<i32> = Calendar::from_toml(&req.toml).map(|c| c.covered_years().collect()).unwrap_or_default();
        let cal = Calendar::from_toml(&req.toml)
            .map_err(|e| invalid(format!("the calendar is not valid: {e}"), vec![("toml".into(), e.to_string())]))?;
        if cal.name() != req.name {
            return Err(invalid(
                format!("the text defines calendar `{}`, not `{}`", cal.name(), req.name),
                vec![("name".into(), format!("must equal the name inside the text (`{}`)", cal.name()))],
            ));
        }
        let files = self.calendar_files();
        let path = match (files.get(&req.name), &self.config.calendar_dir) {
            (Some((path, _)), _) => path.clone(),
            (None, Some(dir)) => {
                let path = dir.join(format!("{}.toml", req.name));
                // The name is checked above; the path is checked too, so that no later
                // change to the rule can write outside the folder.
                if path.parent() != Some(dir.as_path()) {
                    return Err(invalid(
                        format!("calendar `{}` would leave calendar_dir", req.name),
                        vec![("name".into(), "stays in calendar_dir".into())],
                    ));
                }
                path
            }
            (None, None) => {
                return Err(Status::failed_precondition(format!(
                    "no file holds calendar `{}` and no `calendar_dir` is configured; add one so that every monitor loads it",
                    req.name
                )));
            }
        };
        // The catalog in force must still hold with the new calendar.
        let mut calendars = self.calendars_now();
        calendars.insert(cal);
        let (catalog_text, _) = self.catalog_text()?;
        Catalog::from_toml(&catalog_text, &calendars).map_err(|e| catalog_invalid("catalog in force", &e))?;
        {
            // The version is read inside the lock: two replacements with the same
            // expected version cannot both pass.
            let _guard = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.calendar_files().get(&req.name).map(|(_, t)| t.clone()).unwrap_or_default();
            if !req.expected_version.is_empty() && req.expected_version != version(&current) {
                return Err(Status::aborted(format!("calendar `{}` changed since version {}", req.name, req.expected_version)));
            }
            write_atomically(&path, &req.toml).map_err(|e| internal(&format!("writing {}", path.display()), e))?;
        }
        let mut effects = Vec::new();
        self.view.engine.write().unwrap_or_else(|e| e.into_inner()).replace_calendars(calendars, wall_clock(), &mut effects);
        info!(who = %caller.subject, calendar = %req.name, file = %path.display(), "Calendar replaced through the gateway");
        Ok(Response::new(v1::CalendarDocument {
            name: req.name,
            version: version(&req.toml),
            years,
            toml: req.toml,
            source: path.display().to_string(),
        }))
    }

    async fn preview_change(&self, request: Request<v1::PreviewChangeRequest>) -> Result<Response<v1::PreviewChangeResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("PreviewChange", &[Role::Operator, Role::Inspector, Role::Auditor])?;
        let req = request.into_inner();
        let calendars = self.proposed_calendars(&req.calendar_tomls)?;
        let catalog_text = if req.catalog_toml.is_empty() { self.catalog_text()?.0 } else { req.catalog_toml };
        let catalog = Arc::new(Catalog::from_toml(&catalog_text, &calendars).map_err(|e| catalog_invalid("catalog_toml", &e))?);
        let view = self.view.clone();
        let mut response = tokio::task::spawn_blocking(move || preview(&view, catalog, calendars, wall_clock()))
            .await
            .map_err(|e| internal("preview task", e))?;
        if caller.role == Role::Operator {
            redact_for_operator(&mut response);
        }
        Ok(Response::new(response))
    }
}

/// An operator sees how many items a change moves and by how much, never which items
/// or whose (DOMAIN §6: no item ids or officials' names): ids and texts are emptied,
/// departments, services, deadline shifts and alert kinds stay.
fn redact_for_operator(response: &mut v1::PreviewChangeResponse) {
    for item in &mut response.items {
        item.item_id.clear();
        for alert in &mut item.alerts {
            let kept = v1::Alert {
                kind: alert.kind,
                level: alert.level,
                status: alert.status,
                triggered_at: std::mem::take(&mut alert.triggered_at),
                department_code: alert.department_code.take(),
                service_code: alert.service_code.take(),
                ..v1::Alert::default()
            };
            *alert = kept;
        }
    }
}

/// Every open item under the rules in force and under the proposed ones, compared.
fn preview(view: &View, catalog: Arc<Catalog>, calendars: Calendars, at: Timestamp) -> v1::PreviewChangeResponse {
    let engine = view.engine.read().unwrap_or_else(|e| e.into_inner());
    let mut proposed = Engine::new(catalog, calendars);
    // (department, item) → the clocks' deadlines under the rules in force.
    let mut before: HashMap<(String, String), Vec<(String, Timestamp)>> = HashMap::new();
    let mut scratch = Vec::new();
    let mut examined = 0u64;
    for item in engine.item_refs() {
        let Some(t) = engine.timeline(item, at) else { continue };
        if t.status == ItemStatus::Closed {
            continue;
        }
        examined += 1;
        // The alerts in force at `at` become the held set, so that recomputing yields only differences.
        let mut state = t.state.clone();
        state.held = t.holding.clone();
        proposed.import(&state, &mut scratch);
        let key = (t.state.department_code.clone(), t.state.item_id.clone());
        before.insert(key, t.clocks.iter().map(|c| (c.name.clone(), c.deadline)).collect());
    }
    drop(engine);
    let mut effects: Vec<Effect> = Vec::new();
    proposed.recompute_all(at, &mut effects);
    let mut alerts: BTreeMap<(String, String), Vec<v1::Alert>> = BTreeMap::new();
    let mut other_alerts = Vec::new();
    for e in &effects {
        if let Effect::Alert(a) = e {
            match &a.item_id {
                Some(item) => {
                    let key = (a.department_code.clone().unwrap_or_default(), item.clone());
                    alerts.entry(key).or_default().push(v1::Alert::from(&**a));
                }
                None => other_alerts.push(v1::Alert::from(&**a)),
            }
        }
    }
    let mut items = Vec::new();
    let mut changed = 0u64;
    let mut keys: Vec<&(String, String)> = before.keys().collect();
    keys.sort();
    for key in keys {
        let (department, id) = key;
        let Some(item) = proposed.find(department, id) else { continue };
        let Some(after) = proposed.timeline(item, at) else { continue };
        let old = &before[key];
        let mut names: Vec<&String> = old.iter().map(|(n, _)| n).chain(after.clocks.iter().map(|c| &c.name)).collect();
        names.sort();
        names.dedup();
        let zone = after.zone;
        let deadlines: Vec<v1::DeadlineChange> = names
            .into_iter()
            .filter_map(|name| {
                let b = old.iter().find(|(n, _)| n == name).map(|(_, d)| *d);
                let a = after.clocks.iter().find(|c| &c.name == name).map(|c| c.deadline);
                (b != a).then(|| v1::DeadlineChange {
                    clock: name.clone(),
                    before: b.map(|t| t.to_rfc3339_in(zone)).unwrap_or_default(),
                    after: a.map(|t| t.to_rfc3339_in(zone)).unwrap_or_default(),
                })
            })
            .collect();
        let item_alerts = alerts.remove(key).unwrap_or_default();
        if deadlines.is_empty() && item_alerts.is_empty() {
            continue;
        }
        changed += 1;
        if items.len() < PREVIEW_LIMIT {
            items.push(v1::ItemChange {
                item_id: id.clone(),
                department_code: after.state.department_code.clone(),
                service_code: after.state.service_code.clone(),
                deadlines,
                alerts: item_alerts,
            });
        }
    }
    v1::PreviewChangeResponse { items_examined: examined, items_changed: changed, items, other_alerts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_names_cannot_name_a_path() {
        assert!(valid_calendar_name("shenzhen-2027"));
        assert!(valid_calendar_name("cn_mainland"));
        for bad in ["", "../../x", "a/b", "a.b", "..", "名字", "a\0b", &"x".repeat(65)] {
            assert!(!valid_calendar_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_operator_preview_names_no_item_and_no_official() {
        let mut response = v1::PreviewChangeResponse {
            items_examined: 3,
            items_changed: 1,
            items: vec![v1::ItemChange {
                item_id: "SCJG-1".into(),
                department_code: "SCJG".into(),
                service_code: Some("SCJG-001".into()),
                deadlines: vec![v1::DeadlineChange { clock: "promised".into(), before: "a".into(), after: "b".into() }],
                alerts: vec![v1::Alert {
                    alert_id: "id".into(),
                    item_id: Some("SCJG-1".into()),
                    department_code: Some("SCJG".into()),
                    message: Some(v1::Bilingual { zh: "办件SCJG-1 经办人王伟".into(), en: String::new() }),
                    derivation: Some(v1::Bilingual { zh: "王伟".into(), en: String::new() }),
                    event_id: Some("e1".into()),
                    kind: 3,
                    ..v1::Alert::default()
                }],
            }],
            other_alerts: vec![],
        };
        redact_for_operator(&mut response);
        let text = format!("{response:?}");
        assert!(!text.contains("SCJG-1") && !text.contains("王伟") && !text.contains("e1"), "{text}");
        assert_eq!(response.items[0].deadlines.len(), 1);
        assert_eq!(response.items[0].alerts[0].kind, 3);
        assert_eq!(response.items[0].department_code, "SCJG");
    }
}
