//! A hierarchical timer wheel: the loop's timer queue.
//!
//! # What
//!
//! A [`Wheel`] holds armed timers, each a deadline in [`Tick`]s (1 ms of loop time) and a payload
//! `T`. The loop asks three things of it. How long may I sleep? ([`Wheel::next_expiration`], every
//! turn.) Which timers are due now? ([`Wheel::advance`], every turn.) Forget this timer
//! ([`Wheel::cancel`], more often than either).
//!
//! # Why a wheel
//!
//! Most timers never fire. A `Timeout` around a socket read, a `sleep` that gets killed, a
//! `wait(timeout=...)` that is satisfied: the timer is armed and cancelled again, often within the
//! same millisecond. A binary heap makes that cancel O(log n) (given a position index) or leaves
//! tombstones behind; a wheel makes both insert and cancel O(1) and pays for expiry only when time
//! passes. The layout is Varghese & Lauck's hierarchical wheel ("Hashed and Hierarchical Timing
//! Wheels", 1987) in the shape tokio uses: 6 levels of 64 slots, each slot as wide as the whole
//! level below it.
//!
//! | level | slot width | level span (reach)   |
//! |-------|------------|----------------------|
//! | 0     | 1 ms       | 64 ms                |
//! | 1     | 64 ms      | ~4.1 s               |
//! | 2     | ~4.1 s     | ~4.4 min             |
//! | 3     | ~4.4 min   | ~4.7 h               |
//! | 4     | ~4.7 h     | ~12.4 days           |
//! | 5     | ~12.4 days | ~2.2 years (2^36 ms) |
//!
//! Read a tick as six base-64 digits. A timer sits at the level of the highest digit in which its
//! deadline differs from `elapsed` (`level_for`), in the slot named by that digit of the deadline.
//! So a level-0 slot holds the timers of one exact tick, and a level-n slot those of a 64^n-tick
//! range. When time reaches the start of an upper slot, the slot is *cascaded*: its timers are
//! placed again relative to the new `elapsed`, which puts each on a lower level. A timer moves at
//! most once per level, and each level keeps an `occupied: u64` bitmap, so finding the next slot
//! is one `trailing_zeros`, and jumping a day ahead visits only occupied slots, never idle ticks.
//!
//! # Beyond the top level
//!
//! The top level is a ring: its slots at or behind the current one stand for the next rotation. A
//! deadline more than one rotation (2^36 ticks) ahead is placed as if due at `elapsed + 2^36 - 1`,
//! and placed again each time its slot is cascaded, until the true deadline is within reach. It is
//! never lost and never fires early, at the cost of one move per ~2 years of loop time.
//!
//! # Storage and order
//!
//! Timers live in a slab (a `Vec` plus a free list); slot lists are doubly linked through slab
//! indices, so cancel unlinks in O(1) with no `unsafe`. A [`TimerKey`] carries the slab index and
//! the entry's generation, which is bumped whenever the entry is vacated: the key of a timer that
//! fired or was cancelled is simply not found, even after its index is reused.
//!
//! Every insert takes a sequence number, and the timers due in one [`Wheel::advance`] come out
//! ordered by (deadline, sequence): equal deadlines fire in insertion order, as gevent users
//! expect. Lists append at the tail and cascades keep their order, so a level-0 slot is in
//! sequence order already; the exceptions (two far timers re-placed in different orders, and the
//! pending list below, which mixes deadlines) are sorted as they fire.
//!
//! A timer inserted with a deadline at or before `elapsed` goes to a separate *pending* list and
//! fires at the next `advance`, whatever time that is given.

use std::fmt;
use std::mem;

/// One tick of the wheel: 1 millisecond of loop time. The loop converts seconds to ticks.
pub type Tick = u64;

/// log2 of [`SLOTS`]: each level resolves one base-64 digit of a deadline.
const BITS_PER_LEVEL: u32 = 6;
/// Slots per level, one bit each in [`Level::occupied`].
const SLOTS: usize = 1 << BITS_PER_LEVEL;
/// Levels in the wheel: six levels of 64 slots reach 2^36 ticks, ~2.2 years at 1 ms a tick.
const LEVELS: usize = 6;
/// Ticks in one rotation of the top level: 2^36 (~795 days). Farther deadlines are clamped.
const MAX_SPAN: Tick = 1 << (BITS_PER_LEVEL * LEVELS as u32);
/// The null link of the slab-threaded lists (so at most `u32::MAX - 1` timers).
const NIL: u32 = u32::MAX;

