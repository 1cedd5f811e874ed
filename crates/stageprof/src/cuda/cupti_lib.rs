//! The CUPTI library, loaded at run time: the one `STAGEPROF_CUPTI` names,
//! else the copy already in the process if there is one, else the one the
//! loader finds.
//!
//! A PyTorch process holds torch's own CUPTI (`nvidia/cu13/lib/libcupti.so.13`)
//! while the system's is another file. Measured on an H200: once a second
//! copy has subscribed, even only to give the subscription up at once,
//! torch.profiler's CUPTI fails for the rest of the process
//! (CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED). Sharing torch's copy,
//! stageprof and torch.profiler can take turns.

use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use cudarc::cupti::sys::{
    CUptiResult, CUpti_ActivityKind, CUpti_BuffersCallbackCompleteFunc, CUpti_BuffersCallbackRequestFunc,
    CUpti_CallbackDomain, CUpti_CallbackFunc, CUpti_ExternalCorrelationKind, CUpti_SubscriberHandle,
};
use cudarc::driver::sys::CUcontext;
use libloading::Library;

/// Turns API records of one callback id on or off.
pub(crate) type ChooseApiCall = unsafe extern "C" fn(u32, u8) -> CUptiResult;

/// Declares the functions stageprof calls, each looked up once by its C name.
macro_rules! cupti_functions {
    ($($name:ident: fn($($arg:ty),*);)*) => {
        /// CUPTI's functions that stageprof calls, with CUPTI's C signatures.
        #[allow(non_snake_case)]
        pub(crate) struct Cupti {
            $(pub $name: unsafe extern "C" fn($($arg),*) -> CUptiResult,)*
            /// `cuptiActivityEnableRuntimeApi` and `cuptiActivityEnableDriverApi`
            /// (API records chosen per call; CUDA 12.5 and later).
            pub choose_api_calls: Option<(ChooseApiCall, ChooseApiCall)>,
            _lib: Library,
        }

        // The fields keep CUPTI's names, so each call reads as in cupti.h.
        #[allow(non_snake_case)]
        impl Cupti {
            fn load(path: &str) -> Result<Cupti, String> {
                // SAFETY: loading CUPTI runs no initialiser with preconditions; every symbol
                // is looked up with the signature cupti.h declares for it.
                unsafe {
                    let lib = Library::new(path).map_err(|e| e.to_string())?;
                    $(let $name = *lib
                        .get::<unsafe extern "C" fn($($arg),*) -> CUptiResult>(concat!(stringify!($name), "\0").as_bytes())
                        .map_err(|e| e.to_string())?;)*
                    let choose = |name: &[u8]| lib.get::<ChooseApiCall>(name).ok().map(|f| *f);
                    let choose_api_calls = choose(b"cuptiActivityEnableRuntimeApi\0")
                        .zip(choose(b"cuptiActivityEnableDriverApi\0"));
                    Ok(Cupti { $($name,)* choose_api_calls, _lib: lib })
                }
            }
        }
    };
}

cupti_functions! {
    cuptiSubscribe: fn(*mut CUpti_SubscriberHandle, CUpti_CallbackFunc, *mut c_void);
    cuptiUnsubscribe: fn(CUpti_SubscriberHandle);
    cuptiEnableDomain: fn(u32, CUpti_SubscriberHandle, CUpti_CallbackDomain);
    cuptiFinalize: fn();
    cuptiActivityRegisterCallbacks: fn(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
    cuptiActivityEnable: fn(CUpti_ActivityKind);
    cuptiActivityDisable: fn(CUpti_ActivityKind);
    cuptiActivityFlushAll: fn(u32);
    cuptiActivityGetNextRecord: fn(*mut u8, usize, *mut *mut cudarc::cupti::sys::CUpti_Activity);
    cuptiActivityGetNumDroppedRecords: fn(CUcontext, u32, *mut usize);
    cuptiActivityPushExternalCorrelationId: fn(CUpti_ExternalCorrelationKind, u64);
    cuptiActivityPopExternalCorrelationId: fn(CUpti_ExternalCorrelationKind, *mut u64);
    cuptiGetTimestamp: fn(*mut u64);
    cuptiGetResultString: fn(CUptiResult, *mut *const c_char);
}

/// Names the CUPTI library to load before any other (a path or a file name).
pub(crate) const CUPTI_ENV: &str = "STAGEPROF_CUPTI";

/// CUPTI, loaded on first use; or why it could not be.
pub(crate) fn cupti() -> Result<&'static Cupti, &'static str> {
    static LIB: OnceLock<Result<Cupti, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let mut tried = Vec::new();
        let chosen = std::env::var(CUPTI_ENV).ok().filter(|p| !p.is_empty());
        for path in chosen.into_iter().chain(already_loaded()).chain(cudarc::get_lib_name_candidates("cupti")) {
            match Cupti::load(&path) {
                Ok(lib) => return Ok(lib),
                Err(e) => tried.push(format!("{path}: {e}")),
            }
        }
        Err(format!("CUPTI (libcupti.so) not found ({})", tried.first().map_or("", String::as_str)))
    })
    .as_ref()
    .map_err(String::as_str)
}

/// The path of a CUPTI library this process has mapped already (torch's, in a PyTorch process).
fn already_loaded() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.contains("/libcupti.so")).map(str::to_owned)
}
