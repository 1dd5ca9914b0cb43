//! The index saved to a file, so a restart does not parse every stored entity again.
//!
//! A snapshot is the index's own state (compressed bodies, the body dictionary, postings) tagged
//! with the database it came from and the change sequence number it reflects. Loading it and
//! then following the change feed from that number yields the same index as a full rebuild; any
//! doubt (another database, a number the database has not reached, a damaged or truncated file,
//! an older format) means a full rebuild instead.
//!
//! Layout: `MAGIC`, format version, database instance, sequence number, body dictionary, the
//! keys with their values, the entities, the offset where the entities begin, and a CRC-32 of
//! everything before it. Integers are little-endian; byte strings and lists carry a `u32` length.

use std::hash::BuildHasher;
use std::io::{self, Write};

use roaring::RoaringBitmap;

use std::sync::Arc;

use super::{Body, Codec, Index, KeyIndex, KeySource, LazyKey, Posting, Slot, Values};

const MAGIC: &[u8; 14] = b"PORTICO-INDEX\n";
const VERSION: u32 = 5;

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The database's instance id (`Store::instance_id`).
    pub instance: String,
    /// The change sequence number the index reflects.
    pub seq: i64,
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not an index snapshot of this Portico version")]
    Format,
    #[error("damaged at byte {0}")]
    Damaged(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("written for another database, or ahead of this one")]
    Stale,
}

impl Index {
    /// Writes the index as a snapshot. The caller holds the index still (a read lock).
    pub fn write_snapshot(&self, header: &SnapshotHeader, out: impl Write) -> io::Result<()> {
        let written = write_snapshot_in_steps(&|| Some(self), header, out)?;
        debug_assert!(written, "a still index cannot change while it is written");
        Ok(())
    }

    /// Reads a snapshot written by `write_snapshot`. The entities are read at once, each key
    /// on first use (`Index::read_key` reads the rest); `bytes` stays alive until then.
    pub fn read_snapshot(bytes: Arc<Vec<u8>>) -> Result<(SnapshotHeader, Index), SnapshotError> {
        let data = bytes.as_slice();
        let Some((content, crc)) = data.split_last_chunk::<4>() else {
            return Err(SnapshotError::Format);
        };
        if !content.starts_with(MAGIC) {
            return Err(SnapshotError::Format);
        }
        let mut input = Reader { data: content, pos: MAGIC.len() };
        if input.u32()? != VERSION {
            return Err(SnapshotError::Format);
        }
        if crc32fast::hash(content) != u32::from_le_bytes(*crc) {
            return Err(SnapshotError::Checksum);
        }
        let Some((body, entities_at)) = content.split_last_chunk::<8>() else {
            return Err(SnapshotError::Format);
        };
        let entities_at =
            usize::try_from(u64::from_le_bytes(*entities_at)).map_err(|_| SnapshotError::Format)?;
        if entities_at > body.len() {
            return Err(SnapshotError::Damaged(body.len()));
        }
        let mut input = Reader { data: &body[..entities_at], pos: input.pos };
        let instance = input.str()?.to_owned();
        let seq = input.u64()? as i64;
        let dictionary = input.bytes()?;
        let codec = if dictionary.is_empty() {
            Codec::default()
        } else {
            Codec::with_dictionary(dictionary.to_vec()).ok_or(SnapshotError::Damaged(input.pos))?
        };
        let mut entities = Reader { data: body, pos: entities_at };
        let key_count = input.len()?;
        let mut keys = Vec::with_capacity(key_count);
        for _ in 0..key_count {
            let len = usize::try_from(input.u64()?).map_err(|_| SnapshotError::Damaged(input.pos))?;
            let start = input.pos;
            let section = input.take(len)?;
            // The key's name leads its section.
            let name: Box<str> = Reader { data: section, pos: 0 }.str()?.into();
            keys.push((name, KeySource { bytes: bytes.clone(), range: start..start + len }));
        }
        if input.pos != input.data.len() {
            return Err(SnapshotError::Damaged(input.pos));
        }
        let mut index = read_entities(&mut entities, codec)?;
        // Catalogs have keys by the hundred thousand: a vector grown by doubling would leave
        // up to half of its room (184 bytes a key) unused.
        index.keys.reserve_exact(keys.len());
        let Index { key_ids, keys: known, .. } = &mut index;
        key_ids.reserve(keys.len(), |&other| super::values::HASHER.hash_one(&*known[other as usize].name));
        for (key_id, (name, source)) in keys.into_iter().enumerate() {
            let key_id = u32::try_from(key_id).map_err(|_| SnapshotError::Format)?;
            index.keys.push(LazyKey::unread(name, source));
            index.add_key_id(key_id);
        }
        Ok((SnapshotHeader { instance, seq }, index))
    }
}

