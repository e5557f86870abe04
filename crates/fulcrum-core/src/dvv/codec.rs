//! Byte encodings of version vectors and of a [`DvvSet`]'s causal data.
//!
//! Integers are unsigned LEB128 varints unless stated. A version vector's
//! entries are encoded the same way in both formats:
//!
//! ```text
//! varint number of entries, then for each, strictly sorted by node id bytes:
//!     varint id length, the UTF-8 id bytes, varint counter (1..=MAX_COUNTER)
//! ```
//!
//! Client context (opaque to the client):
//!
//! ```text
//! u8  CONTEXT_FORMAT (= 1)
//! entries
//! u32 big-endian checksum: low 32 bits of stable_hash(all bytes before it)
//! ```
//!
//! Causal data (`Record::causal`; `Record::versions[i]` is the value of the
//! i-th dot):
//!
//! ```text
//! u8  CAUSAL_FORMAT (= 1)
//! entries (the context)
//! varint number of dots, then for each, strictly sorted by (entry, counter):
//!     varint index of the dot's node among the entries,
//!     varint counter (1..=the entry's counter)
//! ```
//!
//! A record with empty `causal` is a legacy record, written without causal
//! tracking. Its versions become siblings of the pseudo node
//! [`LEGACY_NODE`] with counter `timestamp + 1`, and the context covers up to
//! the newest: legacy values behave last-write-wins among themselves, and
//! any client that read one supersedes it with its next write, while a blind
//! write keeps it as a concurrent sibling. Two legacy versions with equal
//! timestamps cannot both have a dot; the first is kept.
//!
//! Decoders never panic and never allocate more than the input justifies.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Dot, DvvError, DvvSet, Sibling, VersionVector, LEGACY_NODE, MAX_COUNTER};
use crate::record::{Record, Version};
use crate::ring::{stable_hash, NodeId};

/// Format version of an encoded client context.
pub const CONTEXT_FORMAT: u8 = 1;
/// Format version of encoded causal data in a record.
pub const CAUSAL_FORMAT: u8 = 1;

const CHECKSUM_LEN: usize = 4;

impl VersionVector {
    /// The opaque, compact client context: format byte, entries, checksum.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_u8(CONTEXT_FORMAT);
        put_entries(&mut buf, self);
        let sum = checksum(&buf);
        buf.put_u32(sum);
        buf.freeze()
    }

    /// Decodes a client context made by [`VersionVector::encode`].
    ///
    /// # Errors
    /// [`DvvError`] for an unknown format, a checksum mismatch, truncation,
    /// trailing bytes or invalid entries.
    pub fn decode(bytes: &[u8]) -> Result<VersionVector, DvvError> {
        let Some(&format) = bytes.first() else {
            return Err(DvvError::Truncated {
                offset: 0,
                needed: 1,
            });
        };
        if format != CONTEXT_FORMAT {
            return Err(DvvError::UnknownFormat {
                what: "context",
                found: format,
                supported: CONTEXT_FORMAT,
            });
        }
        if bytes.len() < 1 + CHECKSUM_LEN {
            return Err(DvvError::Truncated {
                offset: bytes.len(),
                needed: 1 + CHECKSUM_LEN - bytes.len(),
            });
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut stored = [0u8; CHECKSUM_LEN];
        stored.copy_from_slice(sum);
        if u32::from_be_bytes(stored) != checksum(body) {
            return Err(DvvError::Checksum);
        }
        let mut r = Reader { buf: body, pos: 1 };
        let (vv, _) = r.entries()?;
        r.finish()?;
        Ok(vv)
    }
}

/// The record to store for `state`: its causal data and its sibling values,
/// in dot order.
pub fn to_record(state: &DvvSet<Version>) -> Record {
    // Sized up front (varints take at most 10 bytes): one allocation.
    let entries: usize = state.context.iter().map(|(n, _)| 20 + n.len()).sum();
    let mut buf = BytesMut::with_capacity(1 + 10 + entries + 10 + 20 * state.siblings.len());
    buf.put_u8(CAUSAL_FORMAT);
    put_entries(&mut buf, &state.context);
    put_varint(&mut buf, state.siblings.len() as u64);
    // Entries are in id order, so a dot's entry index is the rank of its
    // node, and siblings (sorted by dot) visit them in order.
    let mut ids = state.context.iter().map(|(n, _)| n).enumerate().peekable();
    for s in &state.siblings {
        while ids.peek().is_some_and(|(_, n)| **n < s.dot.node) {
            ids.next();
        }
        // Every dot's node is in the context (an invariant); the fallback
        // index only exists to avoid a panic path.
        let index = ids.peek().map_or(0, |(i, _)| *i);
        put_varint(&mut buf, index as u64);
        put_varint(&mut buf, s.dot.counter);
    }
    Record {
        causal: buf.freeze(),
        versions: state.siblings.iter().map(|s| s.value.clone()).collect(),
    }
}