/// Ticks covered by one slot of `level`: 64^level.
#[inline]
const fn slot_width(level: usize) -> Tick {
    1 << (BITS_PER_LEVEL * level as u32)
}

/// Ticks covered by the whole of `level`: 64^(level+1), one slot of the level above.
#[inline]
const fn level_span(level: usize) -> Tick {
    1 << (BITS_PER_LEVEL * (level as u32 + 1))
}

/// The slot of `level` that `tick` falls in: base-64 digit number `level` of `tick`.
#[inline]
fn slot_of(tick: Tick, level: usize) -> usize {
    (tick >> (BITS_PER_LEVEL * level as u32)) as usize & (SLOTS - 1)
}

/// The level for a timer due at `when` while the wheel stands at `elapsed`: the highest base-64
/// digit in which the two differ, capped at the top level (the caller clamps farther deadlines
/// so that the top level's ring can hold them). Equal ticks give level 0.
#[inline]
fn level_for(elapsed: Tick, when: Tick) -> usize {
    match (elapsed ^ when).checked_ilog2() {
        None => 0,
        Some(highest_bit) => ((highest_bit / BITS_PER_LEVEL) as usize).min(LEVELS - 1),
    }
}

/// Handle to an armed timer, returned by [`Wheel::insert`].
///
/// A key stays safe to use after its timer fired or was cancelled and its slab entry was reused:
/// the generation no longer matches, so the wheel answers "not found" (no ABA; the generation is a
/// `u32`, so a false match needs 2^32 reuses of one entry while a stale key is held).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// A doubly linked list of timers, threaded through slab indices.
#[derive(Copy, Clone)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// One level of the wheel: its slot lists and which of them are non-empty.
#[derive(Copy, Clone)]
struct Level {
    /// Bit `s` is set iff `slots[s]` is non-empty.
    occupied: u64,
    slots: [List; SLOTS],
}

/// Which list a timer is linked into.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Place {
    /// Due already (deadline <= `elapsed` at insert); fires at the next advance.
    Pending,
    /// In `levels[level].slots[slot]`.
    Slot(u8, u8),
}

/// An armed timer.
struct Timer<T> {
    deadline: Tick,
    /// Insertion order; breaks ties between equal deadlines.
    seq: u64,
    place: Place,
    prev: u32,
    next: u32,
    value: T,
}

/// A slab entry: a timer, or `None` while free. `generation` changes each time it is vacated.
struct Entry<T> {
    generation: u32,
    timer: Option<Timer<T>>,
}

/// The earliest occupied slot: what [`Wheel::advance`] does next (fire it at level 0, else cascade).
#[derive(Debug)]
struct Expiration {
    level: usize,
    slot: usize,
    /// The first tick the slot covers; for level 0, the deadline of every timer in it.
    start: Tick,
}

/// A hierarchical timer wheel of payloads `T`, with O(1) insert and cancel.
///
/// See the [module documentation](self) for the design. Time only moves forward, through
/// [`advance`](Wheel::advance); the wheel itself never reads a clock.
pub struct Wheel<T> {
    /// The tick the wheel has advanced to. Every timer in a slot is due after it.
    elapsed: Tick,
    levels: Box<[Level; LEVELS]>,
    pending: List,
    /// A lower bound on the deadlines in `pending` (cancels may leave it lower than needed).
    pending_earliest: Tick,
    entries: Vec<Entry<T>>,
    /// Indices of the free entries, reused last-freed first.
    free: Vec<u32>,
    len: usize,
    next_seq: u64,
    /// Reused buffer for ordering the timers of a list as it fires.
    scratch: Vec<u32>,
}

impl<T> Wheel<T> {
    /// Creates an empty wheel with [`elapsed`](Wheel::elapsed) `== 0`.
    pub fn new() -> Self {
        let empty = Level {
            occupied: 0,
            slots: [List::EMPTY; SLOTS],
        };
        Wheel {
            elapsed: 0,
            levels: Box::new([empty; LEVELS]),
            pending: List::EMPTY,
            pending_earliest: Tick::MAX,
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_seq: 0,
            scratch: Vec::new(),
        }
    }

