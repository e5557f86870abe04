//! Human-readable forms: operations, outcomes and histories as tables.

use std::fmt;

use crate::history::{History, Op, Operation, Outcome};

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read(Some(v)) => write!(f, "read -> {v}"),
            Op::Read(None) => write!(f, "read -> nil"),
            Op::Write(v) => write!(f, "write {v}"),
            Op::Cas { expected, new } => {
                write!(f, "cas {} -> {new}", OptValue(*expected))
            }
            Op::Add(d) => write!(f, "add {d:+}"),
            Op::ReadCounter(v) => write!(f, "read-counter -> {v}"),
            Op::AddElement(v) => write!(f, "add-element {v}"),
            Op::ReadSet(vs) => write!(f, "read-set -> {}", ValueSet(vs)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        })
    }
}

/// Displays an optional register value, `nil` for absent.
#[derive(Debug, Clone, Copy)]
pub struct OptValue(pub Option<u64>);

impl fmt::Display for OptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("nil"),
        }
    }
}

/// Displays values sorted, as `{1, 2, 3}`, eliding the tail of long sets.
#[derive(Debug, Clone, Copy)]
pub struct ValueSet<'a>(pub &'a [u64]);

impl fmt::Display for ValueSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 12;
        let mut sorted = self.0.to_vec();
        sorted.sort_unstable();
        f.write_str("{")?;
        for (i, v) in sorted.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        if sorted.len() > SHOWN {
            write!(f, ", … {} more", sorted.len() - SHOWN)?;
        }
        f.write_str("}")
    }
}

/// The most rows a table prints before eliding the rest.
pub const MAX_TABLE_ROWS: usize = 60;

/// Write operations as an aligned table sorted by invocation time, each line
/// prefixed by `indent`.
pub fn write_table(f: &mut fmt::Formatter<'_>, ops: &[Operation], indent: &str) -> fmt::Result {
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|op| (op.invoke, op.id));
    let header = ["id", "client", "key", "invoke", "complete", "op", "outcome"];
    let rows: Vec<[String; 7]> = sorted
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|op| {
            let complete = match (op.complete, op.outcome) {
                (Some(t), Outcome::Info) => format!("({t})"),
                (Some(t), _) => t.to_string(),
                (None, _) => "-".to_string(),
            };
            let mut op_text = op.op.to_string();
            if let Some(v) = op.version {
                op_text.push_str(&format!(" @v{v}"));
            }
            [
                op.id.to_string(),
                op.client.to_string(),
                format!("{:?}", op.key),
                op.invoke.to_string(),
                complete,
                op_text,
                op.outcome.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 7]| -> fmt::Result {
        f.write_str(indent)?;
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let last = i == cells.len() - 1;
            // Numbers right-aligned, text left-aligned.
            if matches!(i, 0 | 1 | 3 | 4) {
                write!(f, "{cell:>w$}")?;
            } else if last {
                f.write_str(cell)?;
            } else {
                write!(f, "{cell:<w$}")?;
            }
            if !last {
                f.write_str("  ")?;
            }
        }
        writeln!(f)
    };
    line(f, header)?;
    for row in &rows {
        line(f, row.each_ref().map(String::as_str))?;
    }
    if sorted.len() > MAX_TABLE_ROWS {
        writeln!(
            f,
            "{indent}… {} more operations",
            sorted.len() - MAX_TABLE_ROWS
        )?;
    }
    Ok(())
}

/// Tables: `complete` in parentheses is when an `info` operation's client
/// gave up; `-` means it never returned.
impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_table(f, self.ops(), "")
    }
}