/// Most context entries [`overwrite_record`] handles without allocating;
/// a longer context takes the general path.
const FAST_ENTRIES: usize = 16;

/// `to_record(&from_record(record)?.overwrite_with_floor(coordinator,
/// value, floor))`, computed on the encoded causal data without building
/// the state: the hot path of a blind write (plain SET). Checks the input
/// as [`from_record`] does and fails the same way.
///
/// # Errors
/// As [`from_record`].
pub fn overwrite_record(
    record: &Record,
    coordinator: &NodeId,
    value: Version,
    floor: u64,
) -> Result<Record, DvvError> {
    let general = || {
        Ok(to_record(&from_record(record)?.overwrite_with_floor(
            coordinator,
            value.clone(),
            floor,
        )))
    };
    let causal = &record.causal;
    if causal.is_empty() {
        return general();
    }
    let mut r = Reader::causal(causal)?;
    let n = r.count(2)?;
    if n > FAST_ENTRIES {
        return general();
    }
    // Each entry: the range of its id in `causal`, and its counter.
    let mut entries = [(0usize, 0usize, 0u64); FAST_ENTRIES];
    for i in 0..n {
        let at = r.pos;
        let len = r.count(1)?;
        let start = r.pos;
        r.bytes(len)?;
        let id = std::str::from_utf8(&causal[start..start + len])
            .map_err(|_| DvvError::BadNodeId(at))?;
        if i > 0 {
            let (prev_start, prev_end, _) = entries[i - 1];
            if causal[prev_start..prev_end] >= *id.as_bytes() {
                return Err(DvvError::Unsorted(at));
            }
        }
        let counter = r.varint()?;
        if counter == 0 || counter > MAX_COUNTER {
            return Err(DvvError::BadCounter {
                node: NodeId::from(id),
                counter,
            });
        }
        entries[i] = (start, start + len, counter);
    }
    let entries = &entries[..n];
    // The dots are dropped, but checked as `from_record` checks them.
    let dots = r.count(2)?;
    if dots != record.versions.len() {
        return Err(DvvError::SiblingCountMismatch {
            dots,
            versions: record.versions.len(),
        });
    }
    let mut last: Option<(u64, u64)> = None;
    for _ in 0..dots {
        let index = r.varint()?;
        let counter = r.varint()?;
        let Some(&(start, end, max)) = usize::try_from(index).ok().and_then(|i| entries.get(i))
        else {
            return Err(DvvError::BadDotNode { index, len: n });
        };
        let dot = || Dot {
            node: NodeId::from(std::str::from_utf8(&causal[start..end]).unwrap_or_default()),
            counter,
        };
        if counter == 0 || counter > max {
            return Err(DvvError::DotNotCovered(dot()));
        }
        if last.is_some_and(|l| l >= (index, counter)) {
            return Err(DvvError::DuplicateDot(dot()));
        }
        last = Some((index, counter));
    }
    r.finish()?;
    // The coordinator's entry: where it is (or goes) and its counter.
    let me = coordinator.as_str().as_bytes();
    let rank = entries.partition_point(|&(start, end, _)| &causal[start..end] < me);
    let present = entries
        .get(rank)
        .is_some_and(|&(start, end, _)| &causal[start..end] == me);
    let mine = if present { entries[rank].2 } else { 0 };
    let counter = mine.max(floor).saturating_add(1);
    let ids: usize = entries.iter().map(|&(s, e, _)| e - s).sum();
    let mut buf = BytesMut::with_capacity(1 + 10 + 11 * (n + 1) + ids + me.len() + 21);
    buf.put_u8(CAUSAL_FORMAT);
    put_varint(&mut buf, (n + usize::from(!present)) as u64);
    let put_entry = |buf: &mut BytesMut, id: &[u8], counter: u64| {
        put_varint(buf, id.len() as u64);
        buf.put_slice(id);
        put_varint(buf, counter);
    };
    for &(start, end, c) in &entries[..rank] {
        put_entry(&mut buf, &causal[start..end], c);
    }
    put_entry(&mut buf, me, counter);
    let after = if present { rank + 1 } else { rank };
    for &(start, end, c) in &entries[after..] {
        put_entry(&mut buf, &causal[start..end], c);
    }
    put_varint(&mut buf, 1);
    put_varint(&mut buf, rank as u64);
    put_varint(&mut buf, counter);
    Ok(Record {
        causal: buf.freeze(),
        versions: vec![value],
    })
}

