//! Costs of the poller's hot paths: a readiness round trip, a cached readiness lookup, and an
//! idle zero-timeout poll.

use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use _core::poll::{Poller, READ, WRITE};
use criterion::{criterion_group, criterion_main, Criterion};

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("non-blocking");
    b.set_nonblocking(true).expect("non-blocking");
    (a, b)
}

/// A poller with `fd` registered and its registration edge already consumed.
fn poller_with(fd: i32) -> (Poller, Vec<(i32, u8)>) {
    let mut poller = Poller::new().expect("poller");
    let mut ready = Vec::new();
    poller.register(fd).expect("register");
    poller
        .poll(Some(Duration::from_secs(1)), &mut ready)
        .expect("poll");
    assert_eq!(poller.readiness(fd), WRITE);
    (poller, ready)
}

/// Write one byte, poll until the reader's READ edge arrives, read it back, clear READ on EAGAIN:
/// what a greenlet blocked in `recv` costs, minus the switches.
fn round_trip(c: &mut Criterion) {
    let (mut writer, mut reader) = pair();
    let fd = reader.as_raw_fd();
    let (mut poller, mut ready) = poller_with(fd);
    let mut buf = [0u8; 16];
    c.bench_function("poll/round_trip_1_byte", |b| {
        b.iter(|| {
            writer.write_all(b"x").expect("write");
            poller
                .poll(Some(Duration::from_secs(1)), &mut ready)
                .expect("poll");
            debug_assert_eq!(ready.first().map(|&(ready_fd, _)| ready_fd), Some(fd));
            assert_ne!(poller.readiness(fd) & READ, 0);
            assert_eq!(reader.read(&mut buf).expect("read"), 1);
            let again = reader.read(&mut buf).expect_err("drained");
            assert_eq!(again.kind(), ErrorKind::WouldBlock);
            poller.clear_readiness(fd, READ);
        })
    });
}

/// The no-system-call answer to "is this fd possibly ready?".
fn readiness_lookup(c: &mut Criterion) {
    let (_writer, reader) = pair();
    let fd = reader.as_raw_fd();
    let (poller, _ready) = poller_with(fd);
    c.bench_function("poll/readiness_lookup", |b| {
        b.iter(|| black_box(poller.readiness(black_box(fd))))
    });
}

/// One `epoll_wait` that finds nothing: the loop's cost when it checks for I/O between callbacks.
fn idle_zero_timeout(c: &mut Criterion) {
    let (_writer, reader) = pair();
    let (mut poller, mut ready) = poller_with(reader.as_raw_fd());
    c.bench_function("poll/zero_timeout_nothing_ready", |b| {
        b.iter(|| {
            let outcome = poller.poll(Some(Duration::ZERO), &mut ready).expect("poll");
            black_box(outcome);
            debug_assert!(ready.is_empty());
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = round_trip, readiness_lookup, idle_zero_timeout
}
criterion_main!(benches);
