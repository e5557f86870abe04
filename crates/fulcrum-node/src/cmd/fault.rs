//! `FAULT …`: fault-injection hooks for tests, demos and `fulcrum verify`.
//! Refused unless the node was started with `--allow-faults`.
//!
//! - `FAULT DELAY-PUTS ms`: replica writes arriving from peers are applied
//!   only after `ms` milliseconds (0 turns it off) — makes a replica
//!   deterministically stale.
//! - `FAULT CLOCK-OFFSET ms`: shifts this node's wall clock (the hybrid
//!   logical clock's physical source, TTLs) by `ms`, which may be negative;
//!   0 turns it off.
//! - `FAULT DROP-PUTS 1|0`: replica writes arriving from peers are refused
//!   (no hint is kept: the node is up), so only read repair or
//!   anti-entropy can bring the replica back.
//! - `FAULT STALE-READS on|off` (or `1|0`): on a strong keyspace, this node
//!   serves `LINEARIZABLE` reads from its own applied state, without a read
//!   index and without forwarding to the leader — exactly the bug of a
//!   follower (or a deposed leader) answering reads. `fulcrum verify` must
//!   catch it (`tests/verify_catches_bugs.rs`).

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::args::{int, is};
use super::{CmdError, CmdResult, Ctx};

pub fn fault(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !ctx.cluster.allow_faults {
        return Err(CmdError::Msg(
            "fault injection is disabled on this node (start it with --allow-faults)".into(),
        ));
    }
    match a {
        [what, ms] if is(what, "DELAY-PUTS") => {
            let ms = int(ms)?;
            if ms < 0 {
                return Err(CmdError::NotInteger);
            }
            ctx.cluster
                .faults
                .delay_puts_ms
                .store(ms as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::ok())
        }
        [what, ms] if is(what, "CLOCK-OFFSET") => {
            crate::db::set_clock_offset_ms(int(ms)?);
            Ok(Frame::ok())
        }
        [what, on] if is(what, "DROP-PUTS") => {
            let on = int(on)? != 0;
            ctx.cluster
                .faults
                .drop_puts
                .store(on, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::ok())
        }
        [what, on] if is(what, "STALE-READS") => {
            let on = if is(on, "ON") {
                true
            } else if is(on, "OFF") {
                false
            } else {
                int(on)? != 0
            };
            ctx.cluster
                .faults
                .stale_reads
                .store(on, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::ok())
        }
        _ => Err(CmdError::Syntax),
    }
}
