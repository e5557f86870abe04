//! The stored form of one key: its live versions (siblings) and the causal
//! metadata that says which writes they already include.
//!
//! Encoding (format version 1, all integers big-endian):
//!
//! ```text
//! u8  format version (= 1)
//! u32 causal metadata length, then the bytes (opaque here; see `dvv`)
//! u32 number of versions, then for each version:
//!     u8  flags: bit 0 tombstone, bit 1 has expiry
//!     u64 hybrid-logical-clock timestamp
//!     u64 expiry, ms since the Unix epoch (only with flag bit 1)
//!     u32 value length, then the value bytes
//! ```
//!
//! A reader refuses a format version it does not know rather than guess.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::hlc::Hlc;

/// The only record format this build writes.
pub const FORMAT_VERSION: u8 = 1;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_EXPIRY: u8 = 2;

/// One version of a key's value. Several versions of one key are siblings:
/// writes that no replica saw in a causal order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The value bytes; empty for a tombstone.
    pub value: Bytes,
    /// A delete, kept so that the delete wins over older writes on replicas
    /// that have not seen it yet.
    pub tombstone: bool,
    /// When the write happened, on the hybrid logical clock. Orders
    /// last-write-wins and picks the sibling a plain GET returns.
    pub timestamp: Hlc,
    /// When the value expires, in ms since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

impl Version {
    pub fn value(value: impl Into<Bytes>, timestamp: Hlc) -> Self {
        Version {
            value: value.into(),
            tombstone: false,
            timestamp,
            expires_at_ms: None,
        }
    }

    pub fn tombstone(timestamp: Hlc) -> Self {
        Version {
            value: Bytes::new(),
            tombstone: true,
            timestamp,
            expires_at_ms: None,
        }
    }

    /// Whether this version is visible at wall time `now_ms`: not a
    /// tombstone and not expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.tombstone && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// Everything stored under one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Causal metadata (an encoded dotted version vector set); empty when the
    /// record was written by a single node without causal tracking.
    pub causal: Bytes,
    /// The versions, one per sibling.
    pub versions: Vec<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("record format version {0} is not supported (this build reads {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
}

impl Record {
    /// A record holding exactly one version.
    pub fn single(version: Version) -> Self {
        Record {
            causal: Bytes::new(),
            versions: vec![version],
        }
    }

    /// The sibling a plain read returns at wall time `now_ms`: the live
    /// version with the highest timestamp. Versions stored together are
    /// siblings (concurrent: none causally replaced another), so a
    /// tombstone sibling is a delete that did not see the live values next
    /// to it and does not hide them; the key reads as missing only when no
    /// live version is left.
    pub fn visible(&self, now_ms: u64) -> Option<&Version> {
        self.versions
            .iter()
            .filter(|v| v.is_live(now_ms))
            .max_by_key(|v| v.timestamp)
    }

    /// Every live sibling at `now_ms`.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(move |v| v.is_live(now_ms))
    }

