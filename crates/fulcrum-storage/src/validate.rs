//! Checks shared by every engine, so that all engines reject exactly the
//! same inputs with exactly the same errors.

use std::collections::HashSet;
use std::ops::Bound;

use crate::error::{StorageError, StorageResult};
use crate::traits::{Batch, BatchOp};
use crate::{MAX_KEY_LEN, MAX_TABLE_NAME_LEN, MAX_VALUE_LEN};

/// A table name is 1 to [`MAX_TABLE_NAME_LEN`] bytes of UTF-8.
pub(crate) fn table_name(name: &str) -> StorageResult<()> {
    if name.is_empty() || name.len() > MAX_TABLE_NAME_LEN {
        return Err(StorageError::BadTableName(name.to_string()));
    }
    Ok(())
}

pub(crate) fn key(key: &[u8]) -> StorageResult<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

pub(crate) fn value(value: &[u8]) -> StorageResult<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StorageError::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// Checks sizes of every op in the batch (tables are checked by the engine,
/// which knows which exist).
pub(crate) fn batch_sizes(batch: &Batch) -> StorageResult<()> {
    for op in &batch.ops {
        match op {
            BatchOp::Put {
                key: k, value: v, ..
            } => {
                key(k)?;
                value(v)?;
            }
            BatchOp::Remove { key: k, .. } => key(k)?,
        }
    }
    Ok(())
}

/// The table an op writes to.
pub(crate) fn op_table(op: &BatchOp) -> &str {
    match op {
        BatchOp::Put { table, .. } | BatchOp::Remove { table, .. } => table,
    }
}

fn op_key(op: &BatchOp) -> &[u8] {
    match op {
        BatchOp::Put { key, .. } | BatchOp::Remove { key, .. } => key,
    }
}

/// Drops every op that a later op in the same batch overrides (same table
/// and key), keeping the order of the rest. Engines that give all ops of a
/// batch one sequence number (fjall) cannot order two versions of one key
/// within a batch, so "last op wins" is enforced here.
pub(crate) fn last_op_wins(ops: Vec<BatchOp>) -> Vec<BatchOp> {
    if ops.len() < 2 {
        return ops;
    }
    let mut seen: HashSet<(&str, &[u8])> = HashSet::with_capacity(ops.len());
    let keep: Vec<bool> = ops
        .iter()
        .rev()
        .map(|op| seen.insert((op_table(op), op_key(op))))
        .collect();
    if keep.iter().all(|k| *k) {
        return ops;
    }
    ops.into_iter()
        .zip(keep.into_iter().rev())
        .filter_map(|(op, keep)| keep.then_some(op))
        .collect()
}

/// True when no key can lie within `(start, end)`: an inverted range, or
/// equal bounds of which at least one is excluded.
pub(crate) fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let (s, s_incl) = match start {
        Bound::Unbounded => return false,
        Bound::Included(s) => (s, true),
        Bound::Excluded(s) => (s, false),
    };
    let (e, e_incl) = match end {
        Bound::Unbounded => return false,
        Bound::Included(e) => (e, true),
        Bound::Excluded(e) => (e, false),
    };
    match s.cmp(e) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => !(s_incl && e_incl),
        std::cmp::Ordering::Less => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_op_wins_keeps_order_of_survivors() {
        let mut b = Batch::new();
        b.put("t", "a", "1");
        b.put("u", "a", "2");
        b.remove("t", "a");
        b.put("t", "b", "3");
        b.put("t", "a", "4");
        let ops = last_op_wins(b.ops);
        let mut want = Batch::new();
        want.put("u", "a", "2");
        want.put("t", "b", "3");
        want.put("t", "a", "4");
        assert_eq!(ops, want.ops);
    }

    #[test]
    fn empty_ranges() {
        use Bound::*;
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        assert!(range_is_empty(Included(b), Included(a)));
        assert!(range_is_empty(Included(a), Excluded(a)));
        assert!(range_is_empty(Excluded(a), Included(a)));
        assert!(!range_is_empty(Included(a), Included(a)));
        assert!(!range_is_empty(Excluded(a), Excluded(b)));
        assert!(!range_is_empty(Unbounded, Excluded(a)));
    }
}