/// The causal state stored in `record`; a record with empty `causal` is a
/// legacy record (see the module docs).
///
/// # Errors
/// [`DvvError`] when the causal data does not decode, breaks an invariant,
/// or has a different number of dots than the record has versions.
pub fn from_record(record: &Record) -> Result<DvvSet<Version>, DvvError> {
    if record.causal.is_empty() {
        return Ok(from_legacy(&record.versions));
    }
    let mut r = Reader::causal(&record.causal)?;
    let (context, ids) = r.entries()?;
    let n = r.count(2)?;
    if n != record.versions.len() {
        return Err(DvvError::SiblingCountMismatch {
            dots: n,
            versions: record.versions.len(),
        });
    }
    let mut siblings: Vec<Sibling<Version>> = Vec::with_capacity(n);
    let mut last: Option<(u64, u64)> = None;
    for value in &record.versions {
        let index = r.varint()?;
        let counter = r.varint()?;
        let Some((node, max)) = usize::try_from(index).ok().and_then(|i| ids.get(i)) else {
            return Err(DvvError::BadDotNode {
                index,
                len: ids.len(),
            });
        };
        let dot = Dot {
            node: node.clone(),
            counter,
        };
        if counter == 0 || counter > *max {
            return Err(DvvError::DotNotCovered(dot));
        }
        if last.is_some_and(|l| l >= (index, counter)) {
            return Err(DvvError::DuplicateDot(dot));
        }
        last = Some((index, counter));
        siblings.push(Sibling {
            dot,
            value: value.clone(),
        });
    }
    r.finish()?;
    Ok(DvvSet { context, siblings })
}

fn from_legacy(versions: &[Version]) -> DvvSet<Version> {
    let legacy = NodeId::from(LEGACY_NODE);
    let mut siblings: Vec<Sibling<Version>> = Vec::with_capacity(versions.len());
    for v in versions {
        let dot = Dot {
            node: legacy.clone(),
            counter: v.timestamp.0.saturating_add(1).min(MAX_COUNTER),
        };
        // Keep the first of equal timestamps (see the module docs).
        if let Err(at) = siblings.binary_search_by(|s| s.dot.cmp(&dot)) {
            siblings.insert(
                at,
                Sibling {
                    dot,
                    value: v.clone(),
                },
            );
        }
    }
    let mut context = VersionVector::new();
    if let Some(last) = siblings.last() {
        context.advance(&legacy, last.dot.counter);
    }
    DvvSet { context, siblings }
}

fn checksum(bytes: &[u8]) -> u32 {
    // Low 32 bits of the stable hash; truncation intended.
    stable_hash(bytes) as u32
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    // Built on the stack and appended at once: a `put_u8` per byte costs a
    // capacity check each.
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        bytes[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    bytes[n] = v as u8;
    buf.put_slice(&bytes[..=n]);
}

fn put_entries(buf: &mut BytesMut, vv: &VersionVector) {
    put_varint(buf, vv.len() as u64);
    for (node, counter) in vv.iter() {
        put_varint(buf, node.len() as u64);
        buf.put_slice(node.as_bytes());
        put_varint(buf, counter);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// A reader of causal data, past its format byte.
    fn causal(buf: &[u8]) -> Result<Reader<'_>, DvvError> {
        let mut r = Reader { buf, pos: 0 };
        let format = r.u8()?;
        if format != CAUSAL_FORMAT {
            return Err(DvvError::UnknownFormat {
                what: "causal data",
                found: format,
                supported: CAUSAL_FORMAT,
            });
        }
        Ok(r)
    }

    fn u8(&mut self) -> Result<u8, DvvError> {
        let b = *self.buf.get(self.pos).ok_or(DvvError::Truncated {
            offset: self.pos,
            needed: 1,
        })?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DvvError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && bits > 1 {
                return Err(DvvError::BadVarint(start));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DvvError::BadVarint(start))
    }

    /// A count of items each taking at least `min_item_len` bytes, checked
    /// against what is left so it can size an allocation.
    fn count(&mut self, min_item_len: usize) -> Result<usize, DvvError> {
        let offset = self.pos;
        let value = self.varint()?;
        let left = self.buf.len() - self.pos;
        match usize::try_from(value) {
            Ok(n) if n.saturating_mul(min_item_len) <= left => Ok(n),
            _ => Err(DvvError::BadLength { offset, value }),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], DvvError> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(DvvError::Truncated {
                offset: self.pos,
                needed: n - left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A version vector, also returned as `(node, counter)` in entry order.
    fn entries(&mut self) -> Result<(VersionVector, Vec<(NodeId, u64)>), DvvError> {
        // An entry takes at least 2 bytes: a length and a counter.
        let n = self.count(2)?;
        let mut list: Vec<(NodeId, u64)> = Vec::with_capacity(n);
        for _ in 0..n {
            let at = self.pos;
            let len = self.count(1)?;
            let id = std::str::from_utf8(self.bytes(len)?).map_err(|_| DvvError::BadNodeId(at))?;
            if list.last().is_some_and(|(prev, _)| prev.as_str() >= id) {
                return Err(DvvError::Unsorted(at));
            }
            let node = NodeId::from(id);
            let counter = self.varint()?;
            if counter == 0 || counter > MAX_COUNTER {
                return Err(DvvError::BadCounter { node, counter });
            }
            list.push((node, counter));
        }
        let vv = list.iter().cloned().collect();
        Ok((vv, list))
    }

    fn finish(&self) -> Result<(), DvvError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(DvvError::Trailing(n)),
        }
    }
}
