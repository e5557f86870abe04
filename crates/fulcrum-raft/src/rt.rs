//! openraft's async runtime for Fulcrum: tokio, with randomness that can be
//! seeded and watch channels that wake their receivers in a fixed order.
//!
//! openraft draws its election timeouts and tick phases from
//! `AsyncRuntime::thread_rng`. [`FulcrumRuntime`] is openraft's
//! `TokioRuntime` in every other respect. Inside [`seeded`] (entered by
//! [`crate::Groups::open_group`] when [`crate::GroupsConfig::rng_seed`] is
//! set), every draw comes from a task-local seed, and every task openraft
//! spawns gets its own seed derived from its parent's — so a group's random
//! choices depend only on the seed and on the order of that group's own
//! spawns and draws, which is what a deterministic simulation needs.
//! Outside such a scope (production: no seed) draws are seeded from the OS,
//! as with `TokioRuntime`.
//!
//! The other source of run-to-run variation is tokio's `watch` channel,
//! whose receivers wake in a random order; [`FulcrumWatch`] replaces it
//! (see [`watch`]). Everything else is `TokioRuntime`'s.
//!
//! Seed derivation is openraft-rt's `DeterministicRng` scheme (SplitMix64
//! with two different constants for "child's seed" and "advance the
//! parent's"), which cannot be used directly: it panics when a draw or a
//! spawn happens outside its scope.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::time::Duration;

use openraft::rt::{AsyncRuntime, OptionalSend, Select2, Select3, Select4};
use openraft::TokioRuntime;
use rand_openraft::rngs::SmallRng;
use rand_openraft::SeedableRng;

pub mod watch;

pub use watch::FulcrumWatch;

tokio::task_local! {
    /// The current task's seed, when openraft's randomness is seeded.
    static SEED: Cell<u64>;
}

/// Runs `future` with openraft's randomness seeded by `seed` (tasks it
/// spawns through openraft inherit derived seeds); `None` runs it as is.
pub async fn seeded<F: Future>(seed: Option<u64>, future: F) -> F::Output {
    match seed {
        Some(seed) => SEED.scope(Cell::new(seed), future).await,
        None => future.await,
    }
}

/// SplitMix64's bijective mixer on `seed + gamma`.
pub(crate) fn splitmix64(seed: u64, gamma: u64) -> u64 {
    let z = seed.wrapping_add(gamma);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The current task's seed, advanced for the next use; `None` outside a
/// seeded scope.
fn take_seed() -> Option<u64> {
    SEED.try_with(|cell| {
        let seed = cell.get();
        cell.set(splitmix64(seed, 0x6a09_e667_f3bc_c908));
        seed
    })
    .ok()
}

/// openraft's runtime for Fulcrum's groups: `TokioRuntime` with seedable
/// randomness and [`FulcrumWatch`] (see the module docs).
#[derive(Debug)]
pub struct FulcrumRuntime {
    inner: TokioRuntime,
}

impl AsyncRuntime for FulcrumRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        match take_seed() {
            Some(parent) => {
                let child = splitmix64(parent, 0x9e37_79b9_7f4a_7c15);
                TokioRuntime::spawn(SEED.scope(Cell::new(child), future))
            }
            None => TokioRuntime::spawn(future),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn select2<A, B>(
        a: A,
        b: B,
    ) -> impl Future<Output = Select2<A::Output, B::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
    {
        TokioRuntime::select2(a, b)
    }

    fn select3<A, B, C>(
        a: A,
        b: B,
        c: C,
    ) -> impl Future<Output = Select3<A::Output, B::Output, C::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
    {
        TokioRuntime::select3(a, b, c)
    }

    fn select4<A, B, C, D>(
        a: A,
        b: B,
        c: C,
        d: D,
    ) -> impl Future<Output = Select4<A::Output, B::Output, C::Output, D::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
        D: Future + OptionalSend,
    {
        TokioRuntime::select4(a, b, c, d)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        match take_seed() {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_rng(&mut rand_openraft::rng()),
        }
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = FulcrumWatch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        FulcrumRuntime {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TokioRuntime::spawn_blocking(f)
    }
}

#[cfg(test)]
mod tests {
    use rand_openraft::RngExt;

    use super::*;

    /// What openraft would draw: a few numbers from `thread_rng`, then from
    /// a task spawned through the runtime.
    async fn draws() -> Vec<u64> {
        let mut out: Vec<u64> = (0..3)
            .map(|_| FulcrumRuntime::thread_rng().random_range(0..1_000_000))
            .collect();
        let child = FulcrumRuntime::spawn(async {
            FulcrumRuntime::thread_rng().random_range(0..1_000_000u64)
        });
        out.push(child.await.expect("child task"));
        out
    }

    #[tokio::test]
    async fn a_seed_repeats_openrafts_draws_and_another_seed_changes_them() {
        let a = seeded(Some(7), draws()).await;
        let b = seeded(Some(7), draws()).await;
        let c = seeded(Some(8), draws()).await;
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Successive draws in one task differ (the seed advances).
        assert_ne!(a[0], a[1]);
    }

    #[tokio::test]
    async fn without_a_seed_draws_and_spawns_still_work() {
        // Outside a seeded scope nothing panics; draws come from the OS.
        let d = seeded(None, draws()).await;
        assert_eq!(d.len(), 4);
        assert!(d.iter().all(|&x| x < 1_000_000));
    }
}
