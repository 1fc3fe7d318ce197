//! The poller under the event loop: readiness of file descriptors, and the two ways to interrupt
//! a blocked wait (another thread, a signal).
//!
//! # Why edge-triggered, with a cache
//!
//! gevent's I/O pattern is "try the system call; on `EAGAIN`, wait until the fd is ready; try
//! again". A level-triggered poller that follows the waiters pays two `epoll_ctl` calls per wait,
//! one to add (or modify) interest when a greenlet starts waiting and one when it stops, on top of
//! the `epoll_wait` itself. A busy server pays that for nearly every `recv`.
//!
//! Here each fd is registered once, for `READ | WRITE`, edge-triggered, by its first user, and its
//! interest is never changed by `epoll_ctl` after that. The kernel then reports each *edge* (data
//! arrived, buffer space freed, peer hung up) exactly once, and this module remembers it in a
//! per-fd cache of "possibly ready" bits. A wait on an fd whose bit is set is answered from memory,
//! with no system call at all. The price is that the kernel also reports edges nobody is waiting
//! for (a socket that is only read from still gets `WRITE` edges). Those cost a slot in the
//! events buffer and a bit set, not a system call, and with edge triggering they come once per
//! edge, not once per wait.
//!
//! # How the bits move
//!
//! * **Set** by [`Poller::poll`], from each epoll event: readable or read-closed sets [`READ`],
//!   writable or write-closed sets [`WRITE`], an error or hang-up sets both.
//! * **Cleared** only by the caller: by [`Poller::clear_readiness`] right after a system call on
//!   the fd returned `EAGAIN`, or by [`Poller::check_now`], which asks the kernel and stores its answer.
//!   `poll` never clears a bit.
//! * **Zero at registration.** The `EPOLL_CTL_ADD` itself queues an event if the fd is already
//!   ready, so the next `poll` reports a socket that was readable before it was registered.
//!
//! A set bit means "possibly ready", not "ready": someone else may have drained the socket since.
//! A stale bit costs the caller one system call that returns `EAGAIN`, after which it clears the bit
//! and waits. A clear bit is the stronger promise: once the caller has seen `EAGAIN`, any later
//! readiness is a new edge, which the kernel queues until the next `poll` harvests it. That holds as
//! long as the caller clears the bit *before* its next `poll`, which a single-threaded loop does
//! naturally. The invariant "a bit is 0 only if the kernel will report the fd's next readiness as
//! an edge" is what lets a loop sleep without losing wake-ups.
//!
//! # Tokens
//!
//! An fd's mio [`Token`] is the fd itself, and per-fd state lives in a `Vec` indexed by fd. The
//! hot path is a readiness lookup by fd, which is then one bounds check and one load, and fds are
//! small dense integers, so the `Vec` stays short. The waker and the signal pipe use two tokens
//! just below `usize::MAX`, far above any fd.
//!
//! # Wake-ups
//!
//! Another thread wakes a blocked [`Poller::poll`] through [`Poller::waker`], a shared
//! [`mio::Waker`] (an eventfd on Linux). Signals get their own pipe rather than the waker: Python's
//! C-level signal handler writes one byte to the fd given to `signal.set_wakeup_fd`, and an eventfd
//! only accepts 8-byte writes. `poll` drains the pipe completely and reports `signalled`; an
//! `epoll_wait` cut short by a signal (`EINTR`) is reported as `interrupted`, not as an error. Either
//! way the caller runs Python's signal handlers.
//!
//! # Caveat: an fd closed behind our back
//!
//! epoll tracks a registration by the pair (open file, fd number). This module tracks users by fd
//! number only. Callers must therefore [`Poller::deregister`] before they close an fd. If an fd is
//! closed while it has users:
//!
//! * if that was the last reference to the open file, the kernel drops the epoll registration
//!   silently; should the number be reused by a new file, a later [`Poller::register`] of that
//!   number only bumps the count, so the new file is never watched and its waiters sleep forever;
//! * if the file lives on elsewhere (a `dup`, a child process), its registration stays in the epoll
//!   set and cannot be removed any more (`EPOLL_CTL_DEL` on a closed number fails with `EBADF`,
//!   which [`Poller::deregister`] ignores). Its events are ignored while the number has no users,
//!   and are harmless spurious "possibly ready" bits if the number is registered again.
//!   If that same file comes back under the same number, `EPOLL_CTL_ADD` fails with `EEXIST`, and
//!   [`Poller::register`] re-arms it with `EPOLL_CTL_MOD` instead.
//!
//! # fork
//!
//! A child process shares its parent's epoll instance (the interest list lives in the kernel, not
//! in the fd), its eventfd and its signal pipe. A child that kept polling would steal the parent's
//! events, and an `EPOLL_CTL_DEL` in the child would remove the parent's registrations.
//! [`Poller::reinit`] therefore builds a fresh epoll instance, waker and signal pipe, and only
//! *closes* the old epoll fd (no `epoll_ctl` on it). The signal pipe's write end keeps its fd
//! number, so a `signal.set_wakeup_fd` made before the fork still points at this poller. An fd
//! that cannot be registered again is marked ready, so its waiters find out from their own
//! system call instead of sleeping forever.
//!
//! # Errors
//!
//! Errors created here name the operation and the fd ("registering fd 7 with epoll: ..."). The
//! wrapped error keeps the `io::ErrorKind`, and the original error, with its errno, is its
//! [`std::error::Error::source`], so `OSError.errno` can still be filled in.

