//! Session guarantees per client: read-your-writes and monotonic reads.
//!
//! Both need to know which of two versions of a key is newer. The order comes
//! from one of two assumptions, chosen by [`VersionOrder`]:
//!
//! * [`VersionOrder::Recorded`]: the store reports versions (for Fulcrum, the
//!   hybrid-logical-clock timestamp that orders last-writer-wins). Each `Ok`
//!   write carries the version its acknowledgement reported in
//!   [`Operation::version`]; each read carries the version it returned, or
//!   inherits it from the write of the value it read when that write's
//!   version is known (and all writers of that value agree).
//! * [`VersionOrder::ValueOrder`]: values are their own versions. Sound only
//!   if the workload writes, per key, values that increase in the order the
//!   store applies them (for example one writer per key, counting up).
//!
//! An absent key (a read of `nil`, an empty sibling set) is older than every
//! version. A read returning siblings has the version of its newest sibling.
//!
//! Claims, per client and key, for operations of that client in real-time
//! order (an earlier operation completed before the later was invoked):
//!
//! * **read-your-writes**: an `Ok` read returns a version at least as new as
//!   that of every earlier `Ok` write (or CAS) by the same client;
//! * **monotonic reads**: an `Ok` read returns a version at least as new as
//!   every earlier `Ok` read by the same client.
//!
//! Only register keys are checked. Reads and writes whose version cannot be
//! determined are skipped and make the verdict `Unknown` unless a violation
//! is found elsewhere.

use std::collections::{BTreeMap, HashMap};

use crate::display::ValueSet;
use crate::history::{ClientId, History, Op, Operation, Outcome, Value};
use crate::report::{count, CheckKind, Report, Verdict};

/// Where the version order of a key's values comes from (see the module
/// docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionOrder {
    /// Store-reported versions in [`Operation::version`].
    #[default]
    Recorded,
    /// Each value is its own version.
    ValueOrder,
}

/// Check read-your-writes and monotonic reads for every client.
pub fn check_sessions(history: &History, order: VersionOrder) -> Report {
    let mut report = Report::new(CheckKind::Session, Verdict::Valid, "");
    let mut unresolved = 0usize;
    let mut reads_checked = 0usize;
    for (key, ops) in history.by_key() {
        if ops.iter().any(|op| matches!(op.op, Op::AddElement(_)))
            || !ops.iter().any(|op| op.op.is_register())
        {
            continue;
        }
        let versions = Versions::new(&ops, order);
        let mut sessions: BTreeMap<ClientId, Vec<&Operation>> = BTreeMap::new();
        for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
            sessions.entry(op.client).or_default().push(op);
        }
        let mut key_bad = false;
        for (client, mut session) in sessions {
            session.sort_by_key(|op| (op.invoke, op.id));
            // Newest own write and newest read so far: (version, operation).
            let mut own_write: Option<(u64, &Operation)> = None;
            let mut prior_read: Option<(u64, &Operation)> = None;
            for op in session {
                if op.op.written_value().is_some() {
                    match versions.of_write(op) {
                        Some(v) => own_write = newer(own_write, (v, op)),
                        None => unresolved += 1,
                    }
                    continue;
                }
                let Some(seen) = read_values(&op.op) else {
                    continue;
                };
                let Ok(version) = versions.of_read(op, &seen) else {
                    unresolved += 1;
                    continue;
                };
                reads_checked += 1;
                let behind = |&(v, src): &(u64, &Operation)| Some(v) > version && src.precedes(op);
                let violation = own_write
                    .filter(behind)
                    .map(|f| ("read-your-writes", "its own write", f))
                    .or_else(|| {
                        prior_read
                            .filter(behind)
                            .map(|f| ("monotonic reads", "its earlier read", f))
                    });
                if let Some((guarantee, what, (floor, src))) = violation {
                    report.findings.push(format!(
                        "key {key:?}, client {client}: {guarantee} violated: read {} at [{}, {}] saw {} (version {}) after {what} {} of version {floor}",
                        op.id,
                        op.invoke,
                        op.complete.unwrap_or(op.invoke),
                        match seen.as_slice() {
                            [] => "nil".to_string(),
                            [v] => v.to_string(),
                            many => ValueSet(many).to_string(),
                        },
                        version.map_or("none".to_string(), |v| v.to_string()),
                        src.id,
                    ));
                    if report.counterexample.is_none() {
                        let writers = seen.iter().flat_map(|v| versions.writers(*v));
                        report.counterexample =
                            Some(History::subset([src, op].into_iter().chain(writers)));
                    }
                    key_bad = true;
                }
                if let Some(v) = version {
                    prior_read = newer(prior_read, (v, op));
                }
            }
        }
        if key_bad {
            report.keys.push(key.to_string());
        }
    }
    report.verdict = if !report.findings.is_empty() {
        Verdict::Invalid
    } else if unresolved > 0 {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    report.summary = match report.verdict {
        Verdict::Invalid => format!(
            "{} on {}",
            count(report.findings.len(), "violation"),
            count(report.keys.len(), "key")
        ),
        Verdict::Unknown => format!(
            "no violation in {}, but {} had no known version",
            count(reads_checked, "read"),
            count(unresolved, "operation")
        ),
        Verdict::Valid => format!(
            "{} respect read-your-writes and monotonic reads",
            count(reads_checked, "read")
        ),
    };
    if unresolved > 0 && order == VersionOrder::Recorded {
        report.findings.push(format!(
            "{} had no recorded version and were skipped; record Operation::version or use VersionOrder::ValueOrder",
            count(unresolved, "operation")
        ));
    }
    report
}

