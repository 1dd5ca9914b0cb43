//! The distinct values of one search key and the entities having each.
//!
//! At 250,000 entities there are millions of distinct values (names, titles, uids, refs), most
//! held by one entity, so their layout decides the index's memory. Text lives in one arena
//! string per key, found through a table of ids, with no allocation per value. Filters compare
//! lower-cased values, but facets answer with values as written; instead of keeping both, a
//! value keeps the spelling its first entity used, whenever that spelling lower-cases to it
//! (nearly always), and only other spellings of the same value are kept aside.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use roaring::RoaringBitmap;

use super::Posting;

/// A value's place in the arena. `len`'s top bit says the text is a spelling, not the
/// lower-cased form.
#[derive(Debug, Clone)]
struct Entry {
    start: u32,
    len: u32,
    posting: Posting,
}

const SPELLED: u32 = 1 << 31;
/// Up to this many value ids, a key finds its values by scanning them: most keys (Backstage's
/// `<path>.<item>` rows, one per distinct array item) have a single value, and a hash table
/// would cost each about 48 bytes more.
const SMALL: usize = 8;
/// Arena bytes of removed values tolerated before it is compacted (and at least half of it).
const GARBAGE_FLOOR: usize = 1 << 20;

#[derive(Debug, Default)]
pub(super) struct Values {
    text: String,
    /// By value id; removed ids have `None` until reused.
    entries: Vec<Option<Entry>>,
    /// The hash table and the bookkeeping of removals: boxed, and made on first need, since
    /// most keys have a few values that never go (64 bytes per key instead of 120).
    #[allow(clippy::box_collection)]
    more: Option<Box<More>>,
    /// Other spellings of a value and their entities; the value's own text is the spelling of
    /// every entity not listed here.
    /// Boxed: most keys never need it, and catalogs have keys by the hundred thousand
    /// (Backstage's `spec.dependsOn.<ref>` rows make one per distinct reference).
    #[allow(clippy::box_collection)] // the point: 8 bytes instead of 48 for the common case
    spellings: Option<Box<HashMap<u32, Vec<Spelling>>>>,
}

/// What a key with more than `SMALL` values, or with removed values, also needs.
#[derive(Debug, Default)]
struct More {
    /// Value ids, by the hash of their lower-cased text (only past `SMALL` ids).
    table: HashTable<u32>,
    /// Removed ids, reused first.
    free: Vec<u32>,
    /// Arena bytes of removed values.
    garbage: usize,
}

/// One hash seed for every key, random per process (hashes are never stored).
pub(super) static HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

/// A spelling of a value other than the one stored, and the entities using it.
pub(super) type Spelling = (Box<str>, Posting);

/// Lower-cases as `str::to_lowercase` does, except for the final-sigma rule; a spelling stands
/// for its value only when the two agree, so hashing a spelling lower-cased this way gives the
/// value's hash.
fn lower_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// Hashes table entries again when the table grows or shrinks (rare: a spelling allocates).
fn rehasher<'a>(text: &'a str, entries: &'a [Option<Entry>]) -> impl Fn(&u32) -> u64 + 'a {
    move |&id| entries[id as usize].as_ref().map_or(0, |entry| entry_hash(text, entry, &mut String::new()))
}

fn stored<'a>(text: &'a str, entry: &Entry) -> &'a str {
    let len = (entry.len & !SPELLED) as usize;
    &text[entry.start as usize..entry.start as usize + len]
}

/// The hash of an entry's lower-cased text; a spelling is lower-cased into `buffer` first.
fn entry_hash(text: &str, entry: &Entry, buffer: &mut String) -> u64 {
    let stored = stored(text, entry);
    if entry.len & SPELLED == 0 {
        HASHER.hash_one(stored)
    } else {
        buffer.clear();
        buffer.extend(lower_chars(stored));
        HASHER.hash_one(buffer.as_str())
    }
}

impl Values {
    pub(super) fn len(&self) -> usize {
        // Every removed id is free until reused.
        self.entries.len() - self.more.as_ref().map_or(0, |more| more.free.len())
    }

    fn garbage(&self) -> usize {
        self.more.as_ref().map_or(0, |more| more.garbage)
    }

    fn hash(&self, lower: &str) -> u64 {
        HASHER.hash_one(lower)
    }