use std::error::Error as StdError;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

/// Readiness and interest bit: the fd is (possibly) readable. gevent/libev numbering.
pub const READ: u8 = 1;
/// Readiness and interest bit: the fd is (possibly) writable. gevent/libev numbering.
pub const WRITE: u8 = 2;

/// Both readiness bits.
const BOTH: u8 = READ | WRITE;

/// Token of the cross-thread [`Waker`]. fd tokens are at most `i32::MAX`, far below.
const WAKER_TOKEN: Token = Token(usize::MAX - 1);
/// Token of the read end of the signal wake-up pipe.
const SIGNAL_TOKEN: Token = Token(usize::MAX - 2);
/// How many events one `epoll_wait` can return; more wait for the next call.
const EVENTS_CAPACITY: usize = 1024;

// The reserved tokens must never collide with an fd's token.
const _: () = assert!(SIGNAL_TOKEN.0 > i32::MAX as usize);

/// What one [`Poller::poll`] call saw besides fd readiness.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    /// The [`Waker`] was triggered: another thread scheduled work.
    pub woken: bool,
    /// Bytes arrived on the signal wake-up pipe; they have been drained already.
    pub signalled: bool,
    /// `epoll_wait` returned `EINTR` because a signal arrived: the caller runs signal handlers.
    pub interrupted: bool,
}

/// Per-fd state, indexed by fd.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// How many users registered the fd; 0 means it is not registered with epoll.
    users: u32,
    /// "Possibly ready" bits ([`READ`] | [`WRITE`]); always 0 while `users == 0`.
    readiness: u8,
}

/// The poller: an epoll instance with fds registered once, edge-triggered, their readiness cached
/// per fd, plus the cross-thread waker and the signal wake-up pipe.
///
/// See the [module documentation](self) for the design.
pub struct Poller {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    signal: SignalPipe,
    /// Indexed by fd; grown on demand, never shrunk.
    slots: Vec<Slot>,
    /// Number of slots with `users > 0`.
    registered: usize,
}

impl Poller {
    /// Creates a poller: a new epoll instance, its waker and its signal wake-up pipe.
    ///
    /// # Errors
    ///
    /// Running out of fds or memory (`EMFILE`, `ENFILE`, `ENOMEM`), with context.
    pub fn new() -> io::Result<Poller> {
        let (poll, waker, signal) = fresh_instance()?;
        Ok(Poller {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            waker,
            signal,
            slots: Vec::new(),
            registered: 0,
        })
    }

    /// A handle other threads use to wake a blocked [`poll`](Self::poll), which then reports
    /// `woken`. Waking is cheap and may be done any number of times; wake-ups coalesce.
    ///
    /// After [`reinit`](Self::reinit), handles taken earlier are inert: they no longer wake this
    /// poller (see there).
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Write end of the signal wake-up pipe, non-blocking and close-on-exec, to hand to Python's
    /// `signal.set_wakeup_fd`. Bytes written to it wake [`poll`](Self::poll), which drains them
    /// and reports `signalled`.
    ///
    /// The Poller owns this fd and closes it on drop, so the caller must undo
    /// `set_wakeup_fd` (set it to -1) before dropping the Poller; otherwise a signal could write a
    /// byte into whatever file reuses the number. The number survives [`reinit`](Self::reinit).
    pub fn signal_wakeup_fd(&self) -> RawFd {
        self.signal.write.as_raw_fd()
    }

