//! Shared low-level helpers for the decoders: resumable delimiter search
//! (so partial input is never rescanned from the start) and Redis's strict
//! integer parsing (`string2ll`).

/// Longest inline request or length line accepted (Redis
/// `PROTO_INLINE_MAX_SIZE`).
pub(crate) const LINE_MAX: usize = 64 * 1024;

/// Remembers how far the front of the buffer has been searched for a line
/// delimiter, so bytes arriving in small pieces are each scanned once.
///
/// Callers must [`reset`](LineScan::reset) whenever they consume bytes from
/// the front of the buffer; between calls the buffer may only grow at the
/// back.
#[derive(Debug, Default, Clone)]
pub(crate) struct LineScan {
    scanned: usize,
}

impl LineScan {
    /// The index of the first `delim` in `buf`, or `None` if there is none
    /// yet (the searched prefix is remembered).
    pub(crate) fn find(&mut self, buf: &[u8], delim: u8) -> Option<usize> {
        let start = self.scanned.min(buf.len());
        match memchr::memchr(delim, &buf[start..]) {
            Some(i) => Some(start + i),
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }

    /// Forgets the searched prefix (the buffer front was consumed).
    pub(crate) fn reset(&mut self) {
        self.scanned = 0;
    }
}

/// Parses a decimal integer exactly like Redis's `string2ll`: an optional
/// `-`, no `+`, no leading zeros (except `0` itself), no spaces, no overflow.
pub(crate) fn parse_strict_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    // Accumulate as a negative number so i64::MIN parses without overflow.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Parses a decimal integer leniently (optional `+`/`-`, as RESP3 replies
/// allow).
pub(crate) fn parse_lenient_i64(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_follow_string2ll() {
        assert_eq!(parse_strict_i64(b"0"), Some(0));
        assert_eq!(parse_strict_i64(b"42"), Some(42));
        assert_eq!(parse_strict_i64(b"-1"), Some(-1));
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_strict_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_strict_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn line_scan_resumes() {
        let mut scan = LineScan::default();
        assert_eq!(scan.find(b"abc", b'\r'), None);
        assert_eq!(scan.find(b"abcde\r", b'\r'), Some(5));
        scan.reset();
        assert_eq!(scan.find(b"\r", b'\r'), Some(0));
    }
}