    fn stored(&self, entry: &Entry) -> &str {
        stored(&self.text, entry)
    }

    fn matches(&self, entry: &Entry, lower: &str) -> bool {
        let stored = self.stored(entry);
        if entry.len & SPELLED == 0 {
            stored == lower
        } else {
            lower_chars(stored).eq(lower.chars())
        }
    }

    fn find(&self, lower: &str) -> Option<u32> {
        if self.entries.len() <= SMALL {
            let found = self
                .entries
                .iter()
                .position(|entry| entry.as_ref().is_some_and(|entry| self.matches(entry, lower)));
            return found.and_then(|id| u32::try_from(id).ok());
        }
        let hash = self.hash(lower);
        self.more
            .as_ref()?
            .table
            .find(hash, |&id| {
                self.entries[id as usize].as_ref().is_some_and(|entry| self.matches(entry, lower))
            })
            .copied()
    }

    pub(super) fn get(&self, lower: &str) -> Option<&Posting> {
        let id = self.find(lower)?;
        self.entries[id as usize].as_ref().map(|entry| &entry.posting)
    }

    /// Adds `slot_id` under `lower`, written `spelling` in the entity.
    pub(super) fn insert(&mut self, lower: &str, spelling: &str, slot_id: u32) {
        let Some(id) = self.find(lower) else {
            let id = self.add(lower, spelling, Posting::One(slot_id));
            if self.spelling_of(id) != spelling {
                self.spellings
                    .get_or_insert_default()
                    .insert(id, vec![(spelling.into(), Posting::One(slot_id))]);
            }
            return;
        };
        if let Some(entry) = self.entries[id as usize].as_mut() {
            entry.posting.insert(slot_id);
        }
        if self.spelling_of(id) != spelling {
            let others = self.spellings.get_or_insert_default().entry(id).or_default();
            match others.iter_mut().find(|(other, _)| **other == *spelling) {
                Some((_, posting)) => posting.insert(slot_id),
                None => others.push((spelling.into(), Posting::One(slot_id))),
            }
        }
    }