/// Keys and entities written per look at the index, between which writers may run.
const KEYS_PER_STEP: usize = 512;
const SLOTS_PER_STEP: usize = 8_192;

/// Writes a snapshot in steps, each with its own look at the index (`look` takes a read lock
/// and hands the index out), so that a change never waits for a whole snapshot. Evaluates to
/// false, with an unusable file, when the index changed between steps; the caller tries again
/// later. Recompressed bodies may change between steps: both forms read back the same.
pub fn write_snapshot_in_steps<'a, G>(
    look: &dyn Fn() -> Option<G>,
    header: &SnapshotHeader,
    out: impl Write,
) -> io::Result<bool>
where
    G: std::ops::Deref<Target = Index> + 'a,
{
    let mut out = Writer { out, crc: crc32fast::Hasher::new(), written: 0 };
    let Some(index) = look() else { return Ok(false) };
    let generation = index.generation();
    let dictionary = index.codec.dictionary().map(<[u8]>::to_vec);
    let (key_count, slot_count) = (index.keys.len(), index.slots.len());
    drop(index);
    let unchanged = |index: &Index| {
        index.generation() == generation
            && index.keys.len() == key_count
            && index.slots.len() == slot_count
            && index.codec.dictionary().map(<[u8]>::len) == dictionary.as_ref().map(Vec::len)
    };
    out.raw(MAGIC)?;
    out.u32(VERSION)?;
    out.bytes(header.instance.as_bytes())?;
    out.u64(header.seq as u64)?;
    out.bytes(dictionary.as_deref().unwrap_or_default())?;
    // Each key with its length first, so a reader can find any key without reading the others.
    out.len(key_count)?;
    let mut section = Vec::new();
    for first in (0..key_count).step_by(KEYS_PER_STEP) {
        let Some(index) = look().filter(|index| unchanged(index)) else { return Ok(false) };
        for lazy in &index.keys[first..(first + KEYS_PER_STEP).min(key_count)] {
            let key = lazy.get();
            section.clear();
            let mut part = Writer { out: &mut section, crc: crc32fast::Hasher::new(), written: 0 };
            part.bytes(lazy.name.as_bytes())?;
            part.bitmap(&key.all)?;
            part.len(key.values.len())?;
            part.len(key.values.text_len())?;
            for (text, spelled, posting, others) in key.values.dump() {
                part.bytes(text.as_bytes())?;
                part.u8(u8::from(spelled))?;
                part.posting(posting)?;
                part.len(others.len())?;
                for (spelling, posting) in others {
                    part.bytes(spelling.as_bytes())?;
                    part.posting(posting)?;
                }
            }
            out.u64(section.len() as u64)?;
            out.raw(&section)?;
        }
    }
    let entities_at = out.written;
    out.len(slot_count)?;
    for first in (0..slot_count).step_by(SLOTS_PER_STEP) {
        let Some(index) = look().filter(|index| unchanged(index)) else { return Ok(false) };
        for slot in &index.slots[first..(first + SLOTS_PER_STEP).min(slot_count)] {
            match slot {
                None => out.u8(0)?,
                Some(slot) => {
                    out.u8(1)?;
                    out.bytes(slot.entity_ref.as_bytes())?;
                    out.bytes(slot.uid.as_bytes())?;
                    out.bytes(slot.body.as_bytes())?;
                }
            }
        }
    }
    let Some(index) = look().filter(|index| unchanged(index)) else { return Ok(false) };
    out.bitmap(&index.with_errors)?;
    drop(index);
    out.u64(entities_at)?;
    let crc = out.crc.clone().finalize();
    out.out.write_all(&crc.to_le_bytes())?;
    out.out.flush()?;
    Ok(true)
}

/// Reads a key's section (its name was read with the snapshot, into its `LazyKey`).
pub(super) fn read_key(section: &[u8]) -> Result<KeyIndex, SnapshotError> {
    let mut input = Reader { data: section, pos: 0 };
    let mut buffer = String::new();
    input.str()?;
    let all = input.bitmap()?;
    let value_count = input.len()?;
    let text_len = input.len()?;
    let mut values = Values::default();
    values.reserve(value_count, text_len);
    for _ in 0..value_count {
        let text = input.str()?;
        let spelled = match input.u8()? {
            0 => false,
            1 => true,
            _ => return Err(SnapshotError::Damaged(input.pos)),
        };
        let posting = input.posting()?;
        let other_count = input.len()?;
        let mut others = Vec::with_capacity(other_count);
        for _ in 0..other_count {
            let spelling: Box<str> = input.str()?.into();
            others.push((spelling, input.posting()?));
        }
        values.restore(text, spelled, posting, others, &mut buffer);
    }
    if input.pos != input.data.len() {
        return Err(SnapshotError::Damaged(input.pos));
    }
    Ok(KeyIndex { all, values })
}

