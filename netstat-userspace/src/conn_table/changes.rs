//! What changed since the last drawing, for `-c --diff`: the endpoints of
//! every row added, removed or changed, and every row by endpoints to find
//! them again, so that a drawing costs what changed rather than the table.

use foldhash::HashSet;

use super::{ConnTable, Entry, Packed, slab::ByTuple};

pub(super) struct Changes {
    touched: HashSet<Packed>,
    /// Every row (not only the id-less ones), by endpoints.
    by_endpoints: ByTuple,
    /// The next drawing compares everything (the table is new).
    whole: bool,
}

impl ConnTable {
    /// Starts keeping what changes; the next `take_changed` asks for a
    /// whole comparison.
    pub fn track_changes(&mut self) {
        let mut by_endpoints = ByTuple::default();
        by_endpoints.reserve(self.rows.len(), &self.rows);
        for (key, _) in self.rows.iter() {
            by_endpoints.insert(key, &self.rows);
        }
        self.changes = Some(Changes {
            touched: HashSet::default(),
            by_endpoints,
            whole: true,
        });
    }

    /// The endpoints whose rows changed since the last call; None when the
    /// whole table is to be compared (changes not kept, or just started).
    pub fn take_changed(&mut self) -> Option<HashSet<Packed>> {
        let changes = self.changes.as_mut()?;
        let touched = std::mem::take(&mut changes.touched);
        match std::mem::replace(&mut changes.whole, false) {
            true => None,
            false => Some(touched),
        }
    }

    /// Marks the rows with these endpoints changed.
    pub(super) fn touch(&mut self, packed: Packed) {
        if let Some(changes) = &mut self.changes {
            changes.touched.insert(packed);
        }
    }

    /// Keeps the endpoint index in step as row `key` is added (`true`) or,
    /// before its slot is freed, removed, and marks its endpoints changed.
    pub(super) fn track_row(&mut self, key: super::Key, added: bool) {
        let Some(changes) = &mut self.changes else {
            return;
        };
        let Some(row) = self.rows.get(key) else {
            return;
        };
        let tuple = (row.socket.local, row.socket.remote);
        match added {
            true => changes.by_endpoints.insert(key, &self.rows),
            false => changes.by_endpoints.remove(key, &tuple),
        }
        changes.touched.insert(Packed::new(&tuple));
    }

    /// The rows with these endpoints, in display order.
    pub fn entries_of(&self, endpoints: &HashSet<Packed>) -> Vec<Entry<'_>> {
        let Some(changes) = &self.changes else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for packed in endpoints {
            let tuple = packed.tuple();
            let keys = changes.by_endpoints.find_all(&tuple, &self.rows);
            entries.extend(keys.filter_map(|k| self.rows.get(k)).map(Entry::Row));
            if let Some((packed, tw)) = self.time_wait.get_key_value(packed) {
                entries.push(Entry::TimeWait(packed, tw));
            }
        }
        entries.sort_by_cached_key(Entry::order);
        entries
    }
}