    /// Adds one user of `fd`.
    ///
    /// The first user registers the fd with epoll for `READ | WRITE`, edge-triggered; a registration
    /// that already exists (`EEXIST`, see the module's caveat) is re-armed with `EPOLL_CTL_MOD`
    /// and is not an error. Later users only bump a count, with no system call. Cached readiness
    /// starts at 0; an fd that is already ready is reported by the next [`poll`](Self::poll).
    ///
    /// # Errors
    ///
    /// Whatever epoll refuses, with the count unchanged: `EBADF` for a closed or negative fd,
    /// `EPERM` for a regular file or directory, `ENOSPC` past `max_user_watches`.
    pub fn register(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(index) = index_of(fd) else {
            return Err(context(
                io::Error::from_raw_os_error(libc::EBADF),
                format!("registering fd {fd} with epoll"),
            ));
        };
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.users > 0 {
                slot.users += 1;
                return Ok(());
            }
        }
        arm(self.poll.registry(), fd)
            .map_err(|e| context(e, format!("registering fd {fd} with epoll")))?;
        // Grow only after epoll accepted the fd, so a bogus large fd does not allocate.
        if index >= self.slots.len() {
            self.slots.resize(index + 1, Slot::default());
        }
        self.slots[index] = Slot {
            users: 1,
            readiness: 0,
        };
        self.registered += 1;
        Ok(())
    }

    /// Drops one user of `fd`. The last one deregisters it from epoll and forgets its cached
    /// readiness. An fd with no users is a no-op.
    ///
    /// Errors from epoll are ignored: they come from an fd the caller already closed (`EBADF`), or
    /// whose number now belongs to a file we never registered (`ENOENT`), and in both cases there
    /// is nothing we could still remove.
    pub fn deregister(&mut self, fd: RawFd) {
        let Some(slot) = index_of(fd).and_then(|index| self.slots.get_mut(index)) else {
            return;
        };
        if slot.users == 0 {
            return;
        }
        slot.users -= 1;
        if slot.users == 0 {
            slot.readiness = 0;
            debug_assert!(self.registered > 0);
            self.registered -= 1;
            // Ignored on purpose; see the doc comment.
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    /// Whether `fd` has at least one user.
    pub fn is_registered(&self, fd: RawFd) -> bool {
        self.slot(fd).is_some_and(|slot| slot.users > 0)
    }

    /// Cached readiness bits ([`READ`] | [`WRITE`]) of `fd`: "possibly ready" as last seen by epoll
    /// or [`check_now`](Self::check_now). 0 for an fd that is not registered. No system call.
    #[inline]
    pub fn readiness(&self, fd: RawFd) -> u8 {
        self.slot(fd).map_or(0, |slot| {
            debug_assert!(
                slot.users > 0 || slot.readiness == 0,
                "fd {fd}: bits without users"
            );
            slot.readiness
        })
    }

    /// Forgets the readiness `bits` of `fd`, typically right after a system call on it returned
    /// `EAGAIN`. Must happen before the next [`poll`](Self::poll), so that the edge that ends the
    /// wait is not lost. No system call. Unknown fd: no-op.
    #[inline]
    pub fn clear_readiness(&mut self, fd: RawFd, bits: u8) {
        if let Some(slot) = index_of(fd).and_then(|index| self.slots.get_mut(index)) {
            slot.readiness &= !bits;
        }
    }

    /// Asks the kernel now (one `poll(2)` with a zero timeout) whether `fd` is ready for
    /// `interest`, stores the answer in the cache if the fd is registered (setting and clearing
    /// the bits of `interest`, leaving the others alone), and returns the ready bits among
    /// `interest`.
    ///
    /// `POLLERR`, `POLLHUP` and `POLLNVAL` count as ready for both directions: the caller's next
    /// system call then reports the error. For the same reason, a `poll(2)` that itself fails
    /// reports every bit of `interest` as ready.
    pub fn check_now(&mut self, fd: RawFd, interest: u8) -> u8 {
        let interest = interest & BOTH;
        if interest == 0 {
            return 0;
        }
        let mut events: libc::c_short = 0;
        if interest & READ != 0 {
            events |= libc::POLLIN;
        }
        if interest & WRITE != 0 {
            events |= libc::POLLOUT;
        }
        let mut pollfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // A zero-timeout poll is practically never interrupted; retry a few times if it is.
        let mut ready = interest;
        for _ in 0..4 {
            // SAFETY: `pollfd` is a valid, exclusively borrowed pollfd for the duration of the
            // call, and the count (1) matches; poll(2) only writes `revents`.
            let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
            if n >= 0 {
                ready = revents_bits(pollfd.revents) & interest;
                break;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        if let Some(slot) = index_of(fd).and_then(|index| self.slots.get_mut(index)) {
            if slot.users > 0 {
                slot.readiness = (slot.readiness & !interest) | ready;
            }
        }
        ready
    }

    /// Waits for events: `None` waits forever, and a timeout is rounded *up* to the next
    /// millisecond, so that 0.5 ms never becomes a busy zero (an exact zero stays zero).
    ///
    /// Clears `ready`, then for every registered fd that got an event sets its cached readiness
    /// from the event (readable or read-closed: [`READ`]; writable or write-closed: [`WRITE`];
    /// error or hang-up: both) and pushes `(fd, bits)`, where `bits` are the bits this event
    /// reported, whatever the cache held before: each is a fresh edge. epoll reports an fd at most
    /// once per call. Events of fds without users are dropped.
    ///
    /// Drains the signal pipe if it fired, and reports `woken`, `signalled` and `interrupted` in
    /// the outcome. Events beyond the first 1024 wait for the next call.
    ///
    /// # Errors
    ///
    /// `EINTR` is not an error: it returns `Ok` with `interrupted` set, `ready` empty, and the
    /// signal pipe already drained. Other `epoll_wait` errors (`EBADF`, `EINVAL`) mean the
    /// poller is broken and come back with context.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(RawFd, u8)>,
    ) -> io::Result<PollOutcome> {
        ready.clear();
        let mut outcome = PollOutcome::default();
        match self
            .poll
            .poll(&mut self.events, timeout.map(round_up_to_millis))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                outcome.interrupted = true;
                // The signal that interrupted us has most likely written to the pipe already;
                // draining now spares the caller a second wake-up for the same signal.
                outcome.signalled = self.signal.drain() > 0;
                return Ok(outcome);
            }
            Err(e) => return Err(context(e, "waiting for events with epoll")),
        }
        for event in self.events.iter() {
            match event.token() {
                WAKER_TOKEN => outcome.woken = true,
                SIGNAL_TOKEN => outcome.signalled |= self.signal.drain() > 0,
                Token(index) => {
                    let Some(slot) = self.slots.get_mut(index) else {
                        continue;
                    };
                    if slot.users == 0 {
                        continue;
                    }
                    let bits = event_bits(event);
                    if bits != 0 {
                        slot.readiness |= bits;
                        // `index` came from an fd via `index_of`, so it fits.
                        ready.push((index as RawFd, bits));
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Rebuilds the poller after `fork()`, in the child, which must not share its parent's epoll
    /// instance: makes a fresh epoll instance, [`Waker`] and signal pipe, re-registers every fd
    /// that has users (keeping the counts), and resets every cached readiness to 0.
    ///
    /// The old epoll fd is closed, never touched with `epoll_ctl`: its interest list is still the
    /// parent's. The signal pipe's write end keeps its fd number ([`signal_wakeup_fd`] is
    /// unchanged) so a `signal.set_wakeup_fd` made before the fork still works.
    ///
    /// Waker handles taken before the call become inert: waking them no longer wakes this
    /// poller. (They still write to the eventfd inherited from the parent, so at worst the
    /// parent's loop sees one spurious wake-up.) Take a new one with [`waker`](Self::waker).
    ///
    /// An fd that cannot be registered again (typically one closed behind our back, see the
    /// module's caveat) keeps its users and is marked `READ | WRITE`, so that its waiters wake up
    /// and their next system call on it reports the real problem, as with
    /// [`check_now`](Self::check_now). That is not an error of `reinit`: the child should not fail
    /// to start because one stale fd was left registered.
    ///
    /// # Errors
    ///
    /// Only if the fresh epoll instance, waker or pipe cannot be made (out of fds or memory); then
    /// nothing has changed. `Ok` therefore always means "switched over": take a new
    /// [`waker`](Self::waker).
    ///
    /// [`signal_wakeup_fd`]: Self::signal_wakeup_fd
    pub fn reinit(&mut self) -> io::Result<()> {
        let (poll, waker, signal) = fresh_instance()?;
        self.signal.replace_with(signal)?;
        // Nothing can fail from here on. Dropping the old `Poll` only closes our copy of the
        // epoll fd.
        self.poll = poll;
        self.waker = waker;
        self.events.clear();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            slot.readiness = 0;
            if slot.users == 0 {
                continue;
            }
            // `index` came from an fd via `index_of`, so it fits.
            if arm(self.poll.registry(), index as RawFd).is_err() {
                slot.readiness = BOTH;
            }
        }
        Ok(())
    }

    /// Number of fds currently registered (with at least one user).
    pub fn len(&self) -> usize {
        self.registered
    }

    /// Whether no fd is registered.
    pub fn is_empty(&self) -> bool {
        self.registered == 0
    }

    #[inline]
    fn slot(&self, fd: RawFd) -> Option<&Slot> {
        index_of(fd).and_then(|index| self.slots.get(index))
    }
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("epoll_fd", &self.poll.as_raw_fd())
            .field("registered", &self.registered)
            .field("signal_wakeup_fd", &self.signal_wakeup_fd())
            .finish_non_exhaustive()
    }
}

/// The two ends of the signal wake-up pipe, both non-blocking and close-on-exec.
struct SignalPipe {
    /// Registered with epoll under [`SIGNAL_TOKEN`].
    read: File,
    /// Handed to `signal.set_wakeup_fd`.
    write: OwnedFd,
}

impl SignalPipe {
    fn new() -> io::Result<SignalPipe> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a writable array of two ints, which is what pipe2(2) fills in.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc == -1 {
            return Err(context(
                io::Error::last_os_error(),
                "creating the signal wake-up pipe",
            ));
        }
        // SAFETY: pipe2 succeeded, so both fds are open, and nothing else owns them.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(SignalPipe { read, write })
    }

    /// Reads until the pipe is empty and returns how many bytes there were.
    ///
    /// Edge-triggered epoll only fires again on a new write, so stopping early could strand
    /// bytes until the pipe fills up and Python warns. The loop ends: every pass but the last
    /// removes a full buffer that signal handlers had to write one byte at a time.
    fn drain(&self) -> usize {
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            match (&self.read).read(&mut buf) {
                Ok(n) => {
                    total += n;
                    // A short read means the pipe was empty; a later write is a new edge.
                    if n < buf.len() {
                        return total;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // `WouldBlock`: empty. Anything else cannot be fixed by reading again.
                Err(_) => return total,
            }
        }
    }

    /// Switches to the pipe `fresh` while keeping our write end's fd number: the number is made to
    /// refer to `fresh`'s write end, and the old pipe is closed. On error nothing has changed.
    fn replace_with(&mut self, fresh: SignalPipe) -> io::Result<()> {
        let mut attempts = 0;
        loop {
            // SAFETY: both fds are open and owned by us. dup3(2) atomically closes our write
            // end's number and makes it a copy of `fresh.write`; `self.write` keeps owning the
            // number, now for the new pipe, and `fresh.write` is closed below.
            let rc = unsafe {
                libc::dup3(
                    fresh.write.as_raw_fd(),
                    self.write.as_raw_fd(),
                    libc::O_CLOEXEC,
                )
            };
            if rc != -1 {
                break;
            }
            let e = io::Error::last_os_error();
            attempts += 1;
            // EINTR, or EBUSY while another thread races an open(2): both are transient.
            let transient = matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY));
            if !transient || attempts == 4 {
                return Err(context(
                    e,
                    "moving the new signal wake-up pipe onto the old fd",
                ));
            }
        }
        // Drops the old read end and `fresh.write`, the spare number of the new write end.
        self.read = fresh.read;
        Ok(())
    }
}

/// Makes an epoll instance with its waker and its signal pipe, the read end registered.
fn fresh_instance() -> io::Result<(Poll, Arc<Waker>, SignalPipe)> {
    let poll = Poll::new().map_err(|e| context(e, "creating an epoll instance"))?;
    let waker = Waker::new(poll.registry(), WAKER_TOKEN)
        .map_err(|e| context(e, "creating the cross-thread waker"))?;
    let signal = SignalPipe::new()?;
    let read_fd = signal.read.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&read_fd), SIGNAL_TOKEN, Interest::READABLE)
        .map_err(|e| {
            context(
                e,
                format!("registering signal pipe fd {read_fd} with epoll"),
            )
        })?;
    Ok((poll, Arc::new(waker), signal))
}