/// The entities part: slots, lookups, and the sets derived from them.
fn read_entities(input: &mut Reader<'_>, codec: Codec) -> Result<Index, SnapshotError> {
    let mut index = Index { codec, ..Index::default() };
    let slot_count = input.len()?;
    index.slots.reserve_exact(slot_count);
    index.reserve_lookups(slot_count);
    for slot_id in 0..slot_count {
        let slot_id = u32::try_from(slot_id).map_err(|_| SnapshotError::Damaged(input.pos))?;
        match input.u8()? {
            0 => {
                index.slots.push(None);
                index.free.push(slot_id);
            }
            1 => {
                let entity_ref: Box<str> = input.str()?.into();
                let uid: Box<str> = input.str()?.into();
                let body = Body::from_bytes(input.bytes()?).ok_or(SnapshotError::Damaged(input.pos))?;
                index.live.insert(slot_id);
                index.slots.push(Some(Slot { entity_ref, uid, body }));
                index.by_ref.insert(&index.slots, slot_id);
                index.by_uid.insert(&index.slots, slot_id);
            }
            _ => return Err(SnapshotError::Damaged(input.pos)),
        }
    }
    // Free slots are reused last-freed first; any order is correct.
    index.free.reverse();
    index.with_errors = input.bitmap()?;
    if input.pos != input.data.len() {
        return Err(SnapshotError::Damaged(input.pos));
    }
    if index.codec.dictionary().is_some() {
        index.dictionary_attempt = index.len();
    }
    index.generation = 1;
    Ok(index)
}

struct Writer<W> {
    out: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Writer<W> {
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn u8(&mut self, value: u8) -> io::Result<()> {
        self.raw(&[value])
    }

    fn u32(&mut self, value: u32) -> io::Result<()> {
        self.raw(&value.to_le_bytes())
    }

    fn u64(&mut self, value: u64) -> io::Result<()> {
        self.raw(&value.to_le_bytes())
    }

    fn len(&mut self, len: usize) -> io::Result<()> {
        let len =
            u32::try_from(len).map_err(|_| io::Error::other("index section too large for a snapshot"))?;
        self.u32(len)
    }

    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len(bytes.len())?;
        self.raw(bytes)
    }

    fn bitmap(&mut self, bitmap: &RoaringBitmap) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(bitmap.serialized_size());
        bitmap.serialize_into(&mut bytes)?;
        self.bytes(&bytes)
    }

    fn posting(&mut self, posting: &Posting) -> io::Result<()> {
        match posting {
            Posting::One(slot_id) => {
                self.u8(0)?;
                self.u32(*slot_id)
            }
            Posting::Many(bitmap) => {
                self.u8(1)?;
                self.bitmap(bitmap)
            }
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.pos.checked_add(count).filter(|&end| end <= self.data.len());
        let end = end.ok_or(SnapshotError::Damaged(self.pos))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let low = u64::from(self.u32()?);
        let high = u64::from(self.u32()?);
        Ok(low | (high << 32))
    }

    /// A length, which can never exceed what is left (every counted item takes a byte or more).
    fn len(&mut self) -> Result<usize, SnapshotError> {
        let len = self.u32()? as usize;
        if len > self.data.len() - self.pos {
            return Err(SnapshotError::Damaged(self.pos));
        }
        Ok(len)
    }

    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let len = self.len()?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let pos = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| SnapshotError::Damaged(pos))
    }

    fn bitmap(&mut self) -> Result<RoaringBitmap, SnapshotError> {
        let pos = self.pos;
        RoaringBitmap::deserialize_from(self.bytes()?).map_err(|_| SnapshotError::Damaged(pos))
    }

    fn posting(&mut self) -> Result<Posting, SnapshotError> {
        match self.u8()? {
            0 => Ok(Posting::One(self.u32()?)),
            1 => Ok(Posting::Many(Box::new(self.bitmap()?))),
            _ => Err(SnapshotError::Damaged(self.pos)),
        }
    }
}
