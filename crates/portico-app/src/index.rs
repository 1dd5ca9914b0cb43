//! The in-memory catalog index that answers every read.
//!
//! Final entities are kept as their serialized JSON text, LZ4-compressed (bodies are most of
//! the memory, and JSON shrinks to about a quarter); each read decompresses into an `Arc<str>`
//! so a response can be streamed after the lock is released. Filters, facets and ordering
//! run on inverted postings built from the search rows of reference §6.12: for every key, a
//! bitmap of the entities that have it and, for every value, a bitmap of the entities with that
//! value. Slot numbers are dense `u32`s so postings are compressed bitmaps (`roaring`).
//!
//! The index is rebuilt from the store at startup and kept current by applying the same changes
//! the stitcher writes (or, on another replica, the change feed), so it never disagrees with the
//! database for longer than one poll.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;
use portico_query::filter::{Condition, Filter};
use portico_query::search::SearchRow;
use roaring::RoaringBitmap;
use serde_json::Value;

pub use self::body::{Body, Codec};
pub use self::snapshot::{write_snapshot_in_steps, SnapshotError, SnapshotHeader};
use self::values::Values;

mod body;
mod snapshot;
mod values;

/// One stored entity.
#[derive(Debug)]
struct Slot {
    entity_ref: Box<str>,
    uid: Box<str>,
    /// The final entity's JSON text, compressed (see `body`): bodies are most of the index.
    body: Body,
}

#[derive(Debug, Default)]
struct KeyIndex {
    /// Entities having the key at all (even with a null or over-long value).
    all: RoaringBitmap,
    /// Lower-cased value to entities, with the spellings facets report.
    values: Values,
}

/// A key's index, possibly still unread in a snapshot's bytes: it is read on first use (or by
/// `Index::read_pending_keys`), so a restart serves as soon as the entities are in.
#[derive(Debug)]
struct LazyKey {
    /// The key's name, also what `Index::key_ids` hashes: stored once, for catalogs have keys
    /// by the hundred thousand.
    name: Box<str>,
    cell: std::sync::OnceLock<KeyIndex>,
    /// Boxed: keys are many, and nearly all are read soon after a start.
    source: Mutex<Option<Box<KeySource>>>,
}

/// Where an unread key is: a byte range of a snapshot, kept alive until every key is read.
#[derive(Debug)]
struct KeySource {
    bytes: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl LazyKey {
    fn ready(name: Box<str>, key: KeyIndex) -> LazyKey {
        LazyKey { name, cell: std::sync::OnceLock::from(key), source: Mutex::new(None) }
    }

    fn unread(name: Box<str>, source: KeySource) -> LazyKey {
        LazyKey { name, cell: std::sync::OnceLock::new(), source: Mutex::new(Some(Box::new(source))) }
    }

    fn get(&self) -> &KeyIndex {
        self.cell.get_or_init(|| {
            let Some(source) = self.source.lock().take() else { return KeyIndex::default() };
            let section = source.bytes.get(source.range.clone()).unwrap_or_default();
            snapshot::read_key(section).unwrap_or_else(|error| {
                // The snapshot's checksum held, so only a bug gets here; say so loudly.
                tracing::error!(key = %self.name, %error, "a key of the index snapshot could not be read; it is empty");
                KeyIndex::default()
            })
        })
    }

    fn get_mut(&mut self) -> &mut KeyIndex {
        self.get();
        self.cell.get_mut().expect("initialized just above")
    }

    fn is_read(&self) -> bool {
        self.cell.get().is_some()
    }
}

/// The entities having one value. Most values (names, uids, links, refs in relations) belong to
/// one entity, so that case is a bare number: a bitmap for every such value cost about 100 bytes
/// more each, which was most of the index at 10,000 entities.
#[derive(Debug, Clone)]
enum Posting {
    One(u32),
    Many(Box<RoaringBitmap>),
}

impl Posting {
    fn insert(&mut self, slot_id: u32) {
        match self {
            Posting::One(existing) if *existing == slot_id => {}
            Posting::One(existing) => {
                let bitmap: RoaringBitmap = [*existing, slot_id].into_iter().collect();
                *self = Posting::Many(Box::new(bitmap));
            }
            Posting::Many(bitmap) => {
                bitmap.insert(slot_id);
            }
        }
    }

