//! String interning for the bounded vocabularies of a deployment (officials, services,
//! departments, step names, suspension kinds), so that each open item stores 4-byte ids.

use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Id of an interned string; 0 is the empty string.
pub type NameId = u32;

/// An append-only string table.
#[derive(Debug)]
pub struct Interner {
    ids: FxHashMap<Arc<str>, NameId>,
    names: Vec<Arc<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        let empty: Arc<str> = Arc::from("");
        let mut ids = FxHashMap::default();
        ids.insert(empty.clone(), 0);
        Interner { ids, names: vec![empty] }
    }
}

impl Interner {
    /// The id of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as NameId;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of `name`, if interned.
    pub fn get(&self, name: &str) -> Option<NameId> {
        self.ids.get(name).copied()
    }

    /// The string of an id.
    pub fn name(&self, id: NameId) -> &Arc<str> {
        &self.names[id as usize]
    }

    /// How many strings are held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether only the empty string is held.
    pub fn is_empty(&self) -> bool {
        self.names.len() == 1
    }
}