    /// The tick the wheel has advanced to.
    pub fn elapsed(&self) -> Tick {
        self.elapsed
    }

    /// The number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer due at `deadline` and returns its key. O(1).
    ///
    /// A deadline at or before [`elapsed`](Wheel::elapsed) is due at the next
    /// [`advance`](Wheel::advance), whatever `now` it gets. A deadline beyond the top level's
    /// reach (~2.2 years ahead) is clamped into the top level and placed again as time comes
    /// closer: never lost, never fired early.
    ///
    /// # Panics
    ///
    /// If `u32::MAX - 1` timers are already armed.
    pub fn insert(&mut self, deadline: Tick, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = self.free.pop().unwrap_or_else(|| {
            let index = u32::try_from(self.entries.len()).unwrap_or(NIL);
            assert!(
                index != NIL,
                "timer wheel is full: u32::MAX - 1 timers armed"
            );
            self.entries.push(Entry {
                generation: 0,
                timer: None,
            });
            index
        });
        let entry = &mut self.entries[index as usize];
        debug_assert!(entry.timer.is_none(), "free list holds an armed entry");
        entry.timer = Some(Timer {
            deadline,
            seq,
            place: Place::Pending,
            prev: NIL,
            next: NIL,
            value,
        });
        let key = TimerKey {
            index,
            generation: entry.generation,
        };
        self.len += 1;
        if deadline <= self.elapsed {
            self.pending_earliest = self.pending_earliest.min(deadline);
            self.link(Place::Pending, index);
        } else {
            self.place(index);
        }
        key
    }

