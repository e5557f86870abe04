use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::hlc::Hlc;
use crate::record::Record;

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn vals<T: Clone + Ord>(s: &DvvSet<T>) -> Vec<T> {
    let mut v: Vec<T> = s.values().cloned().collect();
    v.sort();
    v
}

#[test]
fn concurrent_blind_writes_become_siblings() {
    let empty = VersionVector::new();
    // Through one coordinator.
    let s = DvvSet::new()
        .update(&empty, &id("a"), "x")
        .update(&empty, &id("a"), "y");
    assert_eq!(vals(&s), ["x", "y"]);
    // Through two coordinators, then replicated.
    let a = DvvSet::new().update(&empty, &id("a"), "x");
    let b = DvvSet::new().update(&empty, &id("b"), "y");
    assert_eq!(vals(&a.merge(&b)), ["x", "y"]);
    assert_eq!(a.merge(&b).context().to_string(), "{a:1, b:1}");
}

#[test]
fn an_overwrite_equals_an_update_with_the_state_s_own_context() {
    let empty = VersionVector::new();
    let a = DvvSet::new().update(&empty, &id("a"), "x");
    let b = DvvSet::new()
        .update(&empty, &id("b"), "y")
        .update(&empty, &id("b"), "z");
    let states = [DvvSet::new(), a.clone(), b.clone(), a.merge(&b)];
    for state in states {
        for floor in [0, 1, 7] {
            for node in ["a", "b", "c"] {
                let expected = state.update_with_floor(state.context(), &id(node), "new", floor);
                let got = state.clone().overwrite_with_floor(&id(node), "new", floor);
                assert_eq!(got, expected, "{state:?} node {node} floor {floor}");
                assert_eq!(vals(&got), ["new"]);
            }
        }
    }
}

#[test]
fn write_with_the_merged_context_resolves_siblings() {
    let empty = VersionVector::new();
    let a = DvvSet::new().update(&empty, &id("a"), "x");
    let b = DvvSet::new().update(&empty, &id("b"), "y");
    let read = a.merge(&b);
    let resolved = a.update(read.context(), &id("a"), "xy");
    assert_eq!(vals(&resolved), ["xy"]);
    // Replicating the resolution to b replaces both siblings there too.
    assert_eq!(vals(&b.merge(&resolved)), ["xy"]);
    assert_eq!(vals(&resolved.merge(&read)), ["xy"]);
}

#[test]
fn a_write_supersedes_only_what_its_client_read() {
    let empty = VersionVector::new();
    let s1 = DvvSet::new().update(&empty, &id("a"), 1);
    let ctx = s1.context().clone();
    // Another client writes 2 after reading 1; ours read 1 too.
    let s2 = s1.update(&ctx, &id("a"), 2);
    let s3 = s2.update(&ctx, &id("a"), 3);
    assert_eq!(vals(&s3), [2, 3]);
    assert_eq!(s3.context().get("a"), 3);
}

#[test]
fn coordinator_counter_passes_what_the_client_saw() {
    // The client saw a:5 through another replica; a's local state is
    // behind. The new dot must not collide with a:1..=5.
    let client: VersionVector = [(id("a"), 5)].into_iter().collect();
    let local = DvvSet::new().update(&VersionVector::new(), &id("a"), 0);
    let s = local.update(&client, &id("a"), 9);
    assert_eq!(s.siblings()[0].dot, Dot::new("a", 6));
    assert_eq!(vals(&s), [9]);
}

