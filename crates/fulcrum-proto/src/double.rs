//! Formatting doubles the way Redis 7.2+ does (`d2string` / `fpconv_dtoa`):
//! the shortest digits that round-trip, plain notation for moderate
//! exponents (`3.25`, `100`, `0.001`), scientific otherwise (`1e+21`,
//! `1.5e-7`: no exponent padding), and `inf`, `-inf`, `nan`, `0`, `-0`.
//!
//! The digits come from Rust's shortest round-trip formatting; Redis uses
//! Grisu2, which in rare cases emits a longer (still exact) digit string.
//!
//! Formats into a stack buffer: no heap allocation.

use std::fmt::Write as _;

/// A formatted double: at most 24 bytes, on the stack.
pub(crate) struct DoubleText {
    buf: [u8; 32],
    len: usize,
}

impl DoubleText {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        // 32 bytes exceed the longest output (24); never truncates.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.extend(s.as_bytes());
        Ok(())
    }
}

/// Formats `d` like Redis.
pub(crate) fn format_double(d: f64) -> DoubleText {
    let mut out = DoubleText {
        buf: [0; 32],
        len: 0,
    };
    if d.is_sign_negative() {
        out.push(b'-');
    }
    let a = d.abs();
    if a.is_nan() {
        out.extend(b"nan");
        return out;
    }
    if a.is_infinite() {
        out.extend(b"inf");
        return out;
    }
    if a == 0.0 {
        out.push(b'0');
        return out;
    }
    // Fast path: integral values below 1e7 always print as plain integers
    // (fpconv uses plain notation while the exponent is < digits + 7).
    if a < 1e7 && a.fract() == 0.0 {
        let mut buf = itoa::Buffer::new();
        // Exact: `a` is an integer below 1e7.
        out.extend(buf.format(a as u32).as_bytes());
        return out;
    }
    // Shortest round-trip digits and decimal exponent from `{:e}`
    // ("1.2345e-7"): value = d.ddd * 10^e.
    let mut sci = DoubleText {
        buf: [0; 32],
        len: 0,
    };
    if write!(sci, "{a:e}").is_err() {
        // Unreachable in practice (the longest `{:e}` is 23 bytes); fall
        // back to Rust's plain formatting rather than fail.
        out.len = 0;
        let _ = write!(out, "{d}");
        return out;
    }
    let text = sci.as_bytes();
    let e_pos = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let (mantissa, exp_text) = text.split_at(e_pos);
    let exp: i32 = std::str::from_utf8(exp_text.get(1..).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 20];
    let mut nd = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    emit_digits(&digits[..nd], exp, &mut out);
    out
}

/// `fpconv`'s `emit_digits`: `digits` with the first digit at 10^`exp`.
fn emit_digits(digits: &[u8], exp: i32, out: &mut DoubleText) {
    let nd = digits.len() as i32;
    // Exponent of the last digit (fpconv's K).
    let k = exp - (nd - 1);
    let abs_exp = exp.abs();
    if k >= 0 && abs_exp < nd + 7 {
        out.extend(digits);
        for _ in 0..k {
            out.push(b'0');
        }
        return;
    }
    if k < 0 && (k > -7 || abs_exp < 4) {
        let offset = nd + k;
        if offset <= 0 {
            out.extend(b"0.");
            for _ in 0..-offset {
                out.push(b'0');
            }
            out.extend(digits);
        } else {
            let (int, frac) = digits.split_at(offset as usize);
            out.extend(int);
            out.push(b'.');
            out.extend(frac);
        }
        return;
    }
    let (first, rest) = digits.split_at(1.min(digits.len()));
    out.extend(first);
    if !rest.is_empty() {
        out.push(b'.');
        out.extend(rest);
    }
    out.push(b'e');
    out.push(if exp < 0 { b'-' } else { b'+' });
    let mut buf = itoa::Buffer::new();
    out.extend(buf.format(abs_exp).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(d: f64) -> String {
        String::from_utf8(format_double(d).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn matches_redis_fpconv() {
        assert_eq!(f(3.25), "3.25");
        assert_eq!(f(2.71), "2.71");
        assert_eq!(f(3.0), "3");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(100.0), "100");
        assert_eq!(f(-9999999.0), "-9999999");
        assert_eq!(f(12345678.0), "12345678");
        assert_eq!(f(0.001), "0.001");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1e7), "10000000");
        assert_eq!(f(1e8), "1e+8");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1.5e-7), "1.5e-7");
        assert_eq!(f(1e-6), "0.000001");
        assert_eq!(f(123456.789), "123456.789");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(f64::NAN), "nan");
    }

    #[test]
    fn round_trips() {
        for d in [0.1, 1.0 / 3.0, 6.02214076e23, -1e-300, 12345678901234567.0] {
            assert_eq!(f(d).parse::<f64>().unwrap(), d);
        }
    }
}
