//! What changed since the last drawing, for `-c --diff`: the rows of every
//! endpoints about to change, copied as they were at their first change
//! since that drawing (so, as it showed them), and every row by endpoints
//! to find them. A drawing compares those copies with the rows now: it
//! costs what changed, and no copy of the whole last drawing is kept.

use std::collections::hash_map::Entry as Slot;

use foldhash::HashMap;

use super::{ConnTable, Entry, Packed, Row, TimeWait, slab::ByTuple};

pub(super) struct Changes {
    /// The rows, as last drawn, of each endpoints changed since.
    before: HashMap<Packed, Vec<Drawn>>,
    /// Every row (not only the id-less ones), by endpoints.
    by_endpoints: ByTuple,
    /// The table is new since the last drawing: the rows that drawing
    /// showed (none before the first), to compare with the whole table.
    whole: Option<Vec<Drawn>>,
}

/// A row as it was drawn.
pub enum Drawn {
    Row(Row),
    TimeWait(Packed, TimeWait),
}

impl Drawn {
    pub fn entry(&self) -> Entry<'_> {
        match self {
            Drawn::Row(row) => Entry::Row(row),
            Drawn::TimeWait(packed, tw) => Entry::TimeWait(packed, tw),
        }
    }
}

/// What a drawing of the changes compares.
pub enum Changed {
    /// The table is new: all of it, against these rows of the last drawing.
    Whole(Vec<Drawn>),
    /// The rows with these endpoints, against theirs at the last drawing.
    Some(HashMap<Packed, Vec<Drawn>>),
}

impl Changed {
    /// The last drawing's rows of what changed, in display order.
    pub fn before(&self) -> Vec<Entry<'_>> {
        let mut entries: Vec<Entry> = match self {
            Changed::Whole(rows) => rows.iter().map(Drawn::entry).collect(),
            Changed::Some(by) => by.values().flatten().map(Drawn::entry).collect(),
        };
        entries.sort_by_cached_key(Entry::order);
        entries
    }
}

impl ConnTable {
    /// Starts keeping what changes. `drawn`: the rows the last drawing
    /// showed (`into_drawn` of the table this one replaces), which the
    /// next drawing compares with the whole table.
    pub fn track_changes(&mut self, drawn: Vec<Drawn>) {
        let mut by_endpoints = ByTuple::default();
        by_endpoints.reserve(self.rows.len(), &self.rows);
        for (key, _) in self.rows.iter() {
            by_endpoints.insert(key, &self.rows);
        }
        self.changes = Some(Changes {
            before: HashMap::default(),
            by_endpoints,
            whole: Some(drawn),
        });
    }

    /// What changed since the last call, which stands for a drawing; None
    /// when changes are not kept.
    pub fn take_changed(&mut self) -> Option<Changed> {
        let changes = self.changes.as_mut()?;
        let before = std::mem::take(&mut changes.before);
        Some(match changes.whole.take() {
            Some(drawn) => Changed::Whole(drawn),
            None => Changed::Some(before),
        })
    }

    /// The rows as the last drawing showed them, for the table that
    /// replaces this one (`track_changes`).
    pub fn into_drawn(self) -> Vec<Drawn> {
        let Self {
            rows,
            time_wait,
            changes,
            ..
        } = self;
        let Some(Changes { before, whole, .. }) = changes else {
            return Vec::new();
        };
        if let Some(drawn) = whole {
            return drawn;
        }
        let rows = rows.into_values().map(|row| {
            let packed = Packed::new(&(row.socket.local, row.socket.remote));
            (packed, Drawn::Row(row))
        });
        let time_wait = time_wait
            .into_iter()
            .map(|(packed, tw)| (packed, Drawn::TimeWait(packed, tw)));
        let unchanged = rows
            .chain(time_wait)
            .filter(|(packed, _)| !before.contains_key(packed))
            .map(|(_, drawn)| drawn);
        let mut drawn: Vec<Drawn> = unchanged.collect();
        drawn.extend(before.into_values().flatten());
        drawn
    }

    /// The rows with these endpoints are about to change: keeps them as
    /// they are if this is their first change since the last drawing.
    pub(super) fn touch(&mut self, packed: Packed) {
        let Some(changes) = &mut self.changes else {
            return;
        };
        if changes.whole.is_some() {
            return;
        }
        let Slot::Vacant(slot) = changes.before.entry(packed) else {
            return;
        };
        let tuple = packed.tuple();
        let rows = changes.by_endpoints.find_all(&tuple, &self.rows);
        let mut drawn: Vec<Drawn> = rows
            .filter_map(|key| self.rows.get(key))
            .map(|row| Drawn::Row(row.clone()))
            .collect();
        if let Some(tw) = self.time_wait.get(&packed) {
            drawn.push(Drawn::TimeWait(packed, *tw));
        }
        slot.insert(drawn);
    }

    /// Indexes row `key` by endpoints, once the table holds it.
    pub(super) fn index_row(&mut self, key: super::Key) {
        if let Some(changes) = &mut self.changes {
            changes.by_endpoints.insert(key, &self.rows);
        }
    }

    /// Forgets row `key`, with endpoints `tuple`, before its slot is freed.
    pub(super) fn unindex_row(&mut self, key: super::Key, tuple: &super::Tuple) {
        if let Some(changes) = &mut self.changes {
            changes.by_endpoints.remove(key, tuple);
        }
    }

    /// The rows with these endpoints, in display order.
    pub fn entries_of<'a>(&self, endpoints: impl Iterator<Item = &'a Packed>) -> Vec<Entry<'_>> {
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
