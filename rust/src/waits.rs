//! Fused waits: a greenlet parked in the loop without any Python-level watcher object.
//!
//! `sleep()`, and a cooperative socket waiting for readiness, are the most frequent ways a
//! greenlet blocks. Instead of building a watcher, a bound `switch` method and a `Waiter` for
//! each of them (what gevent does), the loop records the parked greenlet here, in a slab of
//! [`Wait`]s, and the ready queue, the timer wheel and the fd table refer to it by [`WaitKey`].
//!
//! A wait has one owner: the greenlet that parked. It alone removes the slot, after it resumes,
//! whatever resumed it (its own wake-up, an exception thrown into it, a stray switch). Every
//! other reference (a queued wake-up, a timer, an fd table entry) may therefore go stale, and is
//! recognised as such by the slot's generation, or by `fired` being set already: a wait is
//! resumed by the loop at most once.

use std::os::unix::io::RawFd;

use pyo3::prelude::*;

use crate::wheel::TimerKey;

/// Why the loop resumed a parked greenlet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sleep elapsed, or the fd became ready.
    Ready,
    /// The wait's timeout elapsed first.
    TimedOut,
    /// The fd was closed (by `Loop.close_fd`) while the greenlet waited on it.
    Closed,
}

/// One parked greenlet.
pub struct Wait {
    /// The greenlet to switch back into.
    pub glet: Py<PyAny>,
    /// The timer that ends the wait, while armed.
    pub timer: Option<TimerKey>,
    /// The fd and interest waited for, for I/O waits.
    pub fd: Option<(RawFd, u8)>,
    /// Whether this wait keeps the loop alive.
    pub counts_ref: bool,
    /// Whether this wait registered its fd with the poller for itself (a `keep=False` wait):
    /// then, and only then, removing the wait gives that registration back.
    pub owns_registration: bool,
    /// A wake-up for it sits in the ready queue.
    pub queued: bool,
    /// Set by the loop just before switching back into `glet`.
    pub fired: Option<Outcome>,
    /// For an armed timeout (not a parked greenlet): the exception (instance or class) to throw
    /// into `glet` when the timer fires. Such a wait is owned by the Python `Timeout`, which
    /// disarms it, or by the loop, which removes it when it fires.
    pub throw: Option<Py<PyAny>>,
}

impl Wait {
    /// A wait for `glet` with nothing armed yet.
    pub fn new(glet: Py<PyAny>) -> Wait {
        Wait { glet, timer: None, fd: None, counts_ref: false, owns_registration: false, queued: false, fired: None, throw: None }
    }
}

/// Handle to a [`Wait`]; stale handles (slot freed, maybe reused) find nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WaitKey {
    index: u32,
    generation: u32,
}

impl WaitKey {
    /// The key as one integer, for Python.
    pub fn to_token(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    /// The key back from [`WaitKey::to_token`].
    pub fn from_token(token: u64) -> WaitKey {
        WaitKey { index: (token >> 32) as u32, generation: token as u32 }
    }
}

struct Slot {
    generation: u32,
    wait: Option<Wait>,
}

/// A slab of waits with generation-checked keys.
#[derive(Default)]
pub struct Waits {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Waits {
    /// Stores `wait` and returns its key. O(1).
    pub fn insert(&mut self, wait: Wait) -> WaitKey {
        self.live += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.wait.is_none());
            slot.wait = Some(wait);
            WaitKey { index, generation: slot.generation }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 parked greenlets");
            self.slots.push(Slot { generation: 0, wait: Some(wait) });
            WaitKey { index, generation: 0 }
        }
    }

    /// The wait, if `key` is still live.
    pub fn get_mut(&mut self, key: WaitKey) -> Option<&mut Wait> {
        match self.slots.get_mut(key.index as usize) {
            Some(slot) if slot.generation == key.generation => slot.wait.as_mut(),
            _ => None,
        }
    }

    /// Frees the slot and returns its wait; stale keys give None. O(1).
    pub fn remove(&mut self, key: WaitKey) -> Option<Wait> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let wait = slot.wait.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.live -= 1;
        Some(wait)
    }

    /// Number of parked greenlets.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no greenlet is parked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every parked greenlet's wait (for `reinit` after fork and for debugging).
    pub fn iter(&self) -> impl Iterator<Item = (WaitKey, &Wait)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.wait.as_ref().map(|w| (WaitKey { index: i as u32, generation: s.generation }, w))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait() -> Wait {
        pyo3::Python::initialize();
        pyo3::Python::attach(|py| Wait::new(py.None()))
    }

    #[test]
    fn stale_keys_find_nothing_after_reuse() {
        let mut waits = Waits::default();
        let a = waits.insert(wait());
        assert!(waits.remove(a).is_some());
        let b = waits.insert(wait());
        assert_ne!(a, b, "reused slot must get a new generation");
        assert!(waits.get_mut(a).is_none());
        assert!(waits.remove(a).is_none());
        assert!(waits.get_mut(b).is_some());
        assert_eq!(waits.len(), 1);
        assert!(waits.remove(b).is_some());
        assert!(waits.is_empty());
    }
}
