//! The catalog and calendars every service loads the same way.

use jiancha_core::{Calendar, Calendars, Catalog};
use std::path::PathBuf;
use std::sync::Arc;

/// The demo catalog, used when no catalog is configured.
pub const DEMO_CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");

/// A catalog or calendar file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

/// Loads the catalog (the demo one when none is configured) and the built-in calendars
/// plus `calendar_files`; every error names the file.
pub fn load_rules(catalog: Option<&PathBuf>, calendar_files: &[PathBuf]) -> Result<(Arc<Catalog>, Calendars), RulesError> {
    let mut calendars = Calendars::builtin();
    for file in calendar_files {
        let text = std::fs::read_to_string(file).map_err(|e| RulesError(format!("calendar {}: {e}", file.display())))?;
        calendars.insert(Calendar::from_toml(&text).map_err(|e| RulesError(format!("calendar {}: {e}", file.display())))?);
    }
    let (text, source) = match catalog {
        Some(path) => {
            (std::fs::read_to_string(path).map_err(|e| RulesError(format!("catalog {}: {e}", path.display())))?, path.display().to_string())
        }
        None => (DEMO_CATALOG.to_owned(), "deploy/demo/catalog.toml (built in)".to_owned()),
    };
    let catalog = Catalog::from_toml(&text, &calendars).map_err(|e| RulesError(format!("catalog {source}: {e}")))?;
    Ok((Arc::new(catalog), calendars))
}

/// The modification times of the catalog and calendar files: a reload is due when they
/// change.
pub fn file_stamps(
    catalog: Option<&std::path::PathBuf>,
    calendars: &[std::path::PathBuf],
) -> Vec<(std::path::PathBuf, Option<std::time::SystemTime>)> {
    catalog
        .into_iter()
        .cloned()
        .chain(calendars.iter().cloned())
        .map(|f| {
            let stamp = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, stamp)
        })
        .collect()
}