/// Registers `fd` for `READ | WRITE`, edge-triggered (mio always asks epoll for edges); if epoll
/// already has it (`EEXIST`), re-arms it with `EPOLL_CTL_MOD` instead.
fn arm(registry: &Registry, fd: RawFd) -> io::Result<()> {
    debug_assert!(fd >= 0, "callers pass fds that index_of accepted");
    let token = Token(fd as usize);
    let interest = Interest::READABLE | Interest::WRITABLE;
    match registry.register(&mut SourceFd(&fd), token, interest) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            registry.reregister(&mut SourceFd(&fd), token, interest)
        }
        other => other,
    }
}

/// The `Vec` index of `fd`; `None` for a negative fd.
#[inline]
fn index_of(fd: RawFd) -> Option<usize> {
    usize::try_from(fd).ok()
}

/// Rounds a timeout up to whole milliseconds, epoll's resolution, so a sub-millisecond wait
/// does not become a busy zero. Zero stays zero; a value too large to round stays as it is.
fn round_up_to_millis(timeout: Duration) -> Duration {
    match timeout.checked_add(Duration::from_nanos(999_999)) {
        Some(up) => Duration::new(up.as_secs(), up.subsec_millis() * 1_000_000),
        None => timeout,
    }
}

/// Readiness bits of one epoll event; see [`Poller::poll`].
fn event_bits(event: &mio::event::Event) -> u8 {
    let mut bits = 0;
    if event.is_readable() || event.is_read_closed() {
        bits |= READ;
    }
    if event.is_writable() || event.is_write_closed() {
        bits |= WRITE;
    }
    if event.is_error() {
        bits |= BOTH;
    }
    bits
}

