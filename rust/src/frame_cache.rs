//! A small cache of the interpreter's frame-stack chunks.
//!
//! Since Python 3.11 every thread state, and so every greenlet, keeps its Python frames in
//! "data stack chunks" of 16 KiB that CPython gets from its arena allocator, which is `mmap`.
//! A greenlet that starts maps a chunk and one that finishes unmaps it: two system calls and
//! fresh page faults per greenlet, which is most of what spawning a short greenlet costs
//! (about 8 µs of the ~11 µs of a raw greenlet create-run-finish here).
//!
//! verdigris wraps the arena allocator with a bounded free list for blocks of exactly that
//! size: a finished greenlet's chunk goes to the list, the next greenlet takes it. Every other
//! size (obmalloc's arenas, larger chunks) goes straight to the original allocator, and a block
//! taken from the list was made by the original allocator, so mixing is always safe. On Python
//! 3.9 and 3.10, which have no data stack chunks, the wrapper sees no block of that size and
//! does nothing.

use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use pyo3::ffi;

/// `DATA_STACK_CHUNK_SIZE` in CPython 3.11+ (Python/pystate.c).
const CHUNK_SIZE: usize = 16 * 1024;
/// At most this many chunks are kept: 64 MiB of address space, of which only the pages the
/// finished greenlets touched (typically one or two of the four) stay resident. Like any
/// allocator's free list, it holds on to memory the program already used at its peak.
const MAX_CACHED: usize = 4096;

struct Original(ffi::PyObjectArenaAllocator);

// SAFETY: the original allocator is a pair of C functions and a context pointer that CPython
// itself calls from any thread holding the GIL; we only call it the same way.
unsafe impl Send for Original {}
unsafe impl Sync for Original {}

static ORIGINAL: OnceLock<Original> = OnceLock::new();
static CACHE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

extern "C" fn cached_alloc(ctx: *mut c_void, size: libc::size_t) -> *mut c_void {
    if size == CHUNK_SIZE {
        if let Some(ptr) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return ptr as *mut c_void;
        }
    }
    let original = &ORIGINAL.get().expect("installed before use").0;
    match original.alloc {
        Some(alloc) => alloc(ctx, size),
        None => std::ptr::null_mut(),
    }
}

extern "C" fn cached_free(ctx: *mut c_void, ptr: *mut c_void, size: libc::size_t) {
    if size == CHUNK_SIZE && !ptr.is_null() {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() < MAX_CACHED {
            cache.push(ptr as usize);
            return;
        }
    }
    let original = &ORIGINAL.get().expect("installed before use").0;
    if let Some(free) = original.free {
        free(ctx, ptr, size);
    }
}

/// Installs the caching wrapper once per process (at `import verdigris._core`).
pub fn install() {
    if ORIGINAL.get().is_some() {
        return;
    }
    let mut current = ffi::PyObjectArenaAllocator { ctx: std::ptr::null_mut(), alloc: None, free: None };
    // SAFETY: called with the GIL held during module initialisation; the struct is a valid
    // out-parameter.
    unsafe { ffi::PyObject_GetArenaAllocator(&mut current) };
    if current.alloc.is_none() || current.free.is_none() {
        return;
    }
    let ctx = current.ctx;
    if ORIGINAL.set(Original(current)).is_err() {
        return;
    }
    let mut wrapper = ffi::PyObjectArenaAllocator { ctx, alloc: Some(cached_alloc), free: Some(cached_free) };
    // SAFETY: GIL held; the wrapper forwards every block it does not cache to the allocator
    // that made it, so blocks allocated before and after the switch are freed correctly.
    unsafe { ffi::PyObject_SetArenaAllocator(&mut wrapper) };
}

/// Number of chunks in the cache (for tests and debugging).
pub fn cached() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).len()
}
