//! NVTX ranges mirrored from stages, so Nsight Systems shows the same names.
//!
//! NVTX 3 is a header-only C library, so a Rust program reaches it through
//! a shared library that exports its functions: CUDA 13's `libnvtx3interop`
//! or the older `libnvToolsExt`. Either forwards to the tool attached (when
//! Nsight Systems runs the program) and costs a few nanoseconds otherwise.

use std::ffi::{c_char, c_int, CString};

use libloading::Library;

type PushFn = unsafe extern "C" fn(*const c_char) -> c_int;
type PopFn = unsafe extern "C" fn() -> c_int;

const LIBRARIES: &[&str] = &["libnvtx3interop.so.1", "libnvtx3interop.so", "libnvToolsExt.so.1", "libnvToolsExt.so"];

pub(crate) struct Nvtx {
    push: PushFn,
    pop: PopFn,
    _lib: Library,
}

impl Nvtx {
    /// The first NVTX library found, or why none could be used.
    pub(super) fn load() -> Result<Nvtx, String> {
        for name in LIBRARIES {
            // SAFETY: loading an NVTX library runs no initialiser with preconditions;
            // the symbols are looked up with the C signatures NVTX documents.
            let Ok(lib) = (unsafe { Library::new(*name) }) else { continue };
            let symbols = unsafe {
                lib.get::<PushFn>(b"nvtxRangePushA\0")
                    .and_then(|push| Ok((*push, *lib.get::<PopFn>(b"nvtxRangePop\0")?)))
            };
            if let Ok((push, pop)) = symbols {
                return Ok(Nvtx { push, pop, _lib: lib });
            }
        }
        Err(format!("no NVTX library ({}) found", LIBRARIES.join(", ")))
    }

    pub(super) fn push(&self, name: &CString) {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        unsafe { (self.push)(name.as_ptr()) };
    }

    pub(super) fn pop(&self) {
        // SAFETY: takes no arguments; an unmatched pop is reported by NVTX, not undefined.
        unsafe { (self.pop)() };
    }
}
