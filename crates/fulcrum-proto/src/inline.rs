//! Inline commands (`set a "b c"\r\n`): splitting one line into arguments
//! with Redis's quoting rules (a port of `sdssplitargs`).
//!
//! * Blanks (space, `\t`, `\n`, `\v`, `\f`, `\r`) separate arguments.
//! * `"..."` understands `\n \r \t \b \a \xHH` and `\<any>` (the character
//!   itself); `'...'` understands only `\'`.
//! * A closing quote must be followed by a blank or the end of the line,
//!   and every quote must be closed; otherwise the request is rejected with
//!   `Protocol error: unbalanced quotes in request`.
//! * As in Redis (which splits a C string), a NUL byte ends the line.
//!
//! Arguments without escapes or quotes inside them are zero-copy slices of
//! the line.

use bytes::Bytes;

use crate::error::ProtoError;

/// Splits an inline request line (without its line terminator) into
/// arguments.
///
/// # Errors
///
/// [`ProtoError::UnbalancedQuotes`] for an unterminated quote or a closing
/// quote followed by something other than a blank.
pub(crate) fn split_args(line: &Bytes) -> Result<Vec<Bytes>, ProtoError> {
    let s = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => &line[..],
    };
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < s.len() && is_blank(s[p]) {
            p += 1;
        }
        if p >= s.len() {
            return Ok(args);
        }
        let mut tok = Token::new(p);
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = s.get(p).copied();
            if in_dq {
                match c {
                    None => return Err(ProtoError::UnbalancedQuotes),
                    Some(b'\\') => match (s.get(p + 1), hex(s.get(p + 2)), hex(s.get(p + 3))) {
                        (Some(b'x'), Some(hi), Some(lo)) => {
                            tok.push_byte(s, hi * 16 + lo);
                            p += 4;
                        }
                        (Some(&e), _, _) => {
                            tok.push_byte(s, unescape(e));
                            p += 2;
                        }
                        // A trailing backslash is literal; the quote stays open.
                        (None, _, _) => {
                            tok.push_raw(s, p);
                            p += 1;
                        }
                    },
                    Some(b'"') => {
                        closing_quote_ok(s, p)?;
                        p += 1;
                        break;
                    }
                    Some(_) => {
                        tok.push_raw(s, p);
                        p += 1;
                    }
                }
            } else if in_sq {
                match c {
                    None => return Err(ProtoError::UnbalancedQuotes),
                    Some(b'\\') if s.get(p + 1) == Some(&b'\'') => {
                        tok.push_byte(s, b'\'');
                        p += 2;
                    }
                    Some(b'\'') => {
                        closing_quote_ok(s, p)?;
                        p += 1;
                        break;
                    }
                    Some(_) => {
                        tok.push_raw(s, p);
                        p += 1;
                    }
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        p += 1;
                        break;
                    }
                    Some(b'"') => {
                        in_dq = true;
                        p += 1;
                    }
                    Some(b'\'') => {
                        in_sq = true;
                        p += 1;
                    }
                    Some(_) => {
                        tok.push_raw(s, p);
                        p += 1;
                    }
                }
            }
        }
        args.push(tok.finish(line));
    }
}

/// C `isspace` in the "C" locale.
fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn closing_quote_ok(s: &[u8], quote: usize) -> Result<(), ProtoError> {
    match s.get(quote + 1) {
        Some(&next) if !is_blank(next) => Err(ProtoError::UnbalancedQuotes),
        _ => Ok(()),
    }
}

fn hex(c: Option<&u8>) -> Option<u8> {
    match *c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn unescape(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

/// One argument being built: a range of the line while it is a contiguous
/// copy of it, an owned buffer once an escape or inner quote breaks that.
struct Token {
    start: usize,
    end: usize,
    owned: Option<Vec<u8>>,
}

impl Token {
    fn new(at: usize) -> Token {
        Token {
            start: at,
            end: at,
            owned: None,
        }
    }

    /// Appends the line byte at index `i`.
    fn push_raw(&mut self, s: &[u8], i: usize) {
        match &mut self.owned {
            Some(v) => v.push(s[i]),
            None if self.start == self.end => {
                self.start = i;
                self.end = i + 1;
            }
            None if self.end == i => self.end = i + 1,
            None => self.push_byte(s, s[i]),
        }
    }

    /// Appends a byte that is not a copy of the line at this position.
    fn push_byte(&mut self, s: &[u8], b: u8) {
        self.owned
            .get_or_insert_with(|| s[self.start..self.end].to_vec())
            .push(b);
    }

    fn finish(self, line: &Bytes) -> Bytes {
        match self.owned {
            Some(v) => Bytes::from(v),
            None => line.slice(self.start..self.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Result<Vec<Vec<u8>>, ProtoError> {
        split_args(&Bytes::copy_from_slice(s)).map(|v| v.into_iter().map(|b| b.to_vec()).collect())
    }

    #[test]
    fn plain_words() {
        assert_eq!(
            split(b"  set a  b\t").unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert!(split(b"").unwrap().is_empty());
        assert!(split(b" \t ").unwrap().is_empty());
    }

    #[test]
    fn quotes_join_mid_token() {
        assert_eq!(split(b"a\"b c\"").unwrap(), vec![b"ab c".to_vec()]);
        assert_eq!(split(b"\"\"").unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn unquoted_args_are_zero_copy_slices() {
        let line = Bytes::from_static(b"get key");
        let args = split_args(&line).unwrap();
        assert_eq!(args[1].as_ptr(), line[4..].as_ptr());
    }
}
