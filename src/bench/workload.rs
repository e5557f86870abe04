//! The workload's pure parts: duration parsing for the flags, key naming
//! and picking, the read/write choice and per-client seeds. No I/O and no
//! clock, so everything here is unit-tested.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Parses a human duration: one or more `<number><unit>` groups, e.g.
/// `10s`, `500ms`, `2m`, `1m30s`, `1.5s`. Units: `us` (or `µs`), `ms`,
/// `s`, `m` (or `min`), `h`. A bare number is refused (is `10` seconds or
/// milliseconds?). Arithmetic is exact in nanoseconds.
///
/// # Errors
///
/// A message naming the problem, for clap to show.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (try 10s, 500ms or 2m)".to_string());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_len);
        if number.is_empty() {
            return Err(format!("'{text}': expected a number at '{rest}'"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => {
                return Err(format!(
                    "'{text}': missing unit after {number} (try {number}s or {number}ms)"
                ))
            }
            other => {
                return Err(format!(
                    "'{text}': unknown unit '{other}' (use us, ms, s, m or h)"
                ))
            }
        };
        total = total
            .checked_add(scaled(number, unit_nanos).ok_or_else(|| too_large_or_bad(text, number))?)
            .ok_or_else(|| format!("'{text}' is too long"))?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| format!("'{text}' is too long"))?;
    // The remainder is below 10^9, so it fits.
    let nanos =
        u32::try_from(total % 1_000_000_000).map_err(|_| format!("'{text}' is too long"))?;
    Ok(Duration::new(secs, nanos))
}

fn too_large_or_bad(text: &str, number: &str) -> String {
    format!("'{text}': '{number}' is not a valid number or is too large")
}

/// `number` (digits with at most one `.`) times `unit_nanos`, exactly,
/// truncated to whole nanoseconds; `None` if malformed or too large.
fn scaled(number: &str, unit_nanos: u128) -> Option<u128> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return None;
    }
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int_value.checked_mul(unit_nanos)?;
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let denom = 10u128.pow(u32::try_from(frac.len()).ok()?);
        value = value.checked_add(frac_value.checked_mul(unit_nanos)? / denom)?;
    }
    Some(value)
}

/// Writes the name of key number `n` (`key:<n>`) into `buf`, replacing
/// its contents (the buffer is reused across operations).
pub fn key_name(n: u64, buf: &mut Vec<u8>) {
    use std::io::Write as _;
    buf.clear();
    buf.extend_from_slice(b"key:");
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "{n}");
}

/// A uniform key number in `0..keys` (`keys` must be at least 1).
pub fn pick_key(rng: &mut impl Rng, keys: u64) -> u64 {
    rng.random_range(0..keys.max(1))
}

/// Whether the next operation is a read, with probability `read_ratio`
/// (0.0: only writes; 1.0: only reads).
pub fn pick_read(rng: &mut impl Rng, read_ratio: f64) -> bool {
    if read_ratio >= 1.0 {
        true
    } else if read_ratio <= 0.0 {
        false
    } else {
        rng.random::<f64>() < read_ratio
    }
}

/// The random generator of client number `client` for a run seeded with
/// `seed`: independent streams per client, the same streams for the same
/// seed.
pub fn client_rng(seed: u64, client: usize) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(client as u64)))
}

/// One round of SplitMix64: spreads nearby inputs (client 0, 1, 2, …) over
/// the whole seed space.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value written by every SET: `size` bytes of a printable pattern.
pub fn value_of_size(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn parses_compound_and_fractional_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0.007s"), Ok(Duration::from_millis(7)));
        assert_eq!(parse_duration("1.0000000005s"), Ok(Duration::new(1, 0)));
        assert_eq!(
            parse_duration("1h2m3s4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "", "10", "s", "10x", "1..5s", ".s", "-1s", "1s2", "10 s", "ms10",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn names_keys() {
        let mut buf = b"leftover".to_vec();
        key_name(0, &mut buf);
        assert_eq!(buf, b"key:0");
        key_name(99_999, &mut buf);
        assert_eq!(buf, b"key:99999");
    }

    #[test]
    fn picks_keys_uniformly_in_range() {
        let mut rng = client_rng(7, 0);
        let keys = 10;
        let mut seen = [0u32; 10];
        for _ in 0..100_000 {
            let k = pick_key(&mut rng, keys);
            assert!(k < keys);
            seen[k as usize] += 1;
        }
        // Each of 10 keys expects 10 000 hits; a fair generator stays far
        // inside ±10% (about 30 standard deviations).
        for (k, n) in seen.iter().enumerate() {
            assert!((9_000..=11_000).contains(n), "key {k} picked {n} times");
        }
        assert_eq!(pick_key(&mut rng, 1), 0);
    }

    #[test]
    fn same_seed_same_keys_other_client_other_keys() {
        let draw = |seed, client| {
            let mut rng = client_rng(seed, client);
            (0..32)
                .map(|_| pick_key(&mut rng, 1 << 40))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
    }

    #[test]
    fn read_ratio_extremes_and_middle() {
        let mut rng = client_rng(3, 0);
        assert!((0..1000).all(|_| pick_read(&mut rng, 1.0)));
        assert!((0..1000).all(|_| !pick_read(&mut rng, 0.0)));
        let reads = (0..100_000).filter(|_| pick_read(&mut rng, 0.95)).count();
        assert!((94_000..=96_000).contains(&reads), "{reads} reads");
    }

    #[test]
    fn values_have_the_requested_size() {
        assert!(value_of_size(0).is_empty());
        let v = value_of_size(100);
        assert_eq!(v.len(), 100);
        assert!(v.iter().all(u8::is_ascii_lowercase));
    }
}