#[test]
fn floor_keeps_post_purge_dots_fresh() {
    let empty = VersionVector::new();
    let old = DvvSet::new().update(&empty, &id("a"), "old");
    let deleted = old.update(old.context(), &id("a"), "tomb");
    let stale_client_ctx = deleted.context().clone(); // a:2
                                                      // Purged: the key restarts empty. Without a floor, the next write
                                                      // would reuse dot (a,1), which the stale context covers.
    let reborn = DvvSet::new().update(&empty, &id("a"), "new");
    assert!(stale_client_ctx.covers(&reborn.siblings()[0].dot));
    let floored = DvvSet::new().update_with_floor(&empty, &id("a"), "new", 1_000);
    assert!(!stale_client_ctx.covers(&floored.siblings()[0].dot));
    // A client that read before the delete does not clobber it.
    let later = floored.update(&stale_client_ctx, &id("a"), "late");
    assert_eq!(vals(&later), ["late", "new"]);
}

#[test]
fn from_parts_checks_invariants() {
    let ctx: VersionVector = [(id("a"), 2)].into_iter().collect();
    let sib = |n: &str, c| Sibling {
        dot: Dot::new(n, c),
        value: (),
    };
    assert!(DvvSet::from_parts(ctx.clone(), vec![sib("a", 2), sib("a", 1)]).is_ok());
    assert_eq!(
        DvvSet::from_parts(ctx.clone(), vec![sib("a", 3)]),
        Err(DvvError::DotNotCovered(Dot::new("a", 3)))
    );
    assert_eq!(
        DvvSet::from_parts(ctx.clone(), vec![sib("a", 1), sib("a", 1)]),
        Err(DvvError::DuplicateDot(Dot::new("a", 1)))
    );
    assert!(DvvSet::from_parts(ctx, vec![sib("a", 0)]).is_err());
}

#[test]
fn version_vector_order() {
    let a: VersionVector = [(id("a"), 2), (id("b"), 1)].into_iter().collect();
    let b: VersionVector = [(id("a"), 1), (id("b"), 3)].into_iter().collect();
    assert!(a.concurrent(&b));
    let j = a.joined(&b);
    assert!(j.descends(&a) && j.descends(&b) && !a.descends(&j));
    assert_eq!(j.to_string(), "{a:2, b:3}");
    assert!(VersionVector::new().descends(&VersionVector::new()));
    let zero: VersionVector = [(id("z"), 0)].into_iter().collect();
    assert!(zero.is_empty());
}

// ---- Encodings ----------------------------------------------------------

fn version(value: &'static str, ts: u64) -> Version {
    Version::value(value, Hlc(ts))
}

#[test]
fn context_round_trips_and_is_compact() {
    let vv: VersionVector = [(id("node-1"), 7), (id("node-2"), 300)]
        .into_iter()
        .collect();
    let bytes = vv.encode();
    // format + count + 2 × (len + 6 id bytes + counter) + checksum
    assert_eq!(bytes.len(), 1 + 1 + (1 + 6 + 1) + (1 + 6 + 2) + 4);
    assert_eq!(VersionVector::decode(&bytes), Ok(vv));
    assert_eq!(
        VersionVector::decode(&VersionVector::new().encode()),
        Ok(VersionVector::new())
    );
}

#[test]
fn context_decode_rejects_bad_input() {
    let bytes = [(id("a"), 1)]
        .into_iter()
        .collect::<VersionVector>()
        .encode();
    let mut flipped = bytes.to_vec();
    flipped[3] ^= 1;
    assert_eq!(VersionVector::decode(&flipped), Err(DvvError::Checksum));
    let mut other_format = bytes.to_vec();
    other_format[0] = 2;
    assert!(matches!(
        VersionVector::decode(&other_format),
        Err(DvvError::UnknownFormat { found: 2, .. })
    ));
    assert!(matches!(
        VersionVector::decode(&[]),
        Err(DvvError::Truncated { .. })
    ));
    assert!(matches!(
        VersionVector::decode(&bytes[..3]),
        Err(DvvError::Truncated { .. }) | Err(DvvError::Checksum)
    ));
}

