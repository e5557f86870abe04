//! A watch channel whose receivers wake in a repeatable order, for
//! openraft's `AsyncRuntime::Watch`.
//!
//! tokio's `watch` spreads its waiters over eight `Notify`s picked by
//! tokio's per-runtime random generator, so receivers woken by one `send`
//! run in a random order — different on every run, even in a simulation
//! with a fixed seed (tokio seeds that generator only under
//! `--cfg tokio_unstable`). openraft has several tasks wait on one channel
//! (the replication streams of a leader on its log progress), so that
//! order decides which follower is sent an entry first. This channel keeps
//! one `Notify`, whose waiters wake in the order they started waiting.
//!
//! Semantics follow `tokio::sync::watch`: a receiver remembers the version
//! it saw; `changed` returns once a newer version exists (even after the
//! senders are gone), and fails once every sender is gone and nothing is
//! unseen; `send` fails (and stores nothing) when every receiver is gone;
//! `send_if_modified` stores even then. As with tokio's, do not hold a
//! borrowed value across an `.await`: it holds a read lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
use openraft::rt::{OptionalSend, OptionalSync};
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use tokio::sync::Notify;

/// openraft's `Watch` for [`super::FulcrumRuntime`].
pub struct FulcrumWatch;

struct Shared<T> {
    /// The value and its version (bumped by every stored send).
    state: RwLock<(T, u64)>,
    /// One queue of waiters: woken in the order they registered.
    notify: Notify,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

impl<T> Shared<T> {
    fn version(&self) -> u64 {
        self.state.read().1
    }

    fn closed(&self) -> bool {
        self.senders.load(Ordering::Acquire) == 0
    }
}

/// The sending half.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half: remembers the version it saw last.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: waiting receivers learn the channel closed.
            self.shared.notify.notify_waiters();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receivers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A borrowed value (a read lock on the channel).
pub type Ref<'a, T> = MappedRwLockReadGuard<'a, T>;

fn borrow<T>(shared: &Shared<T>) -> Ref<'_, T> {
    RwLockReadGuard::map(shared.state.read(), |(value, _)| value)
}

impl Watch for FulcrumWatch {
    type Sender<T: OptionalSend + OptionalSync> = Sender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = Receiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Sender<T>, Receiver<T>) {
        let shared = Arc::new(Shared {
            state: RwLock::new((init, 0)),
            notify: Notify::new(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        });
        (
            Sender {
                shared: shared.clone(),
            },
            Receiver { shared, seen: 0 },
        )
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<FulcrumWatch, T> for Sender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Ordering::Acquire) == 0 {
            return Err(SendError(value));
        }
        {
            let mut state = self.shared.state.write();
            state.0 = value;
            state.1 += 1;
        }
        self.shared.notify.notify_waiters();
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let modified = {
            let mut state = self.shared.state.write();
            let modified = modify(&mut state.0);
            if modified {
                state.1 += 1;
            }
            modified
        };
        if modified {
            self.shared.notify.notify_waiters();
        }
        modified
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        borrow(&self.shared)
    }

    fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.shared.version(),
        }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<FulcrumWatch, T> for Receiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            // Register before looking, so a send in between still wakes us.
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let version = self.shared.version();
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed() {
                return Err(RecvError(()));
            }
            notified.await;
        }
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        borrow(&self.shared)
    }

    fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let state = self.shared.state.read();
        self.seen = state.1;
        RwLockReadGuard::map(state, |(value, _)| value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_receiver_sees_each_change_once_and_the_latest_value() {
        let (tx, mut rx) = FulcrumWatch::channel(0u32);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_watched(), 2);
        // Nothing new: changed() waits until the next send.
        let waiter = tokio::spawn(async move {
            rx.changed().await.unwrap();
            rx
        });
        tokio::task::yield_now().await;
        assert!(tx.send_if_modified(|v| {
            *v = 3;
            true
        }));
        assert!(!tx.send_if_modified(|_| false));
        let mut rx = waiter.await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 3);
    }

    #[tokio::test]
    async fn subscribers_start_from_the_current_version_and_clones_keep_theirs() {
        let (tx, rx) = FulcrumWatch::channel("a");
        tx.send("b").unwrap();
        let mut fresh = tx.subscribe();
        let mut old = rx.clone();
        old.changed().await.unwrap();
        assert_eq!(*old.borrow_watched(), "b");
        drop(tx);
        // The subscriber saw "b" already; with the sender gone it fails.
        assert!(fresh.changed().await.is_err());
        drop(rx);
    }

    #[tokio::test]
    async fn closing_wakes_waiters_but_an_unseen_change_is_still_delivered() {
        let (tx, mut rx) = FulcrumWatch::channel(0u8);
        let mut waiting = rx.clone();
        let waiter = tokio::spawn(async move { waiting.changed().await });
        tokio::task::yield_now().await;
        tx.send(1).unwrap();
        let tx2 = tx.clone();
        drop(tx);
        tx2.send(2).unwrap();
        drop(tx2);
        assert!(waiter.await.unwrap().is_ok());
        // rx never looked: the change before closing is delivered, then Err.
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 2);
        assert!(rx.changed().await.is_err());
    }

    #[tokio::test]
    async fn send_without_receivers_fails_and_stores_nothing() {
        let (tx, rx) = FulcrumWatch::channel(5i32);
        drop(rx);
        assert_eq!(tx.send(6), Err(SendError(6)));
        assert_eq!(*tx.borrow_watched(), 5);
        assert!(tx.send_if_modified(|v| {
            *v = 7;
            true
        }));
        assert_eq!(*tx.borrow_watched(), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_wake_in_the_order_they_started_waiting() {
        let (tx, rx) = FulcrumWatch::channel(0u8);
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let mut rx = rx.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                rx.changed().await.unwrap();
                order.lock().push(i);
            }));
            // Let task i register before task i + 1.
            tokio::task::yield_now().await;
        }
        tx.send(1).unwrap();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("every waiter wakes")
                .unwrap();
        }
        assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
    }
}
