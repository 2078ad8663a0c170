//! Where the table keeps its rows: one vector whose freed slots are reused,
//! and an index of the id-less rows by endpoints that holds slot numbers
//! hashed by their rows' endpoints. At 200,000 rows a hash map keyed by a
//! counter and one holding each row's endpoints again cost two thirds of
//! the table's memory.

use std::{hash::BuildHasher as _, net::SocketAddr};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{Row, Tuple};

/// A row's slot.
pub type Key = u32;

#[derive(Default)]
pub struct Slab {
    slots: Vec<Option<Row>>,
    free: Vec<Key>,
    len: usize,
}

impl Slab {
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve_exact(additional);
    }

    pub fn insert(&mut self, row: Row) -> Key {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(row);
                key
            }
            None => {
                self.slots.push(Some(row));
                (self.slots.len() - 1) as Key
            }
        }
    }

    pub fn remove(&mut self, key: Key) -> Option<Row> {
        let row = self.slots.get_mut(key as usize)?.take()?;
        self.free.push(key);
        self.len -= 1;
        Some(row)
    }

    pub fn get(&self, key: Key) -> Option<&Row> {
        self.slots.get(key as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut Row> {
        self.slots.get_mut(key as usize)?.as_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &Row)> {
        let slots = self.slots.iter().enumerate();
        slots.filter_map(|(key, row)| Some((key as Key, row.as_ref()?)))
    }

    pub fn values(&self) -> impl Iterator<Item = &Row> {
        self.slots.iter().flatten()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Row> {
        self.slots.iter_mut().flatten()
    }

    pub fn into_values(self) -> impl Iterator<Item = Row> {
        self.slots.into_iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// Id-less rows by endpoints. Rows may share endpoints (listeners with
/// SO_REUSEPORT); a lookup gives the lowest slot among them.
#[derive(Default)]
pub struct ByTuple {
    slots: HashTable<Key>,
    hasher: RandomState,
}

impl ByTuple {
    pub fn reserve(&mut self, additional: usize, rows: &Slab) {
        let hasher = &self.hasher;
        self.slots
            .reserve(additional, |&k| hasher.hash_one(tuple_of(rows, k)));
    }

    /// Indexes the row in slot `key`, which `rows` already holds.
    pub fn insert(&mut self, key: Key, rows: &Slab) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(tuple_of(rows, key));
        self.slots
            .insert_unique(hash, key, |&k| hasher.hash_one(tuple_of(rows, k)));
    }

    /// Forgets slot `key`, whose row had endpoints `tuple`.
    pub fn remove(&mut self, key: Key, tuple: &Tuple) {
        let hash = self.hasher.hash_one(tuple);
        if let Ok(entry) = self.slots.find_entry(hash, |&k| k == key) {
            entry.remove();
        }
    }

    pub fn find(&self, tuple: &Tuple, rows: &Slab) -> Option<Key> {
        self.find_all(tuple, rows).min()
    }

    /// Every slot whose row has these endpoints.
    pub fn find_all<'a>(
        &'a self,
        tuple: &'a Tuple,
        rows: &'a Slab,
    ) -> impl Iterator<Item = Key> + 'a {
        let hash = self.hasher.hash_one(tuple);
        let same = self.slots.iter_hash(hash).copied();
        same.filter(move |&k| tuple_of(rows, k) == *tuple)
    }
}

/// The endpoints of the row in slot `key`. Whenever the index hashes or
/// compares, every slot in it holds a row; were one empty, it would count
/// as unspecified endpoints and match no lookup of a real row.
fn tuple_of(rows: &Slab, key: Key) -> Tuple {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    rows.get(key).map_or((unspecified, unspecified), |r| {
        (r.socket.local, r.socket.remote)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decoder::StateEntered, procnet::sockets::InetSocket};

    fn row(local: &str, remote: &str) -> Row {
        Row {
            socket: InetSocket::from_endpoints(local.parse().unwrap(), remote.parse().unwrap(), 10),
            owner: None,
            entered: StateEntered::Bound(0),
            id: None,
            inode_read: true,
        }
    }

    #[test]
    fn shared_endpoints_give_the_lowest_slot_and_freed_slots_are_reused() {
        let (mut rows, mut index) = (Slab::default(), ByTuple::default());
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let tuple = ("127.0.0.1:80".parse().unwrap(), any);
        for local in ["127.0.0.1:80", "127.0.0.1:81", "127.0.0.1:80"] {
            let key = rows.insert(row(local, "0.0.0.0:0"));
            index.insert(key, &rows);
        }
        assert_eq!(index.find(&tuple, &rows), Some(0));
        rows.remove(0);
        index.remove(0, &tuple);
        assert_eq!((index.find(&tuple, &rows), rows.len()), (Some(2), 2));
        let key = rows.insert(row("127.0.0.1:82", "0.0.0.0:0"));
        index.insert(key, &rows);
        assert_eq!(key, 0);
        assert_eq!(
            index.find(&("127.0.0.1:82".parse().unwrap(), any), &rows),
            Some(0)
        );
        rows.remove(2);
        index.remove(2, &tuple);
        assert_eq!(index.find(&tuple, &rows), None);
        assert_eq!(rows.values().count(), 2);
    }
}