#[test]
fn record_round_trip() {
    let empty = VersionVector::new();
    let a = DvvSet::new().update(&empty, &id("a"), version("x", 1));
    let b = DvvSet::new().update(&empty, &id("b"), Version::tombstone(Hlc(2)));
    let state = a.merge(&b).update(&empty, &id("c"), version("z", 3));
    let record = to_record(&state);
    assert_eq!(record.versions.len(), 3);
    assert_eq!(from_record(&record), Ok(state.clone()));
    // Through the record's byte encoding as well.
    let decoded = Record::decode(&record.encode()).unwrap();
    assert_eq!(from_record(&decoded), Ok(state));
    // An empty state still has causal data, so it is not mistaken for legacy.
    let none = to_record(&DvvSet::new());
    assert!(!none.causal.is_empty());
    assert_eq!(from_record(&none), Ok(DvvSet::new()));
}

#[test]
fn record_decode_rejects_mismatches() {
    let state = DvvSet::new().update(&VersionVector::new(), &id("a"), version("x", 1));
    let mut record = to_record(&state);
    record.versions.push(version("extra", 2));
    assert_eq!(
        from_record(&record),
        Err(DvvError::SiblingCountMismatch {
            dots: 1,
            versions: 2
        })
    );
    let mut record = to_record(&state);
    let mut causal = record.causal.to_vec();
    *causal.last_mut().unwrap() = 2; // dot counter 2 > context a:1
    record.causal = Bytes::from(causal);
    assert_eq!(
        from_record(&record),
        Err(DvvError::DotNotCovered(Dot::new("a", 2)))
    );
}

#[test]
fn overwriting_wide_and_legacy_records_takes_the_general_path_with_the_same_result() {
    let wide: VersionVector = (0..20).map(|i| (id(&format!("n{i:02}")), i + 1)).collect();
    let state = DvvSet::from_parts(
        wide,
        vec![Sibling {
            dot: Dot {
                node: id("n03"),
                counter: 4,
            },
            value: version("old", 1),
        }],
    )
    .unwrap();
    let legacy = Record {
        causal: Bytes::new(),
        versions: vec![version("a", 5), version("b", 9)],
    };
    for record in [to_record(&state), legacy] {
        let expected =
            from_record(&record)
                .unwrap()
                .overwrite_with_floor(&id("n07"), version("new", 10), 2);
        assert_eq!(
            overwrite_record(&record, &id("n07"), version("new", 10), 2),
            Ok(to_record(&expected))
        );
    }
}

#[test]
fn legacy_record_maps_to_last_write_wins_siblings() {
    let legacy = Record::single(version("old", 10));
    let state = from_record(&legacy).unwrap();
    assert_eq!(state.siblings()[0].dot, Dot::new(LEGACY_NODE, 11));
    // A client that read it supersedes it.
    let read = state.context().clone();
    assert_eq!(
        vals_of(&state.update(&read, &id("a"), version("new", 20))),
        ["new"]
    );
    // A blind write is concurrent with it.
    let blind = state.update(&VersionVector::new(), &id("a"), version("new", 20));
    assert_eq!(vals_of(&blind), ["new", "old"]);
    // Two replicas with different legacy values converge on the newer.
    let other = from_record(&Record::single(version("newer", 30))).unwrap();
    assert_eq!(vals_of(&state.merge(&other)), ["newer"]);
    assert_eq!(vals_of(&other.merge(&state)), ["newer"]);
    // An empty legacy record is an empty state.
    assert_eq!(from_record(&Record::default()), Ok(DvvSet::new()));
}

fn vals_of(s: &DvvSet<Version>) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = s.values().map(|v| v.value.clone()).collect();
    v.sort();
    v
}

// ---- Tombstones and LWW ---------------------------------------------------