/// Readiness bits of a `poll(2)` answer; see [`Poller::check_now`].
fn revents_bits(revents: libc::c_short) -> u8 {
    let mut bits = 0;
    if revents & libc::POLLIN != 0 {
        bits |= READ;
    }
    if revents & libc::POLLOUT != 0 {
        bits |= WRITE;
    }
    if revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        bits |= BOTH;
    }
    bits
}

/// Wraps `source` with a description of what we were doing, keeping its kind; the original
/// error (and its errno) stays reachable as the wrapper's `source()`.
fn context(source: io::Error, what: impl Into<String>) -> io::Error {
    io::Error::new(
        source.kind(),
        Context {
            what: what.into(),
            source,
        },
    )
}

/// An `io::Error` payload: what failed, and why.
#[derive(Debug)]
struct Context {
    what: String,
    source: io::Error,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    /// Generous bound for "this should happen promptly": the machine is noisy.
    const PROMPTLY: Duration = Duration::from_secs(5);
    /// Short wait for "nothing should happen".
    const QUIET: Duration = Duration::from_millis(30);

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Polls (at most 20 times) until `fd` shows up in the ready list; returns its bits.
    fn wait_for(poller: &mut Poller, fd: RawFd) -> u8 {
        let mut ready = Vec::new();
        for _ in 0..20 {
            poller.poll(Some(PROMPTLY), &mut ready).unwrap();
            if let Some(&(_, bits)) = ready.iter().find(|&&(ready_fd, _)| ready_fd == fd) {
                return bits;
            }
        }
        panic!("fd {fd} never became ready");
    }

    /// Polls once with a short timeout; returns the bits reported for `fd` (0 if none).
    fn quiet_poll(poller: &mut Poller, fd: RawFd) -> u8 {
        let mut ready = Vec::new();
        poller.poll(Some(QUIET), &mut ready).unwrap();
        ready
            .iter()
            .filter(|&&(ready_fd, _)| ready_fd == fd)
            .fold(0, |acc, &(_, bits)| acc | bits)
    }

