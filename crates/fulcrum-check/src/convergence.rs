//! Convergence: after healing and anti-entropy, every replica holds the same
//! state.
//!
//! Input: each replica's final state as a map key → state, where the state is
//! whatever the caller can compare (a sorted sibling set, a set's elements, a
//! counter value, a digest). Claim: every key present on any replica is
//! present on all of them with equal state. Differing keys are reported with
//! how the replicas split.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::Key;
use crate::report::{count, CheckKind, Report, Verdict};

/// The most replica groups spelled out per differing key.
const MAX_GROUPS_SHOWN: usize = 4;

/// Check that all replicas agree. `replicas` maps a replica's name to its
/// final state per key.
pub fn check_convergence<V: Eq + fmt::Debug>(
    replicas: &BTreeMap<String, BTreeMap<Key, V>>,
) -> Report {
    let mut report = Report::new(CheckKind::Convergence, Verdict::Valid, "");
    let keys: BTreeSet<&Key> = replicas.values().flat_map(BTreeMap::keys).collect();
    for &key in &keys {
        // Replicas grouped by what they hold for the key (`None`: absent).
        let mut groups: Vec<(Option<&V>, Vec<&str>)> = Vec::new();
        for (replica, state) in replicas {
            let value = state.get(key);
            match groups.iter_mut().find(|(v, _)| *v == value) {
                Some((_, names)) => names.push(replica),
                None => groups.push((value, vec![replica])),
            }
        }
        if groups.len() <= 1 {
            continue;
        }
        let mut parts: Vec<String> = groups
            .iter()
            .take(MAX_GROUPS_SHOWN)
            .map(|(value, names)| {
                let value = value.map_or("absent".to_string(), |v| format!("{v:?}"));
                format!("{} = {value}", names.join(", "))
            })
            .collect();
        if groups.len() > MAX_GROUPS_SHOWN {
            parts.push(format!("{} more groups", groups.len() - MAX_GROUPS_SHOWN));
        }
        report
            .findings
            .push(format!("key {key:?} differs: {}", parts.join("; ")));
        report.keys.push(key.clone());
    }
    if report.keys.is_empty() {
        report.summary = format!(
            "{} replicas agree on all {} keys",
            replicas.len(),
            keys.len()
        );
    } else {
        report.verdict = Verdict::Invalid;
        report.summary = format!(
            "{} of {} differ across {}",
            report.keys.len(),
            count(keys.len(), "key"),
            count(replicas.len(), "replica")
        );
    }
    report
}
