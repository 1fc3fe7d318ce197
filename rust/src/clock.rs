//! The loop's clock: `CLOCK_MONOTONIC`, the clock behind Python's `time.monotonic()`, so times
//! the loop reports compare directly with the caller's.

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Converts a duration in seconds (finite, >= 0) to nanoseconds, saturating at about 584 years.
pub fn seconds_to_ns(seconds: f64) -> u64 {
    if seconds <= 0.0 {
        0
    } else if seconds >= 1.8e10 {
        u64::MAX / 2
    } else {
        (seconds * 1e9).round() as u64
    }
}