#[test]
fn tombstone_purge_needs_every_replica_to_have_seen_it() {
    let empty = VersionVector::new();
    let written = DvvSet::new().update(&empty, &id("a"), version("v", 1));
    let deleted = written.update(written.context(), &id("a"), Version::tombstone(Hlc(2)));
    let lagging = written.context().clone();
    let caught_up = deleted.context().clone();
    assert!(purgeable_record(
        &deleted,
        &[caught_up.clone(), caught_up.clone()]
    ));
    assert!(!purgeable_record(&deleted, &[caught_up.clone(), lagging]));
    assert!(!purgeable_record(&deleted, &[]));
    assert!(!purgeable_record(&written, &[caught_up]));
    // A concurrent live value blocks the purge.
    let concurrent = deleted.update(&empty, &id("b"), version("w", 3));
    assert!(!purgeable_record(
        &concurrent,
        &[concurrent.context().clone()]
    ));
}

#[test]
fn lww_keeps_the_newest_and_breaks_ties_the_same_everywhere() {
    let a = Record::single(version("a", 5));
    let b = Record::single(version("b", 7));
    assert_eq!(lww_merge(&a, &b), b);
    assert_eq!(lww_merge(&b, &a), b);
    let tomb = Record::single(Version::tombstone(Hlc(7)));
    assert_eq!(
        lww_merge(&b, &tomb),
        tomb,
        "a tombstone wins a timestamp tie"
    );
    assert_eq!(
        lww_merge(&Record::default(), &Record::default()),
        Record::default()
    );
}

fn arb_version() -> impl Strategy<Value = Version> {
    (
        0u64..4,
        any::<bool>(),
        prop::sample::select(vec!["", "x", "y"]),
        prop::option::of(0u64..3),
    )
        .prop_map(|(ts, tombstone, value, exp)| Version {
            value: Bytes::from_static(value.as_bytes()),
            tombstone,
            timestamp: Hlc(ts),
            expires_at_ms: exp,
        })
}

fn arb_lww_record() -> impl Strategy<Value = Record> {
    prop::collection::vec(arb_version(), 0..3).prop_map(|versions| Record {
        causal: Bytes::new(),
        versions,
    })
}

proptest! {
    #[test]
    fn lww_merge_laws(a in arb_lww_record(), b in arb_lww_record(), c in arb_lww_record()) {
        prop_assert_eq!(lww_merge(&a, &b), lww_merge(&b, &a));
        prop_assert_eq!(lww_merge(&lww_merge(&a, &b), &c), lww_merge(&a, &lww_merge(&b, &c)));
        let ab = lww_merge(&a, &b);
        prop_assert_eq!(lww_merge(&ab, &ab), ab);
    }
}

// ---- Model-checked histories --------------------------------------------