    /// The newest timestamp among the versions.
    pub fn max_timestamp(&self) -> Hlc {
        self.versions
            .iter()
            .map(|v| v.timestamp)
            .max()
            .unwrap_or(Hlc::ZERO)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + self.causal.len()
            + 4
            + self
                .versions
                .iter()
                .map(|v| 1 + 8 + if v.expires_at_ms.is_some() { 8 } else { 0 } + 4 + v.value.len())
                .sum::<usize>()
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut buf);
        buf.freeze()
    }

    pub fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_u8(FORMAT_VERSION);
        put_len(buf, self.causal.len());
        buf.put_slice(&self.causal);
        put_len(buf, self.versions.len());
        for v in &self.versions {
            let mut flags = 0;
            if v.tombstone {
                flags |= FLAG_TOMBSTONE;
            }
            if v.expires_at_ms.is_some() {
                flags |= FLAG_EXPIRY;
            }
            buf.put_u8(flags);
            buf.put_u64(v.timestamp.0);
            if let Some(at) = v.expires_at_ms {
                buf.put_u64(at);
            }
            put_len(buf, v.value.len());
            buf.put_slice(&v.value);
        }
    }

    /// Decodes a record, sharing `bytes` for values (no copy).
    ///
    /// # Errors
    /// [`DecodeError`] for truncated input, trailing bytes or an unknown
    /// format version.
    pub fn decode(bytes: &Bytes) -> Result<Record, DecodeError> {
        let mut r = Reader { all: bytes, pos: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let causal_len = r.u32()? as usize;
        let causal = r.bytes(causal_len)?;
        let n = r.u32()? as usize;
        // Each version takes at least 17 bytes: don't trust `n` for capacity.
        let mut versions = Vec::with_capacity(n.min(bytes.len() / 17 + 1));
        for _ in 0..n {
            let flags = r.u8()?;
            let timestamp = Hlc(r.u64()?);
            let expires_at_ms = if flags & FLAG_EXPIRY != 0 {
                Some(r.u64()?)
            } else {
                None
            };
            let len = r.u32()? as usize;
            let value = r.bytes(len)?;
            versions.push(Version {
                value,
                tombstone: flags & FLAG_TOMBSTONE != 0,
                timestamp,
                expires_at_ms,
            });
        }
        if r.pos != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.pos));
        }
        Ok(Record { causal, versions })
    }
}

fn put_len(buf: &mut BytesMut, len: usize) {
    // Values are capped far below 4 GiB by the request limits.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

struct Reader<'a> {
    all: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let rest = self.all.len() - self.pos;
        if rest < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - rest,
            });
        }
        let s = &self.all[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.take(4)?.get_u32())
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(self.take(8)?.get_u64())
    }
    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.all.slice(start..start + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_version() -> impl Strategy<Value = Version> {
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(value, tombstone, ts, exp)| Version {
                value: Bytes::from(value),
                tombstone,
                timestamp: Hlc(ts),
                expires_at_ms: exp,
            })
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::collection::vec(any::<u8>(), 0..32),
            proptest::collection::vec(arb_version(), 0..4),
        )
            .prop_map(|(causal, versions)| Record {
                causal: Bytes::from(causal),
                versions,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(rec in arb_record()) {
            let bytes = rec.encode();
            prop_assert_eq!(bytes.len(), rec.encoded_len());
            prop_assert_eq!(Record::decode(&bytes).unwrap(), rec);
        }

        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Record::decode(&Bytes::from(bytes));
        }
    }

    #[test]
    fn refuses_unknown_format_version() {
        let mut bytes = Record::single(Version::value("v", Hlc(1)))
            .encode()
            .to_vec();
        bytes[0] = 9;
        assert_eq!(
            Record::decode(&Bytes::from(bytes)),
            Err(DecodeError::UnknownVersion(9))
        );
    }

    #[test]
    fn truncated_record_is_an_error() {
        let bytes = Record::single(Version::value("value", Hlc(1))).encode();
        let cut = bytes.slice(..bytes.len() - 2);
        assert!(matches!(
            Record::decode(&cut),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn plain_read_sees_newest_live_sibling() {
        let rec = Record {
            causal: Bytes::new(),
            versions: vec![Version::value("old", Hlc(1)), Version::value("new", Hlc(2))],
        };
        assert_eq!(rec.visible(0).unwrap().value, "new");
    }

    #[test]
    fn concurrent_tombstone_does_not_hide_a_live_sibling() {
        let rec = Record {
            causal: Bytes::new(),
            versions: vec![Version::value("v", Hlc(1)), Version::tombstone(Hlc(2))],
        };
        assert_eq!(rec.visible(0).unwrap().value, "v");
        let deleted = Record::single(Version::tombstone(Hlc(3)));
        assert!(deleted.visible(0).is_none());
    }

    #[test]
    fn expired_version_is_not_visible() {
        let mut v = Version::value("v", Hlc(1));
        v.expires_at_ms = Some(100);
        let rec = Record::single(v);
        assert!(rec.visible(99).is_some());
        assert!(rec.visible(100).is_none());
    }
}