fn newer<'a>(
    current: Option<(u64, &'a Operation)>,
    candidate: (u64, &'a Operation),
) -> Option<(u64, &'a Operation)> {
    match current {
        Some(c) if c.0 >= candidate.0 => Some(c),
        _ => Some(candidate),
    }
}

/// The values a register read returned, or `None` for non-reads.
fn read_values(op: &Op) -> Option<Vec<Value>> {
    match op {
        Op::Read(v) => Some(v.iter().copied().collect()),
        Op::ReadSet(vs) => Some(vs.clone()),
        _ => None,
    }
}

/// Version lookup for one key.
struct Versions<'a> {
    order: VersionOrder,
    writers: HashMap<Value, Vec<&'a Operation>>,
}

impl<'a> Versions<'a> {
    fn new(ops: &[&'a Operation], order: VersionOrder) -> Self {
        let mut writers: HashMap<Value, Vec<&Operation>> = HashMap::new();
        for op in ops.iter().filter(|op| op.outcome != Outcome::Fail) {
            if let Some(v) = op.op.written_value() {
                writers.entry(v).or_default().push(op);
            }
        }
        Versions { order, writers }
    }

    fn writers(&self, value: Value) -> impl Iterator<Item = &'a Operation> + '_ {
        self.writers.get(&value).into_iter().flatten().copied()
    }

    fn of_write(&self, op: &Operation) -> Option<u64> {
        match self.order {
            VersionOrder::Recorded => op.version,
            VersionOrder::ValueOrder => op.op.written_value(),
        }
    }

    /// `Ok(None)` for an absent key, `Err(())` if unknown.
    fn of_read(&self, op: &Operation, seen: &[Value]) -> Result<Option<u64>, ()> {
        if seen.is_empty() {
            return Ok(None);
        }
        match self.order {
            VersionOrder::ValueOrder => Ok(seen.iter().max().copied()),
            VersionOrder::Recorded if op.version.is_some() => Ok(op.version),
            VersionOrder::Recorded => {
                let mut newest = None;
                for &value in seen {
                    let mut versions = self.writers(value).map(|w| w.version);
                    let first = versions.next().flatten().ok_or(())?;
                    if versions.any(|v| v != Some(first)) {
                        return Err(());
                    }
                    newest = newest.max(Some(first));
                }
                Ok(newest)
            }
        }
    }
}
