//! The ring's stable hash: FNV-1a 64 followed by the MurmurHash3 64-bit
//! finalizer.
//!
//! Invariant: the function is fixed forever. Key placement, token positions
//! and client contexts' checksums all depend on it, across processes,
//! machines, builds and Rust versions, so it must never change (that would
//! be an on-disk and on-wire format change). `std`'s `DefaultHasher` gives no
//! such promise, which is why this module exists. The golden values in the
//! tests pin it.
//!
//! FNV-1a alone mixes poorly into the high bits for short keys that differ in
//! their last byte; the finalizer (`fmix64`) spreads every input bit over
//! the whole word, and the ring takes its partition from the high bits.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_more(FNV_OFFSET, bytes)
}

/// Continues an FNV-1a hash `h` over `bytes` (hashing `a` then `b` equals
/// hashing their concatenation).
fn fnv1a64_more(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The stable 64-bit hash of `bytes`, identical in every process and build.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    fmix64(fnv1a64(bytes))
}

/// [`stable_hash`] of the concatenation of `parts`, without building it.
pub fn stable_hash_parts(parts: &[&[u8]]) -> u64 {
    fmix64(parts.iter().fold(FNV_OFFSET, |h, p| fnv1a64_more(h, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hashing_parts_equals_hashing_their_concatenation() {
        assert_eq!(
            stable_hash_parts(&[b"user", b":", b"42"]),
            stable_hash(b"user:42")
        );
        assert_eq!(stable_hash_parts(&[]), stable_hash(b""));
    }

    #[test]
    fn stable_hash_golden_values() {
        // If this test fails, the hash changed: every stored key would map to
        // a different partition. Do not update these values; revert instead.
        assert_eq!(stable_hash(b""), GOLDEN[0]);
        assert_eq!(stable_hash(b"a"), GOLDEN[1]);
        assert_eq!(stable_hash(b"user:42"), GOLDEN[2]);
    }

    const GOLDEN: [u64; 3] = [
        0xefd0_1f60_ba99_2926,
        0x82a2_a958_a9be_ce5b,
        0x9988_17be_e671_8248,
    ];
}