    /// Disarms the timer of `key` and returns its payload. O(1).
    ///
    /// Returns `None` if the timer already fired or was cancelled (including a stale key whose
    /// slab entry has been reused since).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.timer(key)?;
        self.unlink(key.index);
        Some(self.release(key.index).1)
    }

    /// Whether the timer of `key` is still armed.
    pub fn contains(&self, key: TimerKey) -> bool {
        self.timer(key).is_some()
    }

    /// The deadline of the timer of `key`, if it is still armed.
    pub fn deadline(&self, key: TimerKey) -> Option<Tick> {
        self.timer(key).map(|timer| timer.deadline)
    }

    /// The payload of the timer of `key`, if it is still armed.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.timer(key).map(|timer| &timer.value)
    }

    /// The payload of the timer of `key`, mutably, if it is still armed.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        let timer = entry
            .timer
            .as_mut()
            .filter(|_| entry.generation == key.generation)?;
        Some(&mut timer.value)
    }

    /// The earliest tick at which [`advance`](Wheel::advance) may have something to do, or `None`
    /// if no timer is armed.
    ///
    /// This is the exact earliest deadline when that timer sits in level 0 (the next 64 ms) or is
    /// already past due; otherwise it is the start of the next occupied upper-level slot, where a
    /// cascade happens. It is never later than the true earliest deadline, so a loop may sleep
    /// until it. Cost: a look at each level's bitmap, no scan of timers.
    pub fn next_expiration(&self) -> Option<Tick> {
        if self.pending.head != NIL {
            return Some(self.pending_earliest);
        }
        self.next_slot().map(|expiration| expiration.start)
    }

    /// Moves time to `now` (it stays put if `now < elapsed()`) and appends every timer due by
    /// then to `expired`, ordered by (deadline, insertion order).
    ///
    /// Due means a deadline `<= now`, or any deadline that was already past when it was inserted.
    /// Fired keys become stale. The cost is proportional to the occupied slots crossed and the
    /// timers moved or fired, not to the ticks elapsed.
    pub fn advance(&mut self, now: Tick, expired: &mut Vec<(TimerKey, T)>) {
        // Pending timers are due at or before `elapsed`, so before anything in a slot.
        if self.pending.head != NIL {
            let pending = mem::replace(&mut self.pending, List::EMPTY);
            self.pending_earliest = Tick::MAX;
            self.fire(pending, expired);
        }
        while let Some(expiration) = self.next_slot() {
            if expiration.start > now {
                break;
            }
            debug_assert!(
                expiration.start >= self.elapsed,
                "slot behind the wheel: {expiration:?}"
            );
            self.elapsed = expiration.start;
            // Detach the whole slot before moving its timers: a cascade re-links each timer into
            // another list, which would otherwise rewrite the links we are walking.
            let list = self.take_slot(expiration.level, expiration.slot);
            if expiration.level == 0 {
                self.fire(list, expired);
            } else {
                self.cascade(list);
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// The earliest occupied slot. Every timer of level n lies within the current slot of level
    /// n + 1 and after the current slot of level n, so the lowest non-empty level holds it.
    fn next_slot(&self) -> Option<Expiration> {
        let level = self.levels.iter().position(|level| level.occupied != 0)?;
        let occupied = self.levels[level].occupied;
        let current = slot_of(self.elapsed, level);
        let block_start = self.elapsed & !(level_span(level) - 1);
        // Level 0 may hold the current tick (mid-advance, right after a cascade). An upper level
        // never holds its current slot, except the top level, where it means the next rotation.
        debug_assert!(
            level == 0 || level == LEVELS - 1 || occupied & (1 << current) == 0,
            "level {level} holds its current slot"
        );
        let first = if level == 0 { current } else { current + 1 };
        let ahead = if first < SLOTS {
            occupied & (u64::MAX << first)
        } else {
            0
        };
        let (slot, rotation_start) = if ahead != 0 {
            (ahead.trailing_zeros() as usize, block_start)
        } else {
            debug_assert_eq!(level, LEVELS - 1, "only the top level wraps around");
            (
                occupied.trailing_zeros() as usize,
                block_start.wrapping_add(level_span(level)),
            )
        };
        let start = rotation_start + slot as Tick * slot_width(level);
        Some(Expiration { level, slot, start })
    }

    /// Links timer `index` into the slot its deadline calls for, relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let deadline = self.timer_at(index).deadline;
        debug_assert!(
            deadline >= self.elapsed,
            "placing a timer due before the wheel"
        );
        // At most one top-level rotation ahead, so the ring slot never stands for a later lap.
        let target = deadline.min(self.elapsed.saturating_add(MAX_SPAN - 1));
        let level = level_for(self.elapsed, target);
        let slot = slot_of(target, level);
        self.link(Place::Slot(level as u8, slot as u8), index);
    }

    /// Re-places every timer of a detached upper-level slot; none is due before `elapsed`.
    fn cascade(&mut self, list: List) {
        let mut index = list.head;
        while index != NIL {
            let next = self.timer_at(index).next;
            self.place(index);
            index = next;
        }
    }

    /// Releases every timer of a detached list into `expired`, in (deadline, seq) order.
    fn fire(&mut self, list: List, expired: &mut Vec<(TimerKey, T)>) {
        let order_of = |timer: &Timer<T>| (timer.deadline, timer.seq);
        let (mut index, mut last, mut sorted) = (list.head, (0, 0), true);
        while index != NIL && sorted {
            let timer = self.timer_at(index);
            sorted = index == list.head || last < order_of(timer);
            (index, last) = (timer.next, order_of(timer));
        }
        index = list.head;
        if sorted {
            // The common case (a level-0 slot): release in list order, no buffer.
            while index != NIL {
                let next = self.timer_at(index).next;
                expired.push(self.release(index));
                index = next;
            }
            return;
        }
        let mut order = mem::take(&mut self.scratch);
        while index != NIL {
            order.push(index);
            index = self.timer_at(index).next;
        }
        order.sort_unstable_by_key(|&index| order_of(self.timer_at(index)));
        expired.extend(order.iter().map(|&index| self.release(index)));
        order.clear();
        self.scratch = order;
    }

    fn list_mut(&mut self, place: Place) -> &mut List {
        match place {
            Place::Pending => &mut self.pending,
            Place::Slot(level, slot) => &mut self.levels[level as usize].slots[slot as usize],
        }
    }

    /// Appends timer `index` to the list at `place`.
    fn link(&mut self, place: Place, index: u32) {
        let tail = self.list_mut(place).tail;
        let timer = self.timer_mut(index);
        timer.place = place;
        timer.prev = tail;
        timer.next = NIL;
        if tail == NIL {
            self.list_mut(place).head = index;
        } else {
            self.timer_mut(tail).next = index;
        }
        self.list_mut(place).tail = index;
        if let Place::Slot(level, slot) = place {
            self.levels[level as usize].occupied |= 1 << slot;
        }
    }

    /// Removes timer `index` from whichever list holds it.
    fn unlink(&mut self, index: u32) {
        let timer = self.timer_at(index);
        let (place, prev, next) = (timer.place, timer.prev, timer.next);
        if prev == NIL {
            self.list_mut(place).head = next;
        } else {
            self.timer_mut(prev).next = next;
        }
        if next == NIL {
            self.list_mut(place).tail = prev;
        } else {
            self.timer_mut(next).prev = prev;
        }
        if let Place::Slot(level, slot) = place {
            let level = &mut self.levels[level as usize];
            if level.slots[slot as usize].head == NIL {
                level.occupied &= !(1 << slot);
            }
        }
    }

    /// Detaches a whole non-empty slot list, leaving the slot empty.
    fn take_slot(&mut self, level: usize, slot: usize) -> List {
        let level = &mut self.levels[level];
        debug_assert!(level.occupied & (1 << slot) != 0, "taking an empty slot");
        level.occupied &= !(1 << slot);
        mem::replace(&mut level.slots[slot], List::EMPTY)
    }

    /// Frees the (already unlinked) entry `index`, invalidating its key.
    fn release(&mut self, index: u32) -> (TimerKey, T) {
        let entry = &mut self.entries[index as usize];
        let key = TimerKey {
            index,
            generation: entry.generation,
        };
        let timer = entry.timer.take().expect("released a free entry");
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        (key, timer.value)
    }

    fn timer(&self, key: TimerKey) -> Option<&Timer<T>> {
        let entry = self.entries.get(key.index as usize)?;
        entry
            .timer
            .as_ref()
            .filter(|_| entry.generation == key.generation)
    }

    fn timer_at(&self, index: u32) -> &Timer<T> {
        let timer = self.entries[index as usize].timer.as_ref();
        timer.expect("list links to a free entry")
    }

    fn timer_mut(&mut self, index: u32) -> &mut Timer<T> {
        let timer = self.entries[index as usize].timer.as_mut();
        timer.expect("list links to a free entry")
    }
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("next_expiration", &self.next_expiration())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    const HOUR: Tick = 3_600_000;
    const DAY: Tick = 24 * HOUR;

    impl<T> Wheel<T> {
        /// Walks every list and checks the structure against `len`, the bitmaps and `elapsed`.
        fn assert_invariants(&self) {
            let mut seen = 0;
            let mut walk = |list: List, place: Place| {
                let (mut prev, mut index) = (NIL, list.head);
                while index != NIL {
                    let timer = self.timer_at(index);
                    assert_eq!((timer.place, timer.prev), (place, prev));
                    (prev, index, seen) = (index, timer.next, seen + 1);
                }
                assert_eq!(list.tail, prev);
            };
            walk(self.pending, Place::Pending);
            for (level, lv) in self.levels.iter().enumerate() {
                for (slot, &list) in lv.slots.iter().enumerate() {
                    assert_eq!(
                        lv.occupied & (1 << slot) != 0,
                        list.head != NIL,
                        "bit {level}/{slot}"
                    );
                    walk(list, Place::Slot(level as u8, slot as u8));
                }
            }
            assert_eq!(seen, self.len);
            for entry in &self.entries {
                let Some(timer) = &entry.timer else {
                    continue;
                };
                match timer.place {
                    Place::Pending => assert!(timer.deadline <= self.elapsed),
                    Place::Slot(level, slot) => {
                        let level = level as usize;
                        let span = level_span(level);
                        let mut start =
                            (self.elapsed & !(span - 1)) + slot as Tick * slot_width(level);
                        if start <= self.elapsed {
                            assert_eq!(level, LEVELS - 1, "slot in the past");
                            start += span;
                        }
                        assert!(start <= timer.deadline, "would fire early");
                        if level == 0 {
                            assert_eq!(start, timer.deadline);
                        }
                    }
                }
            }
        }
    }

    fn fire(wheel: &mut Wheel<&'static str>, now: Tick) -> Vec<&'static str> {
        let mut expired = Vec::new();
        wheel.advance(now, &mut expired);
        expired.into_iter().map(|(_, value)| value).collect()
    }

    #[test]
    fn level_for_table() {
        let cases: &[(Tick, Tick, usize)] = &[
            (0, 0, 0),
            (0, 1, 0),
            (0, 63, 0),
            (0, 64, 1),
            (63, 64, 1),
            (64, 127, 0),
            (0, 4095, 1),
            (0, 4096, 2),
            (4095, 4096, 2),
            (5 * 4096 + 7, 5 * 4096 + 70, 1),
            (0, (1 << 24) - 1, 3),
            (0, 1 << 24, 4),
            (0, (1 << 30) - 1, 4),
            (0, 1 << 30, 5),
            (0, MAX_SPAN - 1, 5),
            (0, MAX_SPAN, 5), // beyond the top: capped
            (MAX_SPAN - 1, MAX_SPAN, 5),
            (MAX_SPAN, MAX_SPAN + 1, 0),
            (0, Tick::MAX, 5),
            (Tick::MAX - 1, Tick::MAX, 0),
        ];
        for &(elapsed, when, level) in cases {
            assert_eq!(
                level_for(elapsed, when),
                level,
                "level_for({elapsed}, {when})"
            );
        }
    }

    #[test]
    fn slot_geometry() {
        assert_eq!((slot_width(0), level_span(0)), (1, 64));
        assert_eq!((slot_width(5), level_span(5)), (1 << 30, MAX_SPAN));
        assert_eq!(slot_of(64 * 3 + 5, 0), 5);
        assert_eq!(slot_of(64 * 3 + 5, 1), 3);
    }

    #[test]
    fn insert_cancel_advance() {
        let mut wheel = Wheel::new();
        assert!(wheel.is_empty() && wheel.next_expiration().is_none());
        let a = wheel.insert(10, "a");
        let b = wheel.insert(100, "b");
        let c = wheel.insert(5000, "c");
        assert_eq!((wheel.len(), wheel.next_expiration()), (3, Some(10)));
        assert_eq!((wheel.deadline(b), wheel.get(b)), (Some(100), Some(&"b")));
        *wheel.get_mut(c).unwrap() = "C";
        assert_eq!(wheel.cancel(a), Some("a"));
        assert_eq!(wheel.cancel(a), None);
        assert_eq!(wheel.next_expiration(), Some(64)); // b's level-1 slot starts at 64
        assert_eq!(fire(&mut wheel, 99), Vec::<&str>::new());
        assert_eq!(wheel.next_expiration(), Some(100)); // cascaded into level 0: exact
        assert_eq!(fire(&mut wheel, 100), ["b"]);
        assert!(!wheel.contains(b) && wheel.contains(c));
        assert_eq!(fire(&mut wheel, 4999), Vec::<&str>::new());
        assert_eq!(fire(&mut wheel, 5000), ["C"]);
        assert_eq!(
            (wheel.elapsed(), wheel.len(), wheel.next_expiration()),
            (5000, 0, None)
        );
        assert_eq!(fire(&mut wheel, 10), Vec::<&str>::new());
        assert_eq!(wheel.elapsed(), 5000, "time never goes back");
        wheel.assert_invariants();
    }

    #[test]
    fn zero_and_past_deadlines() {
        let mut wheel = Wheel::new();
        wheel.insert(0, "zero");
        assert_eq!(wheel.next_expiration(), Some(0));
        assert_eq!(fire(&mut wheel, 0), ["zero"]);
        fire(&mut wheel, 1000);
        wheel.insert(1000, "now");
        wheel.insert(50, "50");
        wheel.insert(10, "10");
        wheel.insert(1001, "next");
        let cancelled = wheel.insert(5, "5");
        wheel.cancel(cancelled);
        assert_eq!(wheel.next_expiration(), Some(5)); // a lower bound is fine
        wheel.assert_invariants();
        // Past deadlines fire whatever `now` is given, ordered by deadline.
        assert_eq!(fire(&mut wheel, 3), ["10", "50", "now"]);
        assert_eq!(wheel.next_expiration(), Some(1001));
        assert_eq!(fire(&mut wheel, 1001), ["next"]);
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order_across_cascades() {
        let mut wheel = Wheel::new();
        wheel.insert(5000, "a"); // level 2
        wheel.insert(130, "x"); // level 1
        fire(&mut wheel, 127);
        wheel.insert(130, "y"); // still level 1, same slot
        wheel.insert(5000, "b"); // level 2, same slot as a
        fire(&mut wheel, 128); // x, y cascade to level 0
        wheel.insert(130, "z"); // level 0 directly
        assert_eq!(fire(&mut wheel, 130), ["x", "y", "z"]);
        fire(&mut wheel, 4100); // a, b cascade to level 1
        wheel.insert(5000, "c");
        fire(&mut wheel, 4990); // to level 0
        wheel.insert(5000, "d");
        wheel.insert(4999, "early");
        wheel.assert_invariants();
        assert_eq!(fire(&mut wheel, 6000), ["early", "a", "b", "c", "d"]);
    }

    #[test]
    fn stale_keys_are_not_found_after_reuse() {
        let mut wheel = Wheel::new();
        let old = wheel.insert(10, "old");
        assert_eq!(wheel.cancel(old), Some("old"));
        let new = wheel.insert(10, "new"); // reuses the slab entry
        assert_eq!(new.index, old.index);
        assert_ne!(new, old);
        assert!(!wheel.contains(old));
        assert_eq!((wheel.get(old), wheel.deadline(old)), (None, None));
        assert_eq!(wheel.get_mut(old), None);
        assert_eq!(wheel.cancel(old), None);
        assert_eq!(wheel.get(new), Some(&"new"));
        let mut expired = Vec::new();
        wheel.advance(10, &mut expired);
        assert_eq!(expired, [(new, "new")]);
        let reused = wheel.insert(20, "reused");
        assert_eq!(reused.index, new.index);
        assert_eq!(wheel.cancel(new), None, "a fired key is stale");
        assert_eq!(wheel.len(), 1);
        assert!(wheel.contains(reused));
    }

    #[test]
    fn deadlines_of_days() {
        let mut wheel = Wheel::new();
        wheel.insert(3 * DAY + 17, "3 days");
        wheel.insert(DAY, "1 day");
        wheel.insert(20 * DAY, "20 days"); // level 5
        let mut fired = Vec::new();
        let mut now = 0;
        while now < 21 * DAY {
            now += HOUR / 3;
            let next = wheel.next_expiration();
            for value in fire(&mut wheel, now) {
                fired.push((value, now));
            }
            assert!(next.is_some() || wheel.is_empty());
            wheel.assert_invariants();
        }
        let at = |deadline: Tick| deadline.div_ceil(HOUR / 3) * (HOUR / 3);
        assert_eq!(
            fired,
            [
                ("1 day", at(DAY)),
                ("3 days", at(3 * DAY + 17)),
                ("20 days", at(20 * DAY))
            ]
        );
        // One jump over a day of timers is one pass.
        for i in 0..1000 {
            wheel.insert(now + i * 86_400, "t");
        }
        assert_eq!(fire(&mut wheel, now + DAY).len(), 1000);
    }

    #[test]
    fn deadlines_beyond_the_top_level() {
        let year = 365 * DAY;
        let far = 3 * MAX_SPAN + 12_345; // ~6.5 years
        let mut wheel = Wheel::new();
        let max = wheel.insert(Tick::MAX, "never");
        wheel.insert(far, "a");
        wheel.insert(far - 1, "before");
        fire(&mut wheel, 1 << 31);
        wheel.insert(far, "b"); // clamped into a different top-level slot than a
        wheel.insert(far + 1, "after");
        let mut cascades = 0;
        while wheel.elapsed() < far - 2 {
            let next = wheel.next_expiration().unwrap();
            assert!(next > wheel.elapsed() && next < far, "next {next}");
            let step = next.min(wheel.elapsed() + year).min(far - 2);
            assert_eq!(fire(&mut wheel, step - 1), Vec::<&str>::new());
            assert_eq!(
                fire(&mut wheel, step),
                Vec::<&str>::new(),
                "fired early at {step}"
            );
            wheel.assert_invariants();
            cascades += 1;
        }
        assert!(cascades < 100, "{cascades} steps");
        assert_eq!(fire(&mut wheel, far - 1), ["before"]);
        assert_eq!(fire(&mut wheel, far), ["a", "b"]);
        assert_eq!(fire(&mut wheel, far + 1), ["after"]);
        assert_eq!(fire(&mut wheel, 100 * year), Vec::<&str>::new());
        assert_eq!(wheel.cancel(max), Some("never"));
        assert!(wheel.is_empty());
    }

    /// Far timers with equal deadlines, armed at random times, are clamped into different top
    /// slots and can reach level 0 out of order; they must still fire in insertion order.
    #[test]
    fn equal_far_deadlines_fire_in_insertion_order() {
        for seed in 1..=300u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut wheel = Wheel::new();
            let far = MAX_SPAN * (1 + rng.below(3)) + rng.below(MAX_SPAN);
            let scale = [1 << 30, 1 << 33, 1 << 35][rng.below(3) as usize];
            let (mut expired, mut inserted) = (Vec::new(), Vec::new());
            while wheel.elapsed() < far {
                if rng.below(2) == 0 {
                    let deadline = far - rng.below(3);
                    inserted.push((deadline, inserted.len()));
                    wheel.insert(deadline, inserted.len() - 1);
                }
                wheel.advance(wheel.elapsed() + rng.below(scale), &mut expired);
            }
            inserted.sort();
            let fired: Vec<usize> = expired.iter().map(|&(_, n)| n).collect();
            let expected: Vec<usize> = inserted.iter().map(|&(_, n)| n).collect();
            assert_eq!(fired, expected, "seed {seed}");
        }
    }

    /// A tiny xorshift64* generator, so the test needs no `rand`.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// Thousands of random inserts, cancels and advances, checked against a sorted map.
    #[test]
    fn matches_a_sorted_reference() {
        for seed in 1..=8u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut wheel = Wheel::new();
            let mut reference: BTreeMap<(Tick, u64), (TimerKey, u64)> = BTreeMap::new();
            let mut armed: HashMap<TimerKey, (Tick, u64)> = HashMap::new();
            let mut keys = Vec::new();
            let mut expired = Vec::new();
            for step in 0..6000u64 {
                match rng.below(10) {
                    0..=4 => {
                        let elapsed = wheel.elapsed();
                        let deadline = match rng.below(20) {
                            0..=5 => elapsed + rng.below(64),
                            6..=10 => elapsed + rng.below(5000),
                            11..=14 => elapsed + rng.below(1 << 26),
                            15..=16 => elapsed.saturating_sub(rng.below(100)),
                            17 => elapsed + rng.below(4), // crowd a few ticks: FIFO ties
                            18 => elapsed + rng.below(1 << 33),
                            _ => elapsed + MAX_SPAN / 2 + rng.below(2 * MAX_SPAN),
                        };
                        let key = wheel.insert(deadline, step);
                        assert_eq!(wheel.deadline(key), Some(deadline));
                        reference.insert((deadline, step), (key, step));
                        armed.insert(key, (deadline, step));
                        keys.push(key);
                    }
                    5..=6 if !keys.is_empty() => {
                        let key = keys.swap_remove(rng.below(keys.len() as u64) as usize);
                        let expected = armed
                            .remove(&key)
                            .map(|order| reference.remove(&order).unwrap().1);
                        assert_eq!(wheel.cancel(key), expected);
                        if expected.is_some() && rng.below(2) == 0 {
                            keys.push(key); // keep some stale keys around
                        }
                    }
                    _ => {
                        let elapsed = wheel.elapsed();
                        let now = match rng.below(20) {
                            0 => elapsed.saturating_sub(rng.below(10)),
                            1..=8 => elapsed + rng.below(4),
                            9..=15 => elapsed + rng.below(200),
                            16..=18 => elapsed + rng.below(20_000),
                            _ => elapsed + rng.below(1 << 34),
                        };
                        let limit = now.max(elapsed);
                        let later = reference.split_off(&(limit + 1, 0));
                        let due: Vec<_> =
                            mem::replace(&mut reference, later).into_values().collect();
                        expired.clear();
                        wheel.advance(now, &mut expired);
                        assert_eq!(
                            expired, due,
                            "seed {seed} step {step}: advance({now}) from {elapsed}"
                        );
                        for (key, _) in &due {
                            armed.remove(key);
                        }
                        assert_eq!(wheel.elapsed(), limit);
                    }
                }
                assert_eq!(wheel.len(), reference.len());
                let earliest = reference.keys().next().map(|&(deadline, _)| deadline);
                match (wheel.next_expiration(), earliest) {
                    (None, None) => {}
                    (Some(next), Some(earliest)) => {
                        assert!(next <= earliest, "next {next} > {earliest}")
                    }
                    other => {
                        panic!("seed {seed} step {step}: next_expiration vs reference: {other:?}")
                    }
                }
                if step % 97 == 0 {
                    wheel.assert_invariants();
                }
            }
            wheel.assert_invariants();
        }
    }
}
