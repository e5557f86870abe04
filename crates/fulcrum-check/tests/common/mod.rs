//! Histories from a simulated sequential register: every operation takes
//! effect at a point inside its interval, so the result is linearizable by
//! construction.

#![allow(dead_code)]

use fulcrum_check::{History, Op, Operation, Outcome};

/// One simulated operation, as generated.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Which client issues it.
    pub client: u8,
    /// 0–3 read, 4–6 write, 7–8 CAS on the current value, 9 CAS on a stale value.
    pub kind: u8,
    /// Idle time before invocation.
    pub gap: u8,
    /// Invocation to linearization point.
    pub before: u8,
    /// Linearization point to completion.
    pub after: u8,
    /// 0: known outcome; 1: unknown but applied; 2: unknown, never applied.
    pub info: u8,
}

/// Simulate `specs` against one register on key `key`; with `final_read`,
/// client 255 reads the register after everything else.
pub fn simulate(specs: &[Spec], key: &str, final_read: bool) -> History {
    let mut clock = [0u64; 256];
    struct Planned {
        spec: Spec,
        invoke: u64,
        lin: u64,
        complete: u64,
    }
    let mut planned: Vec<Planned> = specs
        .iter()
        .map(|&spec| {
            let c = usize::from(spec.client);
            let invoke = clock[c] + u64::from(spec.gap);
            let lin = invoke + u64::from(spec.before);
            let complete = lin + u64::from(spec.after);
            clock[c] = complete + 1;
            Planned {
                spec,
                invoke,
                lin,
                complete,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].lin, i));
    let mut state: Option<u64> = None;
    let mut next = 1u64;
    let mut done: Vec<Option<(Op, Outcome)>> = vec![None; planned.len()];
    for i in order {
        let p = &mut planned[i];
        let applied = p.spec.info != 2;
        let (op, mut outcome) = match p.spec.kind {
            0..=3 => (Op::Read(state), Outcome::Ok),
            4..=6 => {
                next += 1;
                if applied {
                    state = Some(next);
                }
                (Op::Write(next), Outcome::Ok)
            }
            kind => {
                next += 1;
                let expected = if kind == 9 { Some(next / 2) } else { state };
                if expected == state {
                    if applied {
                        state = Some(next);
                    }
                    (
                        Op::Cas {
                            expected,
                            new: next,
                        },
                        Outcome::Ok,
                    )
                } else {
                    (
                        Op::Cas {
                            expected,
                            new: next,
                        },
                        Outcome::Fail,
                    )
                }
            }
        };
        if p.spec.info != 0 && outcome == Outcome::Ok {
            outcome = Outcome::Info;
        }
        done[i] = Some((op, outcome));
    }
    let mut builder = History::builder();
    let mut end = 0;
    for (p, d) in planned.iter().zip(done) {
        let Some((op, outcome)) = d else { continue };
        end = end.max(p.complete);
        builder = match outcome {
            Outcome::Info => {
                builder.info_until(u64::from(p.spec.client), key, op, p.invoke, p.complete)
            }
            _ => builder.op(
                u64::from(p.spec.client),
                key,
                op,
                p.invoke,
                Some(p.complete),
                outcome,
            ),
        };
    }
    if final_read {
        builder = builder.ok(255, key, Op::Read(state), end + 1, end + 2);
    }
    builder
        .build()
        .expect("simulated histories are well formed")
}

/// The ids of the `Ok` reads.
pub fn ok_reads(history: &History) -> Vec<u64> {
    history
        .ops()
        .iter()
        .filter(|op| op.outcome == Outcome::Ok && matches!(op.op, Op::Read(_)))
        .map(|op| op.id)
        .collect()
}

/// A copy of `history` with operation `id`'s read replaced by `value`.
pub fn corrupt(history: &History, id: u64, value: u64) -> History {
    let ops: Vec<Operation> = history
        .ops()
        .iter()
        .cloned()
        .map(|mut op| {
            if op.id == id {
                op.op = Op::Read(Some(value));
            }
            op
        })
        .collect();
    History::from_ops(ops).expect("same shape as a valid history")
}

/// A small deterministic generator (splitmix64), for tests without proptest.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u8 {
        (self.next() % n) as u8
    }

    /// `n` specs over `clients` clients, mostly known outcomes.
    pub fn specs(&mut self, n: usize, clients: u8) -> Vec<Spec> {
        (0..n)
            .map(|_| Spec {
                client: self.below(u64::from(clients)),
                kind: self.below(10),
                gap: self.below(20),
                before: self.below(30),
                after: self.below(30),
                info: if self.below(50) == 0 {
                    1 + self.below(2)
                } else {
                    0
                },
            })
            .collect()
    }
}