    /// Stores a new value: its spelling when that lower-cases to it, else the lower-cased text.
    fn add(&mut self, lower: &str, spelling: &str, posting: Posting) -> u32 {
        let spelled = spelling != lower && lower_chars(spelling).eq(lower.chars());
        let text = if spelled { spelling } else { lower };
        let start = u32::try_from(self.text.len()).expect("a key's values fit in 4 GiB");
        self.text.push_str(text);
        let len = u32::try_from(text.len()).expect("values are short") | if spelled { SPELLED } else { 0 };
        let entry = Some(Entry { start, len, posting });
        let id = match self.more.as_mut().and_then(|more| more.free.pop()) {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 values")
            }
        };
        self.index(id, &mut String::new());
        id
    }

    /// Adds value `id` to the hash table, once there are more than `SMALL` ids (building the
    /// table from every value when it has fallen behind). `buffer` is scratch space for
    /// lower-casing.
    fn index(&mut self, id: u32, buffer: &mut String) {
        if self.entries.len() <= SMALL {
            return;
        }
        let Values { more, entries, text, .. } = self;
        let More { table, free, .. } = &mut **more.get_or_insert_default();
        if table.len() + 1 == entries.len() - free.len() {
            if let Some(entry) = &entries[id as usize] {
                let hash = entry_hash(text, entry, buffer);
                table.insert_unique(hash, id, rehasher(text, entries));
            }
            return;
        }
        table.clear();
        for (other, entry) in entries.iter().enumerate() {
            let (Some(entry), Ok(other)) = (entry, u32::try_from(other)) else { continue };
            let hash = entry_hash(text, entry, buffer);
            table.insert_unique(hash, other, rehasher(text, entries));
        }
    }

    /// The other spellings of value `id`, if any.
    fn others(&self, id: usize) -> Option<&Vec<Spelling>> {
        let id = u32::try_from(id).ok()?;
        self.spellings.as_ref()?.get(&id)
    }

    /// The spelling a value's own text stands for.
    fn spelling_of(&self, id: u32) -> &str {
        self.entries[id as usize].as_ref().map_or("", |entry| self.stored(entry))
    }

    /// Removes `slot_id` from `lower` (written `spelling`); the value goes when no entity has it.
    pub(super) fn remove(&mut self, lower: &str, spelling: &str, slot_id: u32) {
        let Some(id) = self.find(lower) else { return };
        if self.spelling_of(id) != spelling {
            if let Some(spellings) = self.spellings.as_mut() {
                if let Some(others) = spellings.get_mut(&id) {
                    others.retain_mut(|(other, posting)| **other != *spelling || !posting.remove(slot_id));
                    if others.is_empty() {
                        spellings.remove(&id);
                    }
                }
                if spellings.is_empty() {
                    self.spellings = None;
                }
            }
        }
        let emptied = self.entries[id as usize].as_mut().is_some_and(|entry| entry.posting.remove(slot_id));
        if !emptied {
            return;
        }
        if self.entries.len() > SMALL {
            let hash = self.hash(lower);
            if let Some(more) = self.more.as_mut() {
                if let Ok(found) = more.table.find_entry(hash, |&candidate| candidate == id) {
                    found.remove();
                }
            }
        }
        let more = self.more.get_or_insert_default();
        if let Some(entry) = self.entries[id as usize].take() {
            more.garbage += (entry.len & !SPELLED) as usize;
        }
        if let Some(spellings) = self.spellings.as_mut() {
            spellings.remove(&id);
            if spellings.is_empty() {
                self.spellings = None;
            }
        }
        more.free.push(id);
        if more.garbage > GARBAGE_FLOOR && more.garbage * 2 > self.text.len() {
            self.compact();
        }
    }

    /// Rewrites the arena without the text of removed values.
    fn compact(&mut self) {
        let mut text = String::with_capacity(self.text.len() - self.garbage());
        for entry in self.entries.iter_mut().flatten() {
            let len = (entry.len & !SPELLED) as usize;
            let start = entry.start as usize;
            entry.start = u32::try_from(text.len()).expect("a key's values fit in 4 GiB");
            text.push_str(&self.text[start..start + len]);
        }
        self.text = text;
        if let Some(more) = self.more.as_mut() {
            more.garbage = 0;
        }
    }

    /// Calls `visit` with every value, lower-cased, and its entities.
    pub(super) fn for_each<'a>(&'a self, mut visit: impl FnMut(&str, &'a Posting)) {
        let mut buffer = String::new();
        for entry in self.entries.iter().flatten() {
            let stored = self.stored(entry);
            if entry.len & SPELLED == 0 {
                visit(stored, &entry.posting);
            } else {
                buffer.clear();
                buffer.extend(lower_chars(stored));
                visit(&buffer, &entry.posting);
            }
        }
    }

    /// Counts per spelling of the entities of `within`: `(spelling, count)`, unordered.
    pub(super) fn facet_counts(&self, within: &RoaringBitmap) -> Vec<(&str, u64)> {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for (id, entry) in self.entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let own = self.stored(entry);
            let Some(others) = self.others(id) else {
                // Counting needs no bitmap when every entity spells the value the same way.
                let count = match &entry.posting {
                    Posting::One(slot_id) => u64::from(within.contains(*slot_id)),
                    // Small postings (most values) are cheaper to probe one by one.
                    Posting::Many(bitmap) if bitmap.len() <= 32 => {
                        bitmap.iter().filter(|slot_id| within.contains(*slot_id)).count() as u64
                    }
                    Posting::Many(bitmap) => bitmap.intersection_len(within),
                };
                if count > 0 {
                    counts.push((own, count));
                }
                continue;
            };
            let mut matching = entry.posting.and(within);
            if matching.is_empty() {
                continue;
            }
            for (spelling, posting) in others {
                let under = posting.and(&matching);
                if !under.is_empty() {
                    matching -= &under;
                    counts.push((spelling, under.len()));
                }
            }
            if !matching.is_empty() {
                counts.push((own, matching.len()));
            }
        }
        counts
    }

    /// Gives back the room grown into while filling (after a load).
    pub(super) fn shrink(&mut self) {
        self.text.shrink_to_fit();
        self.entries.shrink_to_fit();
        let Values { more, entries, text, .. } = self;
        if let Some(more) = more.as_mut() {
            more.table.shrink_to_fit(rehasher(text, entries));
            more.free.shrink_to_fit();
        }
    }

    /// Estimated heap bytes.
    pub(super) fn heap_bytes(&self) -> usize {
        let postings: usize = self.entries.iter().flatten().map(|entry| entry.posting.heap_bytes()).sum();
        let spellings: usize = self
            .spellings
            .iter()
            .flat_map(|spellings| spellings.values())
            .map(|others| {
                64 + others
                    .iter()
                    .map(|(text, posting)| 32 + text.len() + posting.heap_bytes())
                    .sum::<usize>()
            })
            .sum();
        self.text.capacity()
            + self.entries.capacity() * std::mem::size_of::<Option<Entry>>()
            + self.more.as_ref().map_or(0, |more| {
                std::mem::size_of::<More>()
                    + more.table.capacity() * (std::mem::size_of::<u32>() + 1)
                    + more.free.capacity() * 4
            })
            + postings
            + spellings
    }

    /// Every value for a snapshot: `(stored text, spelled, posting, other spellings)`.
    pub(super) fn dump(&self) -> impl Iterator<Item = (&str, bool, &Posting, &[Spelling])> {
        self.entries.iter().enumerate().filter_map(|(id, entry)| {
            let entry = entry.as_ref()?;
            let others = self.others(id);
            Some((
                self.stored(entry),
                entry.len & SPELLED != 0,
                &entry.posting,
                others.map_or(&[][..], Vec::as_slice),
            ))
        })
    }

    /// The arena bytes of every value (for a snapshot, so reading it allocates once).
    pub(super) fn text_len(&self) -> usize {
        self.text.len() - self.garbage()
    }

    /// Makes room for values read from a snapshot.
    pub(super) fn reserve(&mut self, values: usize, text: usize) {
        self.text.reserve_exact(text);
        self.entries.reserve_exact(values);
        if values > SMALL {
            let Values { more, entries, text, .. } = self;
            more.get_or_insert_default().table.reserve(values, rehasher(text, entries));
        }
    }

    /// Adds a value read from a snapshot (see `dump`), which was checked when written.
    /// `buffer` is scratch space for lower-casing, reused across calls.
    pub(super) fn restore(
        &mut self,
        stored: &str,
        spelled: bool,
        posting: Posting,
        others: Vec<Spelling>,
        buffer: &mut String,
    ) {
        let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(stored.len())) else {
            return;
        };
        self.text.push_str(stored);
        let entry = Entry { start, len: len | if spelled { SPELLED } else { 0 }, posting };
        self.entries.push(Some(entry));
        let id = u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 values");
        self.index(id, buffer);
        if !others.is_empty() {
            self.spellings.get_or_insert_default().insert(id, others);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(values: &Values, within: &RoaringBitmap) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> =
            values.facet_counts(within).into_iter().map(|(text, count)| (text.to_owned(), count)).collect();
        counts.sort();
        counts
    }

    fn slots(posting: Option<&Posting>) -> Vec<u32> {
        posting.map(|posting| posting.iter().collect()).unwrap_or_default()
    }

    #[test]
    fn values_are_found_lower_cased_and_counted_as_written() {
        let mut values = Values::default();
        values.insert("payments api", "Payments API", 1);
        values.insert("payments api", "Payments API", 2);
        values.insert("payments api", "payments api", 3);
        values.insert("payments api", "PAYMENTS api", 4);
        values.insert("other", "other", 5);
        assert_eq!(values.len(), 2);
        assert_eq!(slots(values.get("payments api")), [1, 2, 3, 4]);
        assert!(values.get("Payments API").is_none(), "lookups are by the lower-cased form");
        let all: RoaringBitmap = (0..10).collect();
        assert_eq!(
            counts(&values, &all),
            [
                ("PAYMENTS api".into(), 1),
                ("Payments API".into(), 2),
                ("other".into(), 1),
                ("payments api".into(), 1)
            ]
        );
        let mut seen = Vec::new();
        values.for_each(|lower, posting| seen.push((lower.to_owned(), posting.iter().count())));
        seen.sort();
        assert_eq!(seen, [("other".to_owned(), 1), ("payments api".to_owned(), 4)]);

        // Removing the entities that gave the stored spelling leaves the others counted right.
        values.remove("payments api", "Payments API", 1);
        values.remove("payments api", "Payments API", 2);
        assert_eq!(
            counts(&values, &all),
            [("PAYMENTS api".into(), 1), ("other".into(), 1), ("payments api".into(), 1)]
        );
        values.remove("payments api", "PAYMENTS api", 4);
        values.remove("payments api", "payments api", 3);
        assert!(values.get("payments api").is_none());
        assert_eq!(values.len(), 1);
        // A removed value can come back, with another spelling.
        values.insert("payments api", "Payments Api", 6);
        assert_eq!(counts(&values, &all), [("Payments Api".into(), 1), ("other".into(), 1)]);
    }

    #[test]
    fn values_are_found_by_scanning_while_few_and_through_the_table_beyond() {
        let mut values = Values::default();
        let check = |values: &Values, live: &[u32]| {
            assert_eq!(values.len(), live.len());
            for slot_id in 0..40 {
                let found = slots(values.get(&format!("v{slot_id}")));
                let expected = if live.contains(&slot_id) { vec![slot_id] } else { vec![] };
                assert_eq!(found, expected, "v{slot_id} among {live:?}");
            }
        };
        values.insert("v0", "V0", 0);
        assert!(values.more.is_none(), "one value needs no table");
        for slot_id in 1..SMALL as u32 {
            values.insert(&format!("v{slot_id}"), &format!("v{slot_id}"), slot_id);
        }
        check(&values, &(0..SMALL as u32).collect::<Vec<_>>());
        assert!(values.more.is_none(), "a few values need no table");
        // Past SMALL ids the table takes over, with every value in it.
        for slot_id in SMALL as u32..30 {
            values.insert(&format!("v{slot_id}"), &format!("v{slot_id}"), slot_id);
        }
        assert_eq!(values.more.as_ref().map(|more| more.table.len()), Some(30));
        check(&values, &(0..30).collect::<Vec<_>>());
        // Removed values leave the table; their ids are reused by new values.
        for slot_id in (0..30).step_by(2) {
            values.remove(&format!("v{slot_id}"), &format!("v{slot_id}"), slot_id);
        }
        let odd: Vec<u32> = (1..30).step_by(2).collect();
        check(&values, &odd);
        values.insert("v35", "v35", 35);
        let mut live = odd.clone();
        live.push(35);
        check(&values, &live);

        // A snapshot reads back the same, on either side of SMALL.
        for count in [1, SMALL, SMALL + 1, 20] {
            let mut restored = Values::default();
            restored.reserve(count, count * 3);
            let mut buffer = String::new();
            for slot_id in 0..count as u32 {
                restored.restore(
                    &format!("v{slot_id}"),
                    false,
                    Posting::One(slot_id),
                    Vec::new(),
                    &mut buffer,
                );
            }
            check(&restored, &(0..count as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn spellings_that_lower_case_differently_by_character_are_kept_aside() {
        // `str::to_lowercase` turns a final capital sigma into `ς`; character by character it
        // would be `σ`, so the spelling cannot stand for the value.
        let mut values = Values::default();
        let spelling = "ΟΔΟΣ";
        let lower = spelling.to_lowercase();
        values.insert(&lower, spelling, 1);
        assert_eq!(slots(values.get(&lower)), [1]);
        let all: RoaringBitmap = (0..10).collect();
        assert_eq!(counts(&values, &all), [(spelling.to_owned(), 1)]);
        values.remove(&lower, spelling, 1);
        assert_eq!(values.len(), 0);
    }

    #[test]
    fn the_arena_is_compacted_after_many_removals() {
        let mut values = Values::default();
        let long = "x".repeat(150);
        for slot_id in 0..20_000 {
            values.insert(&format!("{long}-{slot_id}"), &format!("{long}-{slot_id}"), slot_id);
        }
        for slot_id in 0..15_000 {
            values.remove(&format!("{long}-{slot_id}"), &format!("{long}-{slot_id}"), slot_id);
        }
        assert!(values.text.len() < 5_000 * 160 * 2, "{}", values.text.len());
        for slot_id in 15_000..20_000 {
            assert_eq!(slots(values.get(&format!("{long}-{slot_id}"))), [slot_id]);
        }
    }
}
