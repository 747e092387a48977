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

/// The modification times of the catalog and calendar files.
type Stamps = Vec<(PathBuf, Option<std::time::SystemTime>)>;

fn file_stamps(catalog: Option<&PathBuf>, calendars: &[PathBuf]) -> Stamps {
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

/// The catalog and calendars of a running service, loaded again when their files change
/// (every `reload_interval` the monitor and the accountability service ask). The files'
/// times are taken *before* each load, so a file written during a load, or between the
/// start and the first check, is seen as a change at the next check.
#[derive(Debug)]
pub struct RulesWatch {
    catalog: Option<PathBuf>,
    calendar_files: Vec<PathBuf>,
    stamps: Stamps,
}

impl RulesWatch {
    /// Loads the rules of `config` and starts watching their files.
    pub fn load(config: &crate::Config) -> Result<(RulesWatch, Arc<Catalog>, Calendars), RulesError> {
        let (catalog, calendar_files) = (config.catalog.clone(), config.calendar_files());
        let stamps = file_stamps(catalog.as_ref(), &calendar_files);
        let (c, cal) = load_rules(catalog.as_ref(), &calendar_files)?;
        Ok((RulesWatch { catalog, calendar_files, stamps }, c, cal))
    }

    /// None when no file changed since the last load; else the rules loaded again (or
    /// why they cannot be: the caller keeps the previous ones). A calendar file added to
    /// `calendar_dir` counts as a change.
    pub fn poll(&mut self, config: &crate::Config) -> Option<Result<(Arc<Catalog>, Calendars), RulesError>> {
        let calendar_files = config.calendar_files();
        let stamps = file_stamps(self.catalog.as_ref(), &calendar_files);
        if stamps == self.stamps {
            return None;
        }
        self.stamps = stamps;
        self.calendar_files = calendar_files;
        Some(load_rules(self.catalog.as_ref(), &self.calendar_files))
    }
}