const REPLICAS: usize = 3;
const CLIENTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A client reads from the replicas in a bit mask (at least one).
    Read { client: usize, mask: u8 },
    /// A client writes through a coordinator with its last read's context.
    Write { client: usize, coordinator: usize },
    /// Anti-entropy or replication: `to` merges `from`'s state.
    Sync { from: usize, to: usize },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..CLIENTS, 1u8..8).prop_map(|(client, mask)| Op::Read { client, mask }),
        (0..CLIENTS, 0..REPLICAS).prop_map(|(client, coordinator)| Op::Write {
            client,
            coordinator
        }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// DVV replicas and clients next to a ground-truth model. Values are write
/// numbers; `past[w]` is the set of writes write `w`'s client had seen.
struct World {
    nodes: Vec<NodeId>,
    replicas: Vec<DvvSet<u32>>,
    /// Writes each replica's state has seen, directly or via merges.
    seen: Vec<BTreeSet<u32>>,
    clients: Vec<(VersionVector, BTreeSet<u32>)>,
    past: Vec<BTreeSet<u32>>,
    writers: BTreeSet<usize>,
    /// Clients keep a session: reads join their previous context and a
    /// write's result becomes their context.
    sessions: bool,
}

impl World {
    fn new(sessions: bool) -> World {
        World {
            nodes: (0..REPLICAS)
                .map(|i| NodeId::from(format!("n{i}")))
                .collect(),
            replicas: vec![DvvSet::new(); REPLICAS],
            seen: vec![BTreeSet::new(); REPLICAS],
            clients: vec![(VersionVector::new(), BTreeSet::new()); CLIENTS],
            past: Vec::new(),
            writers: BTreeSet::new(),
            sessions,
        }
    }

    /// The writes in `seen` that no write in `seen` had seen: what the
    /// siblings must be.
    fn frontier(&self, seen: &BTreeSet<u32>) -> BTreeSet<u32> {
        seen.iter()
            .copied()
            .filter(|w| {
                !seen
                    .iter()
                    .any(|&later| self.past[later as usize].contains(w))
            })
            .collect()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Read { client, mask } => {
                let mut state = DvvSet::new();
                let mut seen = BTreeSet::new();
                for r in (0..REPLICAS).filter(|r| mask & (1 << r) != 0) {
                    state = state.merge(&self.replicas[r]);
                    seen.extend(self.seen[r].iter().copied());
                }
                assert_eq!(values(&state), self.frontier(&seen), "read result");
                let c = &mut self.clients[client];
                if self.sessions {
                    c.0.join(state.context());
                    c.1.extend(seen);
                } else {
                    *c = (state.context().clone(), seen);
                }
            }
            Op::Write {
                client,
                coordinator,
            } => {
                let w = self.past.len() as u32;
                let (ctx, client_seen) = self.clients[client].clone();
                self.past.push(client_seen.clone());
                let r = coordinator;
                self.replicas[r] = self.replicas[r].update(&ctx, &self.nodes[r], w);
                self.seen[r].extend(client_seen);
                self.seen[r].insert(w);
                self.writers.insert(client);
                if self.sessions {
                    self.clients[client] =
                        (self.replicas[r].context().clone(), self.seen[r].clone());
                }
            }
            Op::Sync { from, to } => {
                self.replicas[to] = self.replicas[to].merge(&self.replicas[from]);
                let from_seen = self.seen[from].clone();
                self.seen[to].extend(from_seen);
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for r in 0..REPLICAS {
            let state = &self.replicas[r];
            prop_assert_eq!(values(state), self.frontier(&self.seen[r]), "replica {}", r);
            prop_assert_eq!(state.len(), values(state).len(), "duplicate value");
            if self.sessions {
                // Each client's writes form a chain, so at most one of them
                // is a sibling.
                prop_assert!(state.len() <= self.writers.len());
            }
            let round_trip = DvvSet::from_parts(state.context().clone(), state.siblings().to_vec());
            prop_assert_eq!(round_trip.as_ref(), Ok(state), "invariants");
        }
        Ok(())
    }
}

fn values(s: &DvvSet<u32>) -> BTreeSet<u32> {
    s.values().copied().collect()
}

/// `state` with each write number `w` replaced by a stored version of
/// value `w` at timestamp `w`.
fn with_versions(state: &DvvSet<u32>) -> DvvSet<Version> {
    DvvSet::from_parts(
        state.context().clone(),
        state
            .siblings()
            .iter()
            .map(|s| Sibling {
                dot: s.dot.clone(),
                value: Version::value(s.value.to_string(), Hlc(u64::from(s.value))),
            })
            .collect(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn siblings_are_exactly_the_concurrent_frontier(
        ops in prop::collection::vec(arb_op(), 0..60),
        sessions in any::<bool>(),
    ) {
        let mut world = World::new(sessions);
        for op in &ops {
            world.apply(op);
            world.check()?;
        }
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(ops in prop::collection::vec(arb_op(), 0..60)) {
        let mut world = World::new(false);
        for op in &ops {
            world.apply(op);
        }
        let [a, b, c] = [&world.replicas[0], &world.replicas[1], &world.replicas[2]];
        prop_assert_eq!(a.merge(b), b.merge(a));
        prop_assert_eq!(a.merge(b).merge(c), a.merge(&b.merge(c)));
        prop_assert_eq!(&a.merge(a), a);
        prop_assert_eq!(&a.merge(&DvvSet::new()), a);
        // Merging is the least upper bound of the contexts.
        let ab = a.merge(b);
        prop_assert_eq!(ab.context(), &a.context().joined(b.context()));
    }

    #[test]
    fn states_round_trip_through_records(ops in prop::collection::vec(arb_op(), 0..40)) {
        let mut world = World::new(false);
        for op in &ops {
            world.apply(op);
        }
        for state in &world.replicas {
            let as_versions = with_versions(state);
            let record = to_record(&as_versions);
            prop_assert_eq!(from_record(&record), Ok(as_versions));
            prop_assert_eq!(VersionVector::decode(&state.context().encode()), Ok(state.context().clone()));
        }
    }

    #[test]
    fn overwriting_an_encoded_record_equals_overwriting_its_state(
        ops in prop::collection::vec(arb_op(), 0..40),
        coordinator in prop::sample::select(vec!["a", "n0", "n1", "n2", "n1x", "z"]),
        floor in prop::sample::select(vec![0u64, 1, 3, 1_000, MAX_COUNTER]),
        (at, xor) in (any::<prop::sample::Index>(), 1u8..=255),
    ) {
        let mut world = World::new(false);
        for op in &ops {
            world.apply(op);
        }
        let me = id(coordinator);
        let new = Version::value("new", Hlc(99));
        for state in &world.replicas {
            let as_versions = with_versions(state);
            let record = to_record(&as_versions);
            prop_assert_eq!(
                overwrite_record(&record, &me, new.clone(), floor),
                Ok(to_record(&as_versions.overwrite_with_floor(&me, new.clone(), floor)))
            );
            // A corrupted byte: the same error, or the same result.
            let mut causal = record.causal.to_vec();
            if !causal.is_empty() {
                let i = at.index(causal.len());
                causal[i] ^= xor;
            }
            let corrupt = Record { causal: Bytes::from(causal), versions: record.versions.clone() };
            prop_assert_eq!(
                overwrite_record(&corrupt, &me, new.clone(), floor),
                from_record(&corrupt).map(|s| to_record(&s.overwrite_with_floor(&me, new.clone(), floor)))
            );
        }
    }

    #[test]
    fn context_round_trips(entries in prop::collection::vec(("[a-z0-9-]{0,12}", 1..=MAX_COUNTER), 0..8)) {
        let vv: VersionVector = entries.into_iter().map(|(n, c)| (NodeId::from(n), c)).collect();
        prop_assert_eq!(VersionVector::decode(&vv.encode()), Ok(vv));
    }

    #[test]
    fn decoding_garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..64), versions in 0usize..4) {
        let _ = VersionVector::decode(&body);
        // With a valid format byte and checksum, so the parser runs too.
        let mut framed = vec![CONTEXT_FORMAT];
        framed.extend_from_slice(&body);
        let sum = crate::ring::stable_hash(&framed) as u32;
        framed.extend_from_slice(&sum.to_be_bytes());
        let _ = VersionVector::decode(&framed);
        let mut causal = vec![CAUSAL_FORMAT];
        causal.extend_from_slice(&body);
        let record = Record {
            causal: Bytes::from(causal),
            versions: vec![Version::value("v", Hlc(1)); versions],
        };
        // The blind-write fast path fails exactly where decoding fails.
        let new = Version::value("new", Hlc(2));
        prop_assert_eq!(
            overwrite_record(&record, &id("n1"), new.clone(), 5),
            from_record(&record).map(|s| to_record(&s.overwrite_with_floor(&id("n1"), new, 5)))
        );
        if let Ok(state) = from_record(&record) {
            // Whatever decodes satisfies the invariants.
            prop_assert!(DvvSet::from_parts(state.context().clone(), state.siblings().to_vec()).is_ok());
        }
    }
}