    /// Removes a slot; evaluates to true when nothing is left.
    fn remove(&mut self, slot_id: u32) -> bool {
        match self {
            Posting::One(existing) => *existing == slot_id,
            Posting::Many(bitmap) => {
                bitmap.remove(slot_id);
                match bitmap.len() {
                    0 => true,
                    1 => {
                        if let Some(only) = bitmap.min() {
                            *self = Posting::One(only);
                        }
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn add_to(&self, target: &mut RoaringBitmap) {
        match self {
            Posting::One(slot_id) => {
                target.insert(*slot_id);
            }
            Posting::Many(bitmap) => *target |= &**bitmap,
        }
    }

    fn and(&self, other: &RoaringBitmap) -> RoaringBitmap {
        match self {
            Posting::One(slot_id) if other.contains(*slot_id) => [*slot_id].into_iter().collect(),
            Posting::One(_) => RoaringBitmap::new(),
            Posting::Many(bitmap) => &**bitmap & other,
        }
    }

    /// Estimated heap bytes beyond the enum itself.
    fn heap_bytes(&self) -> usize {
        match self {
            Posting::One(_) => 0,
            Posting::Many(bitmap) => bitmap.serialized_size() + 64,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Posting::One(slot_id) => Box::new(std::iter::once(*slot_id)),
            Posting::Many(bitmap) => Box::new(bitmap.iter()),
        }
    }
}

/// Slots found by one of their strings (the ref, or with `UID` the uid) without keeping a
/// second copy of it.
#[derive(Debug, Default)]
struct SlotLookup<const UID: bool> {
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<const UID: bool> SlotLookup<UID> {
    fn text(slot: &Slot) -> &str {
        if UID {
            &slot.uid
        } else {
            &slot.entity_ref
        }
    }

    fn hash_of(&self, slots: &[Option<Slot>], slot_id: u32) -> u64 {
        slots[slot_id as usize].as_ref().map_or(0, |slot| self.hasher.hash_one(Self::text(slot)))
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn get(&self, slots: &[Option<Slot>], text: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(text);
        self.table
            .find(hash, |&slot_id| {
                slots[slot_id as usize].as_ref().is_some_and(|slot| Self::text(slot) == text)
            })
            .copied()
    }

    /// Adds a slot, which must be filled.
    fn insert(&mut self, slots: &[Option<Slot>], slot_id: u32) {
        let hash = self.hash_of(slots, slot_id);
        let SlotLookup { table, hasher } = self;
        table.insert_unique(hash, slot_id, |&slot_id| {
            slots[slot_id as usize].as_ref().map_or(0, |slot| hasher.hash_one(Self::text(slot)))
        });
    }

    fn remove(&mut self, text: &str, slot_id: u32) {
        let hash = self.hasher.hash_one(text);
        if let Ok(found) = self.table.find_entry(hash, |&candidate| candidate == slot_id) {
            found.remove();
        }
    }

    fn reserve(&mut self, slots: &[Option<Slot>], additional: usize) {
        let SlotLookup { table, hasher } = self;
        table.reserve(additional, |&slot_id| {
            slots[slot_id as usize].as_ref().map_or(0, |slot| hasher.hash_one(Self::text(slot)))
        });
    }

    fn shrink(&mut self, slots: &[Option<Slot>]) {
        let SlotLookup { table, hasher } = self;
        table.shrink_to_fit(|&slot_id| {
            slots[slot_id as usize].as_ref().map_or(0, |slot| hasher.hash_one(Self::text(slot)))
        });
    }
}

/// The catalog index. Not synchronized itself: `Catalog` wraps it in a lock.
#[derive(Debug, Default)]
pub struct Index {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    live: RoaringBitmap,
    /// Entities whose last processing pass failed (`status.items` has errors).
    with_errors: RoaringBitmap,
    /// Slots by entity ref and by uid, hashing the slot's own copy of the string.
    by_ref: SlotLookup<false>,
    by_uid: SlotLookup<true>,
    /// Key ids, by the hash of the key's name.
    key_ids: hashbrown::HashTable<u32>,
    keys: Vec<LazyKey>,
    /// Compresses bodies; gets a dictionary once there are enough entities to train one.
    codec: Codec,
    /// The entity count at the last attempt to train a dictionary (0: never tried).
    dictionary_attempt: usize,
    /// Bumped on every change; sorted orders cached under an older generation are stale.
    generation: u64,
    orders: Mutex<HashMap<OrderKey, Arc<SortedOrder>>>,
    /// Facet answers by query, valid for one generation: a catalog that is not changing
    /// answers the same facet question (every catalog page asks several) from here.
    facets: Mutex<HashMap<String, CachedFacet>>,
}

/// An entity for `Index::upsert_many`: `(ref, uid, body, search rows, has processing errors)`.
pub type Upsert = (String, String, Arc<str>, Vec<SearchRow>, bool);

/// A search row of one key: `(slot, lower-cased value, value as written)`.
type KeyRow = (u32, Option<String>, Option<String>);

/// A key and the rows to add to it.
type KeyWork<'a> = (&'a mut KeyIndex, Vec<KeyRow>);

/// Adds rows to their keys (a share of `Index::upsert_many`'s work).
fn fill_keys(job: Vec<KeyWork<'_>>) {
    for (key, rows) in job {
        for (slot_id, value, original) in rows {
            key.all.insert(slot_id);
            if let Some(value) = &value {
                key.values.insert(value, original.as_deref().unwrap_or(value), slot_id);
            }
        }
    }
}

/// Computes a facet answer over an index (for the facet cache).
pub type FacetComputation = Arc<dyn Fn(&Index) -> Vec<(String, u64)> + Send + Sync>;

/// A facet answer and how to compute it again after the catalog changed.
#[derive(Clone)]
struct CachedFacet {
    generation: u64,
    answer: Arc<Vec<(String, u64)>>,
    recompute: FacetComputation,
}

impl std::fmt::Debug for CachedFacet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFacet").field("generation", &self.generation).finish_non_exhaustive()
    }
}

/// Trains a body codec on sample texts (see `Index::dictionary_samples`).
pub fn train_codec(samples: &[Arc<str>]) -> Option<Codec> {
    Codec::train(samples)
}

/// Entities the index holds before it trains a dictionary for their bodies, and how many of
/// them it samples.
const DICTIONARY_AT: usize = 1_000;
const DICTIONARY_SAMPLES: usize = 2_000;

/// Facet answers kept at most; the cache starts over when full.
const FACET_CACHE: usize = 512;

/// What an order sorts by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderKey {
    Uid,
    EntityRef,
    /// A lower-cased search key; entities lacking it are not in the order.
    Field(String),
}

/// Entities in sort order for one key (or by uid when the key is `None`).
#[derive(Debug)]
pub struct SortedOrder {
    generation: u64,
    /// `(rank of the sort value in values, slot)`, sorted by value then uid.
    entries: Vec<(u32, u32)>,
    values: Vec<Box<str>>,
    /// The entities in the order, for intersecting with a query's set.
    members: RoaringBitmap,
    /// Slot id to its rank (`u32::MAX` when absent), so a cursor's position is found at once.
    ranks: Vec<u32>,
}

impl SortedOrder {
    /// A placeholder that is stale under every generation.
    fn empty() -> SortedOrder {
        SortedOrder {
            generation: u64::MAX,
            entries: Vec::new(),
            values: Vec::new(),
            members: RoaringBitmap::new(),
            ranks: Vec::new(),
        }
    }
}

/// A position in a sorted order: the sort value (lower-cased) and the uid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub value: Option<String>,
    pub uid: String,
}

impl Index {
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.len() == 0
    }

    /// Inserts or replaces an entity. `rows` are its search rows.
    pub fn upsert(&mut self, entity_ref: &str, uid: &str, body: Arc<str>, rows: Vec<SearchRow>) {
        let body = self.codec.compress(&body);
        let slot_id = self.place(entity_ref, uid, body);
        for row in rows {
            let key_id = self.key_id(&row.key);
            let key = self.keys[key_id as usize].get_mut();
            key.all.insert(slot_id);
            if let Some(value) = &row.value {
                key.values.insert(value, row.original.as_deref().unwrap_or(value), slot_id);
            }
        }
    }

    /// Inserts or replaces many entities, as `upsert` then `flag_errors` would one by one.
    /// Search rows are most of that work, and the keys they go to are independent of each
    /// other, so a large batch is gathered by key and its keys are filled on several threads
    /// (bodies are compressed on several threads too).
    pub fn upsert_many(&mut self, mut entries: Vec<Upsert>) {
        /// Below this many rows, threads cost more than they save.
        const PARALLEL_ROWS: usize = 20_000;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(4);
        let rows: usize = entries.iter().map(|entry| entry.3.len()).sum();
        if rows < PARALLEL_ROWS || threads < 2 {
            for (entity_ref, uid, body, rows, has_errors) in entries {
                self.upsert(&entity_ref, &uid, body, rows);
                self.flag_errors(&entity_ref, has_errors);
            }
            return;
        }
        // A ref given twice keeps its last entry, as one by one: the earlier one's rows would
        // otherwise be added with the later one's instead of replaced by them.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            last.insert(entry.0.as_str(), position);
        }
        if last.len() < entries.len() {
            let keep: std::collections::HashSet<usize> = last.into_values().collect();
            let mut position = 0;
            entries.retain(|_| {
                position += 1;
                keep.contains(&(position - 1))
            });
        } else {
            drop(last);
        }
        let bodies = {
            let codec = &self.codec;
            let chunk = entries.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = entries
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter().map(|entry| codec.compress(&entry.2)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|part| part.join().expect("compressing does not panic"))
                    .collect::<Vec<_>>()
            })
        };
        let mut by_key: Vec<Vec<KeyRow>> = Vec::new();
        for ((entity_ref, uid, _, rows, has_errors), body) in entries.into_iter().zip(bodies) {
            let slot_id = self.place(&entity_ref, &uid, body);
            if has_errors {
                self.with_errors.insert(slot_id);
            } else {
                self.with_errors.remove(slot_id);
            }
            for row in rows {
                let key_id = self.key_id(&row.key) as usize;
                if by_key.len() <= key_id {
                    by_key.resize_with(key_id + 1, Vec::new);
                }
                by_key[key_id].push((slot_id, row.value, row.original));
            }
        }
        // Keys dealt out to threads, largest first, each to the thread with the fewest rows.
        let mut work: Vec<KeyWork<'_>> = self
            .keys
            .iter_mut()
            .zip(by_key)
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(key, rows)| (key.get_mut(), rows))
            .collect();
        work.sort_unstable_by_key(|(_, rows)| std::cmp::Reverse(rows.len()));
        let mut jobs: Vec<(usize, Vec<KeyWork<'_>>)> = (0..threads).map(|_| (0, Vec::new())).collect();
        for item in work {
            if let Some(job) = jobs.iter_mut().min_by_key(|job| job.0) {
                job.0 += item.1.len();
                job.1.push(item);
            }
        }
        std::thread::scope(|scope| {
            let mut jobs = jobs.into_iter().map(|(_, job)| job);
            let here = jobs.next();
            for job in jobs {
                scope.spawn(move || fill_keys(job));
            }
            if let Some(job) = here {
                fill_keys(job);
            }
        });
    }

    /// The slot of `entity_ref`, emptied of its former rows, or a new one, holding `body` now.
    fn place(&mut self, entity_ref: &str, uid: &str, body: Body) -> u32 {
        self.generation += 1;
        let (slot_id, new) = match self.by_ref.get(&self.slots, entity_ref) {
            Some(slot_id) => {
                self.unindex(slot_id);
                (slot_id, false)
            }
            None => {
                let slot_id = match self.free.pop() {
                    Some(slot_id) => slot_id,
                    None => {
                        self.slots.push(None);
                        u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 entities")
                    }
                };
                (slot_id, true)
            }
        };
        self.live.insert(slot_id);
        self.slots[slot_id as usize] = Some(Slot { entity_ref: entity_ref.into(), uid: uid.into(), body });
        if new {
            self.by_ref.insert(&self.slots, slot_id);
        }
        self.by_uid.insert(&self.slots, slot_id);
        slot_id
    }

    pub fn remove(&mut self, entity_ref: &str) -> bool {
        let Some(slot_id) = self.by_ref.get(&self.slots, entity_ref) else {
            return false;
        };
        self.by_ref.remove(entity_ref, slot_id);
        self.generation += 1;
        self.unindex(slot_id);
        self.slots[slot_id as usize] = None;
        self.live.remove(slot_id);
        self.free.push(slot_id);
        true
    }

    /// Makes room in the ref and uid lookups (reading a snapshot).
    fn reserve_lookups(&mut self, additional: usize) {
        self.by_ref.reserve(&self.slots, additional);
        self.by_uid.reserve(&self.slots, additional);
    }

    /// Gives back the room grown into while filling (after a load).
    pub fn shrink(&mut self) {
        for key in &mut self.keys {
            key.get_mut().values.shrink();
        }
        self.by_ref.shrink(&self.slots);
        self.by_uid.shrink(&self.slots);
    }

    fn unindex(&mut self, slot_id: u32) {
        let Some(slot) = self.slots[slot_id as usize].take() else {
            return;
        };
        self.with_errors.remove(slot_id);
        self.by_uid.remove(&slot.uid, slot_id);
        // The rows are derived again from the body rather than kept per entity: removal is rare
        // next to reads, and keeping them would roughly double the index's memory.
        let text = self.codec.decompress(&slot.body).unwrap_or_else(|| Arc::from(""));
        let rows = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|entity| portico_query::search::search_rows(&entity).ok())
            .unwrap_or_default();
        for row in rows {
            let Some(key_id) = self.find_key(row.key.as_str()) else { continue };
            let key = self.keys[key_id as usize].get_mut();
            key.all.remove(slot_id);
            if let Some(lower) = &row.value {
                key.values.remove(lower, row.original.as_deref().unwrap_or(lower), slot_id);
            }
        }
        // Keep the slot's identity until the caller re-fills it.
        self.slots[slot_id as usize] = None;
    }

    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(key_id) = self.find_key(key) {
            return key_id;
        }
        let key_id = u32::try_from(self.keys.len()).expect("fewer than 2^32 keys");
        self.keys.push(LazyKey::ready(key.into(), KeyIndex::default()));
        self.add_key_id(key_id);
        key_id
    }

    fn find_key(&self, key: &str) -> Option<u32> {
        let hash = values::HASHER.hash_one(key);
        self.key_ids.find(hash, |&key_id| *self.keys[key_id as usize].name == *key).copied()
    }

    /// Makes key `key_id` (already in `keys`) findable by name.
    fn add_key_id(&mut self, key_id: u32) {
        let Index { key_ids, keys, .. } = self;
        let hash = values::HASHER.hash_one(&*keys[key_id as usize].name);
        key_ids.insert_unique(hash, key_id, |&other| values::HASHER.hash_one(&*keys[other as usize].name));
    }

    fn key(&self, key: &str) -> Option<&KeyIndex> {
        self.find_key(key).map(|key_id| self.keys[key_id as usize].get())
    }

    /// The number of keys (read or not), for `read_key`.
    pub fn key_slots(&self) -> usize {
        self.keys.len()
    }

    /// Reads key number `key_id` if a snapshot left it unread; evaluates to whether it did.
    pub fn read_key(&self, key_id: usize) -> bool {
        match self.keys.get(key_id) {
            Some(key) if !key.is_read() => {
                key.get();
                true
            }
            _ => false,
        }
    }

    /// Sample bodies to train a compression dictionary on, when the index has none yet and
    /// holds enough entities (tried again only once the catalog has doubled).
    pub fn dictionary_samples(&mut self) -> Option<Vec<Arc<str>>> {
        if !self.needs_dictionary() {
            return None;
        }
        self.dictionary_attempt = self.len();
        // Slots fill in arrival order, and arrival is grouped (by file, by ref): a stride over
        // all of them samples every kind.
        let step = (self.slots.len() / DICTIONARY_SAMPLES).max(1);
        let samples = self
            .slots
            .iter()
            .step_by(step)
            .flatten()
            .filter_map(|slot| self.codec.decompress(&slot.body))
            .collect();
        Some(samples)
    }

    /// True when `dictionary_samples` would hand out samples.
    pub fn needs_dictionary(&self) -> bool {
        self.codec.dictionary().is_none()
            && self.len() >= DICTIONARY_AT
            && (self.dictionary_attempt == 0 || self.len() >= 2 * self.dictionary_attempt)
    }

    /// Installs a trained codec; bodies compressed before stay readable until recompressed.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Up to `limit` bodies not yet in the codec's best form, from slot `from` on, and where to
    /// continue (`None` at the end).
    pub fn outdated_bodies(&self, from: u32, limit: usize) -> (Vec<(u32, Body)>, Option<u32>) {
        let mut found = Vec::new();
        for (slot_id, slot) in self.slots.iter().enumerate().skip(from as usize) {
            let slot_id = u32::try_from(slot_id).unwrap_or(u32::MAX);
            if found.len() == limit {
                return (found, Some(slot_id));
            }
            if let Some(slot) = slot {
                if self.codec.outdated(&slot.body) {
                    found.push((slot_id, slot.body.clone()));
                }
            }
        }
        (found, None)
    }

    /// Swaps recompressed bodies in, except where the entity changed since they were read.
    /// Not a change of content, so the generation stays.
    pub fn replace_bodies(&mut self, bodies: Vec<(u32, Body, Body)>) {
        for (slot_id, old, new) in bodies {
            if let Some(Some(slot)) = self.slots.get_mut(slot_id as usize) {
                if slot.body == old {
                    slot.body = new;
                }
            }
        }
    }

    /// Records whether the entity carries processing errors (the UI filters on it; the API's
    /// filter language cannot reach `status`, as in Backstage).
    pub fn flag_errors(&mut self, entity_ref: &str, has_errors: bool) {
        if let Some(slot_id) = self.by_ref.get(&self.slots, entity_ref) {
            if has_errors {
                self.with_errors.insert(slot_id);
            } else {
                self.with_errors.remove(slot_id);
            }
        }
    }

    /// Entities whose last processing pass failed.
    /// Changes with every change to the catalog; answers computed under one generation stay
    /// valid until it moves.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn with_errors(&self) -> &RoaringBitmap {
        &self.with_errors
    }

    pub fn by_ref(&self, entity_ref: &str) -> Option<Arc<str>> {
        let slot_id = self.by_ref.get(&self.slots, entity_ref)?;
        self.body(slot_id)
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<str>> {
        let slot_id = self.by_uid.get(&self.slots, uid)?;
        self.body(slot_id)
    }

    pub fn ref_of_uid(&self, uid: &str) -> Option<&str> {
        let slot_id = self.by_uid.get(&self.slots, uid)?;
        self.slots[slot_id as usize].as_ref().map(|slot| &*slot.entity_ref)
    }

    pub fn contains_ref(&self, entity_ref: &str) -> bool {
        self.by_ref.get(&self.slots, entity_ref).is_some()
    }

    pub fn slot_of_ref(&self, entity_ref: &str) -> Option<u32> {
        self.by_ref.get(&self.slots, entity_ref)
    }

    pub fn body(&self, slot_id: u32) -> Option<Arc<str>> {
        let slot = self.slots.get(slot_id as usize)?.as_ref()?;
        self.codec.decompress(&slot.body)
    }

    pub fn uid(&self, slot_id: u32) -> Option<&str> {
        self.slots.get(slot_id as usize)?.as_ref().map(|slot| &*slot.uid)
    }

    pub fn entity_ref(&self, slot_id: u32) -> Option<&str> {
        self.slots.get(slot_id as usize)?.as_ref().map(|slot| &*slot.entity_ref)
    }

    /// Every live entity.
    pub fn universe(&self) -> RoaringBitmap {
        self.live.clone()
    }

    /// The entities matching `filter` (all entities for `None`).
    pub fn eval(&self, filter: Option<&Filter>) -> RoaringBitmap {
        match filter {
            None => self.live.clone(),
            Some(filter) => self.eval_filter(filter),
        }
    }

    fn eval_filter(&self, filter: &Filter) -> RoaringBitmap {
        match filter {
            Filter::All(items) => {
                let mut result: Option<RoaringBitmap> = None;
                for item in items {
                    let set = self.eval_filter(item);
                    result = Some(match result {
                        None => set,
                        Some(acc) => acc & set,
                    });
                    if result.as_ref().is_some_and(RoaringBitmap::is_empty) {
                        break;
                    }
                }
                result.unwrap_or_else(|| self.live.clone())
            }
            Filter::Any(items) => {
                let mut result = RoaringBitmap::new();
                for item in items {
                    result |= self.eval_filter(item);
                }
                result
            }
            Filter::Not(inner) => &self.live - &self.eval_filter(inner),
            Filter::Key { key, condition } => {
                let Some(index) = self.key(key) else {
                    return match condition {
                        Condition::Exists(false) => self.live.clone(),
                        _ => RoaringBitmap::new(),
                    };
                };
                match condition {
                    Condition::Exists(true) => index.all.clone(),
                    Condition::Exists(false) => &self.live - &index.all,
                    Condition::In(values) => {
                        let mut result = RoaringBitmap::new();
                        for value in values {
                            if let Some(posting) = index.values.get(value) {
                                posting.add_to(&mut result);
                            }
                        }
                        result
                    }
                    Condition::HasPrefix(prefix) => {
                        let mut result = RoaringBitmap::new();
                        index.values.for_each(|value, posting| {
                            if value.starts_with(prefix.as_str()) {
                                posting.add_to(&mut result);
                            }
                        });
                        result
                    }
                }
            }
        }
    }

    /// Entities of `within` having a value of one of `keys` that contains `term` (lower-cased).
    pub fn full_text(&self, within: &RoaringBitmap, keys: &[String], term: &str) -> RoaringBitmap {
        let mut result = RoaringBitmap::new();
        for key in keys {
            let Some(index) = self.key(key) else { continue };
            index.values.for_each(|value, posting| {
                if value.contains(term) {
                    posting.add_to(&mut result);
                }
            });
        }
        result & within
    }

    /// The cached answer for `question` (which must identify the facet's key and entity set
    /// completely) if the catalog has not changed since, else `compute`'s, which is kept with
    /// `compute` so `warm` can refresh it.
    pub fn cached_facet(&self, question: String, compute: FacetComputation) -> Arc<Vec<(String, u64)>> {
        if let Some(cached) = self.facets.lock().get(&question) {
            if cached.generation == self.generation {
                return cached.answer.clone();
            }
        }
        let answer = Arc::new(compute(self));
        let mut cache = self.facets.lock();
        if cache.len() >= FACET_CACHE {
            cache.clear();
        }
        cache.insert(
            question,
            CachedFacet { generation: self.generation, answer: answer.clone(), recompute: compute },
        );
        answer
    }

    /// Rebuilds the sort orders and facet answers that were asked for before the last change,
    /// so the next page that needs them does not wait. Called when the engine is idle.
    pub fn warm(&self) {
        let stale_orders: Vec<OrderKey> = self
            .orders
            .lock()
            .iter()
            .filter(|(_, order)| order.generation != self.generation)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale_orders {
            self.order(&key);
        }
        let stale_facets: Vec<(String, CachedFacet)> = self
            .facets
            .lock()
            .iter()
            .filter(|(_, cached)| cached.generation != self.generation)
            .map(|(question, cached)| (question.clone(), cached.clone()))
            .collect();
        for (question, cached) in stale_facets {
            let answer = Arc::new((cached.recompute)(self));
            self.facets.lock().insert(
                question,
                CachedFacet { generation: self.generation, answer, recompute: cached.recompute },
            );
        }
    }

    /// Prepares a fresh copy of `old` to replace it: generations keep growing (answers cached
    /// elsewhere under a generation must never look current again), and the orders and facet
    /// answers `old` had cached come over as stale entries for `warm` to compute.
    pub fn take_over_from(&mut self, old: &Index) {
        self.generation = old.generation + 1;
        let keys: Vec<OrderKey> = old.orders.lock().keys().cloned().collect();
        for key in keys {
            self.orders.lock().insert(key, Arc::new(SortedOrder::empty()));
        }
        let facets: Vec<(String, CachedFacet)> =
            old.facets.lock().iter().map(|(question, cached)| (question.clone(), cached.clone())).collect();
        let mut mine = self.facets.lock();
        for (question, mut cached) in facets {
            cached.generation = u64::MAX;
            mine.insert(question, cached);
        }
    }

    /// Facet counts of `key` over `within`: original-case value to count, ascending by value.
    pub fn facet(&self, key: &str, within: &RoaringBitmap) -> Vec<(String, u64)> {
        self.facet_top(key, within, usize::MAX)
    }

    /// Like `facet`, but only the `limit` values with the highest counts (ties by value), still
    /// ascending by value. A key with many values (owners, systems) costs one count each and
    /// no allocation beyond the values returned.
    pub fn facet_top(&self, key: &str, within: &RoaringBitmap, limit: usize) -> Vec<(String, u64)> {
        let Some(index) = self.key(key) else {
            return Vec::new();
        };
        let mut counts = index.values.facet_counts(within);
        if counts.len() > limit {
            let by_count = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
            counts.select_nth_unstable_by(limit, by_count);
            counts.truncate(limit);
        }
        counts.sort_unstable();
        counts.into_iter().map(|(value, count)| (value.to_owned(), count)).collect()
    }

    /// The entities in sort order: by a field's lower-cased value then uid, by uid, or by ref.
    /// Entities lacking the field are absent. Cached until the next change.
    pub fn order(&self, key: &OrderKey) -> Arc<SortedOrder> {
        let cache_key = key.clone();
        if let Some(order) = self.orders.lock().get(&cache_key) {
            if order.generation == self.generation {
                return order.clone();
            }
        }
        let order = Arc::new(self.build_order(key));
        self.orders.lock().insert(cache_key, order.clone());
        order
    }

    fn build_order(&self, key: &OrderKey) -> SortedOrder {
        let mut values: Vec<Box<str>> = Vec::new();
        let mut entries: Vec<(u32, u32)> = Vec::new();
        match key {
            OrderKey::Uid => {
                entries = self.live.iter().map(|slot_id| (0, slot_id)).collect();
            }
            OrderKey::EntityRef => {
                let mut by_ref: Vec<(&str, u32)> = self
                    .live
                    .iter()
                    .map(|slot_id| (self.entity_ref(slot_id).unwrap_or(""), slot_id))
                    .collect();
                by_ref.sort();
                // Refs are unique, so the rank alone orders them; uid ties never happen.
                let entries = by_ref
                    .iter()
                    .enumerate()
                    .map(|(rank, (_, slot_id))| (u32::try_from(rank).unwrap_or(u32::MAX), *slot_id))
                    .collect();
                let values = by_ref.into_iter().map(|(entity_ref, _)| entity_ref.into()).collect();
                return self.finish_order(entries, values);
            }
            OrderKey::Field(key) => {
                if let Some(index) = self.key(key) {
                    let mut sorted: Vec<(Box<str>, &Posting)> = Vec::with_capacity(index.values.len());
                    index.values.for_each(|value, posting| sorted.push((value.into(), posting)));
                    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    let mut seen = RoaringBitmap::new();
                    for (rank, (_, posting)) in sorted.iter().enumerate() {
                        let rank = u32::try_from(rank).unwrap_or(u32::MAX);
                        for slot_id in posting.iter() {
                            // Multi-valued keys sort an entity under its first value only.
                            if seen.insert(slot_id) {
                                entries.push((rank, slot_id));
                            }
                        }
                    }
                    values = sorted.into_iter().map(|(value, _)| value).collect();
                }
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.uid_of(a.1).cmp(self.uid_of(b.1))));
        self.finish_order(entries, values)
    }

    fn finish_order(&self, entries: Vec<(u32, u32)>, values: Vec<Box<str>>) -> SortedOrder {
        let members: RoaringBitmap = entries.iter().map(|&(_, slot_id)| slot_id).collect();
        let mut ranks = vec![u32::MAX; self.slots.len()];
        for &(rank, slot_id) in &entries {
            if let Some(entry) = ranks.get_mut(slot_id as usize) {
                *entry = rank;
            }
        }
        SortedOrder { generation: self.generation, entries, values, members, ranks }
    }

    fn uid_of(&self, slot_id: u32) -> &str {
        self.uid(slot_id).unwrap_or("")
    }

    /// Walks `order` from a position (exclusive) forwards or backwards, returning up to `limit`
    /// slots that are in `within`, and whether more such slots exist beyond them.
    pub fn page(
        &self,
        order: &SortedOrder,
        within: &RoaringBitmap,
        after: Option<&Position>,
        backwards: bool,
        skip: usize,
        limit: usize,
    ) -> (Vec<u32>, bool) {
        let start = match after {
            None => {
                if backwards {
                    order.entries.len()
                } else {
                    0
                }
            }
            Some(position) => {
                let rank = match &position.value {
                    None => 0,
                    Some(value) => match order.values.binary_search_by(|v| (**v).cmp(value.as_str())) {
                        Ok(rank) | Err(rank) => rank,
                    },
                };
                let exact_rank = position
                    .value
                    .as_ref()
                    .is_some_and(|value| order.values.get(rank).is_some_and(|v| **v == **value))
                    || position.value.is_none();
                let rank = u32::try_from(rank).unwrap_or(u32::MAX);
                // First entry strictly greater than (rank, uid).
                let greater = order.entries.partition_point(|&(entry_rank, slot_id)| {
                    entry_rank < rank
                        || (entry_rank == rank && exact_rank && self.uid_of(slot_id) <= position.uid.as_str())
                });
                if backwards {
                    // Entries strictly less than (rank, uid).
                    order.entries.partition_point(|&(entry_rank, slot_id)| {
                        entry_rank < rank
                            || (entry_rank == rank
                                && exact_rank
                                && self.uid_of(slot_id) < position.uid.as_str())
                    })
                } else {
                    greater
                }
            }
        };
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut skipped = 0;
        let mut more = false;
        let mut visit = |slot_id: u32| -> bool {
            if !within.contains(slot_id) {
                return true;
            }
            if skipped < skip {
                skipped += 1;
                return true;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            items.push(slot_id);
            true
        };
        if backwards {
            for &(_, slot_id) in order.entries[..start].iter().rev() {
                if !visit(slot_id) {
                    break;
                }
            }
            items.reverse();
        } else {
            for &(_, slot_id) in &order.entries[start..] {
                if !visit(slot_id) {
                    break;
                }
            }
        }
        (items, more)
    }

    /// The position of a slot in an order (for building cursors).
    pub fn position(&self, order: &SortedOrder, slot_id: u32) -> Position {
        let value = order
            .ranks
            .get(slot_id as usize)
            .and_then(|&rank| order.values.get(rank as usize))
            .map(|value| value.to_string());
        Position { value, uid: self.uid_of(slot_id).to_owned() }
    }

    /// The entities an order by `key` would hold, without sorting them: what a query that
    /// asks only for its total needs (`limit=0`, polled while a catalog is ingested, when
    /// every answer finds the sorted orders stale).
    pub fn members_of(&self, key: &OrderKey) -> RoaringBitmap {
        if let Some(order) = self.orders.lock().get(key) {
            if order.generation == self.generation {
                return order.members.clone();
            }
        }
        match key {
            OrderKey::Uid | OrderKey::EntityRef => self.live.clone(),
            OrderKey::Field(key) => {
                let mut members = RoaringBitmap::new();
                if let Some(index) = self.key(key) {
                    index.values.for_each(|_, posting| members.extend(posting.iter()));
                }
                members
            }
        }
    }

    /// The set of entities present in an order (those having the sort key).
    pub fn order_members<'a>(&self, order: &'a SortedOrder) -> &'a RoaringBitmap {
        &order.members
    }

    /// Names of every key seen, for diagnostics.
    pub fn key_count(&self) -> usize {
        self.keys.iter().filter(|key| !key.get().all.is_empty()).count()
    }

    /// The body of an entity parsed, for callers that need structure (ancestry, relations).
    pub fn parsed(&self, entity_ref: &str) -> Option<Value> {
        self.by_ref(entity_ref).and_then(|body| serde_json::from_str(&body).ok())
    }

    /// Estimated heap bytes per part of the index (for diagnostics and the memory work).
    pub fn memory_report(&self) -> Vec<(String, usize)> {
        fn string_bytes(s: &str) -> usize {
            s.len().next_multiple_of(8).max(8)
        }
        let mut report = Vec::new();
        let slots = self.slots.capacity() * std::mem::size_of::<Option<Slot>>();
        let (mut refs, mut uids, mut bodies) = (0, 0, 0);
        for slot in self.slots.iter().flatten() {
            refs += string_bytes(&slot.entity_ref);
            uids += string_bytes(&slot.uid);
            bodies += slot.body.len().next_multiple_of(8);
        }
        report.push(("slots".to_owned(), slots));
        report.push(("slot refs".to_owned(), refs));
        report.push(("slot uids".to_owned(), uids));
        report.push(("bodies (compressed)".to_owned(), bodies));
        let lookups = (self.by_ref.table.capacity() + self.by_uid.table.capacity()) * 5;
        report.push(("ref and uid lookups".to_owned(), lookups));
        let mut keys: Vec<(String, usize)> = Vec::new();
        let (mut values_total, mut count_total) = (0, 0);
        // Keys still unread from a snapshot are left out (and left unread).
        for (name, key) in self.keys.iter().filter_map(|key| Some((&key.name, key.cell.get()?))) {
            let bytes = key.values.heap_bytes() + key.all.serialized_size();
            values_total += bytes;
            count_total += key.values.len();
            keys.push((format!("key {name} ({} values)", key.values.len()), bytes));
        }
        report.push((format!("postings, all keys ({count_total} values)"), values_total));
        // What every key costs besides its values: its slot, name and table entry.
        let key_bytes = self.keys.capacity() * std::mem::size_of::<LazyKey>()
            + self.keys.iter().map(|key| string_bytes(&key.name)).sum::<usize>()
            + self.key_ids.capacity() * 5;
        report.push((format!("keys ({} of them): slots, names, lookup", self.keys.len()), key_bytes));
        keys.sort_by_key(|key| std::cmp::Reverse(key.1));
        report.extend(keys.into_iter().take(15));
        report
    }

    /// Names of keys, for debugging.
    pub fn key_names(&self) -> Vec<&str> {
        self.keys.iter().map(|key| &*key.name).collect()
    }
}

#[cfg(test)]
mod tests;
