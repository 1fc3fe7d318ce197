//! Timer wheel benches: the costs the event loop pays per timer.
//!
//! - `arm_cancel/N`: arm a timer and cancel it again (a `Timeout` around a read that completes)
//!   with N timers already armed, deadlines up to a few minutes out.
//! - `churn/N`: cancel a random one of N armed timers and arm a replacement, so the cancel
//!   touches cold memory as N grows.
//! - `expire/N`: one `advance` that fires N timers spread over a few minutes (reported per timer).
//! - `turn`: one loop turn's timer work (`next_expiration`, `advance` by 1 ms, re-arm what
//!   fired) with 100,000 timers armed.
//!
//! Kept short on purpose (20 samples, 2 s each) so `cargo bench --bench wheel` takes about a
//! minute on a 2-core machine.

use std::hint::black_box;
use std::time::Duration;

use _core::wheel::{Tick, TimerKey, Wheel};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Deadlines are drawn from (0, HORIZON] ticks ahead: three minutes.
const HORIZON: Tick = 3 * 60 * 1000;

/// xorshift64*: deterministic and cheap next to what is measured.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A deadline within the horizon after `elapsed`.
    fn deadline(&mut self, elapsed: Tick) -> Tick {
        elapsed + 1 + self.next() % HORIZON
    }
}

/// A wheel with `n` timers armed at random deadlines, and their keys.
fn armed(n: usize, rng: &mut XorShift) -> (Wheel<u64>, Vec<TimerKey>) {
    let mut wheel = Wheel::new();
    let keys = (0..n as u64)
        .map(|i| wheel.insert(rng.deadline(0), i))
        .collect();
    (wheel, keys)
}

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

fn arm_cancel(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/arm_cancel");
    for n in SIZES {
        let mut rng = XorShift::new(n as u64);
        let (mut wheel, _) = armed(n, &mut rng);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let key = wheel.insert(rng.deadline(wheel.elapsed()), 0);
                black_box(wheel.cancel(black_box(key)))
            })
        });
    }
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/churn");
    for n in SIZES {
        let mut rng = XorShift::new(n as u64);
        let (mut wheel, mut keys) = armed(n, &mut rng);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let slot = (rng.next() % keys.len() as u64) as usize;
                let value = wheel.cancel(keys[slot]).expect("armed");
                keys[slot] = wheel.insert(rng.deadline(wheel.elapsed()), value);
            })
        });
    }
}

fn expire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/expire");
    for n in [1_000, 10_000, 100_000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched_ref(
                || {
                    (
                        armed(n, &mut XorShift::new(n as u64)).0,
                        Vec::with_capacity(n),
                    )
                },
                |(wheel, expired)| {
                    wheel.advance(HORIZON, expired);
                    assert_eq!(expired.len(), n);
                },
                BatchSize::LargeInput,
            )
        });
    }
}

fn turn(c: &mut Criterion) {
    let mut rng = XorShift::new(7);
    let (mut wheel, _) = armed(100_000, &mut rng);
    let mut expired = Vec::new();
    c.bench_function("wheel/turn/100000", |b| {
        b.iter(|| {
            black_box(wheel.next_expiration());
            let now = wheel.elapsed() + 1;
            wheel.advance(now, &mut expired);
            for (_, value) in expired.drain(..) {
                wheel.insert(rng.deadline(now), value);
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = arm_cancel, churn, expire, turn
}
criterion_main!(benches);
