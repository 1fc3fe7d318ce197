//! `verdigris._core`: the event loop under verdigris.
//!
//! Pure Rust, testable without Python: [`wheel`] (hierarchical timer wheel), [`poll`] (mio
//! poller with cached readiness) and [`waits`] (parked greenlets). The PyO3 layer is
//! [`event_loop`] (the `Loop` and its cycle) and [`watchers`] (gevent's watcher objects), with
//! [`greenlet_api`] for switching greenlets from Rust.

pub mod clock;
pub mod errors;
pub mod event_loop;
pub mod frame_cache;
pub mod greenlet_api;
pub mod hooks;
pub mod monitor;
pub mod owner;
pub mod poll;
pub mod timeout;
pub mod waits;
pub mod watchers;
pub mod wheel;

use pyo3::prelude::*;

/// Number of Python frame-stack chunks kept for reuse by new greenlets (see `frame_cache`).
#[pyfunction]
fn frame_chunks_cached() -> usize {
    frame_cache::cached()
}

/// The native module. `gil_used = true`: the loop's state relies on the GIL (see `owner`).
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    greenlet_api::init(m.py())?;
    frame_cache::install();
    m.add_class::<event_loop::Loop>()?;
    m.add_class::<watchers::Callback>()?;
    m.add_class::<watchers::Timer>()?;
    m.add_class::<watchers::Io>()?;
    m.add_class::<watchers::Async>()?;
    m.add_class::<hooks::Hook>()?;
    m.add_class::<monitor::Monitor>()?;
    m.add_class::<timeout::TimeoutBase>()?;
    m.add_function(wrap_pyfunction!(event_loop::sleep, m)?)?;
    m.add_function(wrap_pyfunction!(event_loop::hub_switch, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("build_profile", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    m.add("READ", poll::READ)?;
    m.add_function(wrap_pyfunction!(frame_chunks_cached, m)?)?;
    m.add("WRITE", poll::WRITE)?;
    Ok(())
}