    /// Reads everything available from a non-blocking stream (bounded).
    fn drain(mut stream: &UnixStream) {
        let mut buf = [0u8; 4096];
        for _ in 0..1000 {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("read: {e}"),
            }
        }
        panic!("stream never drained");
    }

    /// Runs `f` on a thread after `delay` unless `done` is signalled first. A watchdog that turns a
    /// hang into an assertion failure.
    fn watchdog(
        delay: Duration,
        f: impl FnOnce() + Send + 'static,
    ) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
        let (done, wait) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            if wait.recv_timeout(delay) == Err(mpsc::RecvTimeoutError::Timeout) {
                f();
            }
        });
        (done, handle)
    }

    fn write_byte(fd: RawFd) -> isize {
        // SAFETY: the buffer is one valid byte; a bad fd only makes write(2) fail.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }
    }

    fn errno_of(e: &io::Error) -> Option<i32> {
        e.source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error)
    }

    #[test]
    fn poller_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Poller>();
    }

    #[test]
    fn readable_after_peer_writes() {
        let mut poller = Poller::new().unwrap();
        let (mut a, b) = pair();
        poller.register(b.as_raw_fd()).unwrap();
        assert_eq!(poller.readiness(b.as_raw_fd()), 0, "readiness starts at 0");
        a.write_all(b"hello").unwrap();
        let bits = wait_for(&mut poller, b.as_raw_fd());
        assert_ne!(bits & READ, 0);
        assert_ne!(poller.readiness(b.as_raw_fd()) & READ, 0);
    }

    #[test]
    fn writable_right_after_register() {
        let mut poller = Poller::new().unwrap();
        let (_a, b) = pair();
        poller.register(b.as_raw_fd()).unwrap();
        let bits = wait_for(&mut poller, b.as_raw_fd());
        assert_eq!(bits, WRITE, "an idle socket is writable, not readable");
        assert_eq!(poller.readiness(b.as_raw_fd()), WRITE);
    }

    #[test]
    fn silent_fd_gets_no_event() {
        let mut poller = Poller::new().unwrap();
        let (_a, b) = pair();
        poller.register(b.as_raw_fd()).unwrap();
        wait_for(&mut poller, b.as_raw_fd()); // the registration's WRITE edge
        assert_eq!(quiet_poll(&mut poller, b.as_raw_fd()), 0);
    }

    #[test]
    fn edge_triggered_reports_once_but_cache_stays_set() {
        let mut poller = Poller::new().unwrap();
        let (mut a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        wait_for(&mut poller, fd);
        a.write_all(b"x").unwrap();
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);
        // No new data: no new event, even though the data is still unread.
        assert_eq!(quiet_poll(&mut poller, fd), 0);
        assert_eq!(
            poller.readiness(fd),
            READ | WRITE,
            "the cache keeps what epoll said"
        );
        poller.clear_readiness(fd, READ);
        assert_eq!(poller.readiness(fd), WRITE);
        poller.clear_readiness(fd, WRITE);
        assert_eq!(poller.readiness(fd), 0);
        // New data is a new edge.
        a.write_all(b"y").unwrap();
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);
        assert_ne!(poller.readiness(fd) & READ, 0);
    }

    #[test]
    fn check_now_agrees_with_the_kernel() {
        let mut poller = Poller::new().unwrap();
        let (mut a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        assert_eq!(poller.check_now(fd, READ), 0);
        assert_eq!(poller.check_now(fd, WRITE), WRITE);
        assert_eq!(poller.readiness(fd), WRITE);
        a.write_all(b"data").unwrap();
        assert_eq!(poller.check_now(fd, READ | WRITE), READ | WRITE);
        assert_eq!(poller.readiness(fd), READ | WRITE);
        drain(&b);
        assert_eq!(poller.check_now(fd, READ), 0);
        assert_eq!(
            poller.readiness(fd),
            WRITE,
            "only the asked-about bit changes"
        );
        assert_eq!(poller.check_now(fd, 0), 0);
    }

    #[test]
    fn check_now_counts_errors_as_ready_for_both() {
        let mut poller = Poller::new().unwrap();
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a writable array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 succeeded; we own both fds.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read_end);
        // A pipe with no reader: POLLERR on the write end, so READ counts as ready too.
        assert_eq!(poller.check_now(write_end.as_raw_fd(), READ), READ);
        // POLLNVAL: a number far above anything open.
        assert_eq!(poller.check_now(1_000_000, READ | WRITE), READ | WRITE);
        // Unregistered fds get an answer but no cache entry.
        assert_eq!(poller.readiness(write_end.as_raw_fd()), 0);
        assert_eq!(poller.readiness(1_000_000), 0);
    }

    #[test]
    fn users_are_counted() {
        let mut poller = Poller::new().unwrap();
        let (_a, b) = pair();
        let fd = b.as_raw_fd();
        assert!(poller.is_empty());
        poller.register(fd).unwrap();
        poller.register(fd).unwrap();
        assert_eq!(poller.len(), 1);
        poller.deregister(fd);
        assert!(poller.is_registered(fd));
        assert_ne!(
            wait_for(&mut poller, fd) & WRITE,
            0,
            "still watched after one deregister"
        );
        poller.deregister(fd);
        assert!(!poller.is_registered(fd));
        assert_eq!(
            poller.readiness(fd),
            0,
            "readiness forgotten with the last user"
        );
        assert_eq!(poller.len(), 0);
        poller.deregister(fd); // one too many: no-op
        assert_eq!(poller.len(), 0);
    }

    #[test]
    fn unknown_fds_are_no_ops() {
        let mut poller = Poller::new().unwrap();
        poller.deregister(-1);
        poller.deregister(123_456);
        poller.clear_readiness(-1, READ);
        poller.clear_readiness(123_456, READ | WRITE);
        assert_eq!(poller.readiness(-1), 0);
        assert_eq!(poller.readiness(123_456), 0);
        assert!(!poller.is_registered(-1));
        assert_eq!(
            poller.check_now(-1, READ),
            0,
            "poll(2) ignores negative fds"
        );
        assert_eq!(poller.len(), 0);
    }

    #[test]
    fn deregister_after_close_behind_our_back() {
        let mut poller = Poller::new().unwrap();
        let (_a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        drop(b);
        poller.deregister(fd);
        assert!(!poller.is_registered(fd));
        assert_eq!(poller.len(), 0);
    }

    #[test]
    fn same_file_back_under_same_number_is_rearmed() {
        // epoll keeps an entry for (file, number) while the file lives, whatever the number
        // refers to meanwhile. Build that state with dup3(2), which swaps what a number refers
        // to without ever freeing it (so no other test thread can grab it):
        let mut poller = Poller::new().unwrap();
        let (mut a, b) = pair();
        let (_c, d) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        // SAFETY: `fd` is open; dup returns a new fd that we own, or -1.
        let spare = unsafe { OwnedFd::from_raw_fd(libc::dup(fd)) };
        assert!(spare.as_raw_fd() >= 0);
        // SAFETY: both fds are open; afterwards `fd` (still owned by `b`) refers to d's socket,
        // and the pair's socket lives on through `spare`, so its epoll entry stays.
        assert_eq!(
            unsafe { libc::dup3(d.as_raw_fd(), fd, libc::O_CLOEXEC) },
            fd
        );
        poller.deregister(fd); // EPOLL_CTL_DEL on (d's socket, fd): ENOENT, ignored
        assert!(!poller.is_registered(fd));
        // SAFETY: as above; `fd` refers to the original socket again, and epoll still has it.
        assert_eq!(
            unsafe { libc::dup3(spare.as_raw_fd(), fd, libc::O_CLOEXEC) },
            fd
        );
        drop(spare);
        poller
            .register(fd)
            .expect("EEXIST is re-armed with MOD, not an error");
        assert!(poller.is_registered(fd));
        a.write_all(b"z").unwrap();
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);
    }

    #[test]
    fn register_failures_are_errors_with_context() {
        let mut poller = Poller::new().unwrap();
        let file = File::open("/proc/self/exe")
            .or_else(|_| File::open(std::env::current_exe().unwrap()))
            .unwrap();
        let fd = file.as_raw_fd();
        let e = poller.register(fd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(errno_of(&e), Some(libc::EPERM));
        assert!(e.to_string().contains(&format!("fd {fd}")), "{e}");
        assert!(!poller.is_registered(fd));
        assert_eq!(poller.len(), 0);

        let e = poller.register(-1).unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::EBADF));
        let e = poller.register(1_000_000).unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::EBADF));
        assert!(
            poller.slots.len() < 1_000_000,
            "a failed register does not grow the table"
        );
    }

    #[test]
    fn waker_from_another_thread() {
        let mut poller = Poller::new().unwrap();
        let waker = poller.waker();
        let waking = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            waker.wake().unwrap();
        });
        // If the wake-up were lost, the watchdog ends the wait with a signal byte instead.
        let signal_fd = poller.signal_wakeup_fd();
        let (done, guard) = watchdog(PROMPTLY, move || {
            write_byte(signal_fd);
        });
        let mut ready = vec![(99, READ)];
        let outcome = poller.poll(None, &mut ready).unwrap();
        done.send(()).unwrap();
        guard.join().unwrap();
        waking.join().unwrap();
        assert!(outcome.woken, "{outcome:?}");
        assert!(ready.is_empty(), "the ready list is cleared first");
    }

    #[test]
    fn signal_pipe_wakes_and_is_drained() {
        let mut poller = Poller::new().unwrap();
        let fd = poller.signal_wakeup_fd();
        // SAFETY: fcntl on an open fd we own; F_GETFL/F_GETFD take no argument.
        let (fl, fd_flags) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);

        assert_eq!(write_byte(fd), 1);
        let mut ready = Vec::new();
        let outcome = poller.poll(Some(PROMPTLY), &mut ready).unwrap();
        assert!(outcome.signalled, "{outcome:?}");
        assert!(!outcome.woken);

        // More than one read's worth, all drained by one poll.
        for _ in 0..1000 {
            assert_eq!(write_byte(fd), 1);
        }
        assert!(poller.poll(Some(PROMPTLY), &mut ready).unwrap().signalled);
        let outcome = poller.poll(Some(QUIET), &mut ready).unwrap();
        assert_eq!(outcome, PollOutcome::default(), "nothing left in the pipe");
    }

    extern "C" fn ignore_signal(_: libc::c_int) {}

    #[test]
    fn eintr_is_reported_not_an_error() {
        // SAFETY: a zeroed sigaction is valid; we install a handler that does nothing, without
        // SA_RESTART (epoll_wait is never restarted anyway). SIGUSR1 is sent to this thread only.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
        let mut poller = Poller::new().unwrap();
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let (stop, stopped) = mpsc::channel::<()>();
        // Keeps signalling until told to stop, since a signal that lands before epoll_wait is
        // entered interrupts nothing.
        let killer = thread::spawn(move || {
            for _ in 0..200 {
                if stopped.recv_timeout(Duration::from_millis(20)).is_ok() {
                    return;
                }
                // SAFETY: `me` is the test thread, alive until it sends `stop` and joins us.
                unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
            }
        });
        let mut ready = vec![(99, READ)];
        let mut interrupted = false;
        for _ in 0..50 {
            let outcome = poller
                .poll(Some(Duration::from_secs(1)), &mut ready)
                .unwrap();
            if outcome.interrupted {
                interrupted = true;
                break;
            }
        }
        stop.send(()).unwrap();
        killer.join().unwrap();
        assert!(interrupted);
        assert!(ready.is_empty());
    }

    #[test]
    fn timeouts_round_up_to_milliseconds() {
        let ms = Duration::from_millis;
        let table = [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_nanos(1), ms(1)),
            (Duration::from_micros(300), ms(1)),
            (Duration::from_micros(500), ms(1)),
            (ms(1), ms(1)),
            (ms(1) + Duration::from_nanos(1), ms(2)),
            (ms(1500), ms(1500)),
            (Duration::MAX, Duration::MAX),
        ];
        for (timeout, expected) in table {
            assert_eq!(round_up_to_millis(timeout), expected, "{timeout:?}");
        }
    }

    #[test]
    fn sub_millisecond_timeout_really_waits() {
        let mut poller = Poller::new().unwrap();
        let mut ready = Vec::new();
        let timeout = Duration::from_micros(300);
        for _ in 0..5 {
            let start = Instant::now();
            let outcome = poller.poll(Some(timeout), &mut ready).unwrap();
            let elapsed = start.elapsed();
            if outcome.interrupted {
                continue;
            }
            assert!(elapsed >= timeout, "returned after {elapsed:?}");
            assert!(
                elapsed < Duration::from_secs(5),
                "returned after {elapsed:?}"
            );
            assert!(ready.is_empty());
        }
    }

    #[test]
    fn peer_hangup_marks_read() {
        let mut poller = Poller::new().unwrap();
        let (a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        wait_for(&mut poller, fd);
        poller.clear_readiness(fd, READ | WRITE);
        drop(a);
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);
        assert_ne!(poller.readiness(fd) & READ, 0);
        let mut buf = [0u8; 1];
        assert_eq!((&b).read(&mut buf).unwrap(), 0, "EOF");
    }

    #[test]
    fn peer_shutdown_write_marks_read() {
        let mut poller = Poller::new().unwrap();
        let (a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        wait_for(&mut poller, fd);
        poller.clear_readiness(fd, READ | WRITE);
        a.shutdown(std::net::Shutdown::Write).unwrap();
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);
    }

    #[test]
    fn reinit_keeps_registrations_working() {
        let mut poller = Poller::new().unwrap();
        let (mut a, b) = pair();
        let fd = b.as_raw_fd();
        poller.register(fd).unwrap();
        poller.register(fd).unwrap();
        wait_for(&mut poller, fd);
        a.write_all(b"x").unwrap();
        wait_for(&mut poller, fd);
        let old_waker = poller.waker();
        let signal_fd = poller.signal_wakeup_fd();

        poller.reinit().unwrap();

        assert_eq!(poller.readiness(fd), 0, "readiness reset");
        assert_eq!(poller.len(), 1);
        assert_eq!(
            poller.signal_wakeup_fd(),
            signal_fd,
            "the wake-up fd keeps its number"
        );
        // The fresh epoll reports the fd's current state again.
        assert_eq!(wait_for(&mut poller, fd), READ | WRITE);
        drain(&b);
        poller.clear_readiness(fd, READ);
        a.write_all(b"y").unwrap();
        assert_ne!(wait_for(&mut poller, fd) & READ, 0);

        // The old waker is inert; the new one works.
        old_waker.wake().unwrap();
        let mut ready = Vec::new();
        assert!(!poller.poll(Some(QUIET), &mut ready).unwrap().woken);
        poller.waker().wake().unwrap();
        assert!(poller.poll(Some(PROMPTLY), &mut ready).unwrap().woken);
        // The signal fd number now feeds the new pipe.
        assert_eq!(write_byte(signal_fd), 1);
        assert!(poller.poll(Some(PROMPTLY), &mut ready).unwrap().signalled);

        // Counts were kept: two users, so one deregister keeps it.
        poller.deregister(fd);
        assert!(poller.is_registered(fd));
        poller.deregister(fd);
        assert!(poller.is_empty());
    }

    #[test]
    fn reinit_marks_fds_it_cannot_register_as_ready() {
        let mut poller = Poller::new().unwrap();
        let (_a, b) = pair();
        let (_c, d) = pair();
        let file = File::open("/proc/self/exe")
            .or_else(|_| File::open(std::env::current_exe().unwrap()))
            .unwrap();
        let stale = b.as_raw_fd();
        poller.register(stale).unwrap();
        poller.register(d.as_raw_fd()).unwrap();
        // The socket's number now refers to a regular file, which epoll refuses (EPERM). dup3
        // swaps what the number refers to without freeing it, so no other test can take it.
        // SAFETY: both fds are open; `b` still owns the number and closes it at the end.
        assert_eq!(
            unsafe { libc::dup3(file.as_raw_fd(), stale, libc::O_CLOEXEC) },
            stale
        );

        poller.reinit().expect("a stale fd does not fail reinit");

        assert!(poller.is_registered(stale));
        assert_eq!(
            poller.readiness(stale),
            READ | WRITE,
            "its waiters must wake up and see"
        );
        assert_eq!(poller.len(), 2);
        assert_ne!(
            wait_for(&mut poller, d.as_raw_fd()) & WRITE,
            0,
            "the other fd still works"
        );
        poller.deregister(stale);
        assert_eq!(poller.len(), 1);
    }
}
