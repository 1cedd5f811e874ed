//! Kernels, copies and memsets from the CUPTI Activity API, each joined to
//! the stage that launched it through the external correlation id the
//! stage pushed.
//!
//! CUPTI hands over filled buffers on a thread of its own, through C
//! callbacks that carry no context, so what they decode goes to a static
//! inbox; the session's thread empties it and writes profile records.
//! Records are read through the leading fields that every version of each
//! record layout shares, so a newer CUPTI with longer records still reads.

use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};
use std::sync::{Mutex, RwLock};

use cudarc::cupti::sys::{
    self as cupti, CUptiResult, CUpti_ActivityKind, CUpti_ApiCallbackSite, CUpti_CallbackData, CUpti_CallbackDomain,
    CUpti_CallbackId, CUpti_ExternalCorrelationKind, CUpti_Subscriber_st,
};
use stageprof_model::{CopyKind, GpuWork, LaunchShape};

use super::cupti_lib::{cupti, Cupti};
use crate::names::dynamic_name;

const BUFFER_BYTES: usize = 8 << 20;
const KIND_MEMCPY: u32 = 1;
/// API records: CUPTI writes external correlation records only for API
/// calls it traces, so both APIs are on; of their own records only the
/// start is kept, as the launch time of what they launched.
const KIND_RUNTIME: u32 = 4;
const KIND_DRIVER: u32 = 5;
const KIND_MEMSET: u32 = 2;
const KIND_CONCURRENT_KERNEL: u32 = 10;
const KIND_EXTERNAL_CORRELATION: u32 = 39;
const EXTERNAL_KIND: CUpti_ExternalCorrelationKind =
    CUpti_ExternalCorrelationKind::CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0;
const FLUSH_FORCED: u32 = 1;
const KINDS: [u32; 6] =
    [KIND_CONCURRENT_KERNEL, KIND_MEMCPY, KIND_MEMSET, KIND_EXTERNAL_CORRELATION, KIND_RUNTIME, KIND_DRIVER];
/// Of the API calls, only those that launch work are traced: a PyTorch op
/// makes several other runtime calls per launch (device and stream
/// queries), and tracing them all cost the Python demo +90% against +30%.
/// Runtime: cudaMemcpy, cudaMemcpyAsync, cudaMemcpy2DAsync, cudaMemset,
/// cudaMemsetAsync (and their per-thread-stream forms), cudaLaunchKernel
/// (and _ptsz), cudaLaunchCooperativeKernel, cudaGraphLaunch, cudaLaunchKernelExC.
const LAUNCHING_RUNTIME_CBIDS: [u32; 12] = [31, 41, 44, 49, 51, 211, 214, 225, 235, 269, 311, 430];
/// Driver: cuMemsetD8Async, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyAsync,
/// cuLaunchKernel (and _ptsz), cuLaunchCooperativeKernel, cuGraphLaunch, cuLaunchKernelEx (and _ptsz).
const LAUNCHING_DRIVER_CBIDS: [u32; 10] = [216, 277, 279, 306, 307, 442, 477, 514, 652, 653];
/// Above every runtime and driver callback id CUPTI has.
const MAX_CBID: u32 = 1024;

/// One kernel, copy or memset as CUPTI reported it (CUPTI's clock, ns).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawActivity {
    pub correlation: u32,
    pub work: GpuWork,
    pub name: u32,
    pub start: u64,
    pub end: u64,
    pub device: u32,
    pub stream: u32,
    pub bytes: u64,
    pub shape: Option<LaunchShape>,
}

/// What CUPTI delivered: activities, and what is known of the API calls that launched them.
#[derive(Default)]
pub(crate) struct Delivery {
    pub activities: Vec<RawActivity>,
    /// CUPTI correlation id of a launch -> the stage instance that launched it.
    pub external: Vec<(u32, u64)>,
    /// CUPTI correlation id of an API call -> when it began (CUPTI's clock, ns).
    pub api_starts: Vec<(u32, u64)>,
    pub dropped: u64,
}

static INBOX: Mutex<Delivery> =
    Mutex::new(Delivery { activities: Vec::new(), external: Vec::new(), api_starts: Vec::new(), dropped: 0 });
/// What earlier attachments delivered, each whole: CUPTI's correlation ids
/// may start again in the next one, so their launches are not mixed.
static SEALED: Mutex<Vec<Delivery>> = Mutex::new(Vec::new());
/// Kernel name pointers (stable while their module is loaded) -> name ids.
static KERNEL_NAMES: Mutex<Option<HashMap<usize, u32>>> = Mutex::new(None);

// The leading fields of CUPTI's records (cupti_activity.h); later versions only append.
#[repr(C)]
struct KernelHead {
    kind: u32,
    cache_config: u8,
    shared_memory_config: u8,
    registers_per_thread: u16,
    partitioned_requested: u32,
    partitioned_executed: u32,
    start: u64,
    end: u64,
    completed: u64,
    device_id: u32,
    context_id: u32,
    stream_id: u32,
    grid: [i32; 3],
    block: [i32; 3],
    static_shared: i32,
    dynamic_shared: i32,
    local_per_thread: u32,
    local_total: u32,
    correlation_id: u32,
    grid_id: i64,
    name: *const std::ffi::c_char,
}

#[repr(C)]
struct MemcpyHead {
    kind: u32,
    copy_kind: u8,
    src_kind: u8,
    dst_kind: u8,
    flags: u8,
    bytes: u64,
    start: u64,
    end: u64,
    device_id: u32,
    context_id: u32,
    stream_id: u32,
    correlation_id: u32,
}

#[repr(C)]
struct MemsetHead {
    kind: u32,
    value: u32,
    bytes: u64,
    start: u64,
    end: u64,
    device_id: u32,
    context_id: u32,
    stream_id: u32,
    correlation_id: u32,
}

#[repr(C)]
struct ApiHead {
    kind: u32,
    cbid: u32,
    start: u64,
    end: u64,
    process_id: u32,
    thread_id: u32,
    correlation_id: u32,
}

#[repr(C)]
struct ExternalCorrelation {
    kind: u32,
    external_kind: u32,
    external_id: u64,
    correlation_id: u32,
}

/// What a CUPTI refusal means: seen under torch.profiler, Nsight Systems and
/// Nsight Compute, which hold CUPTI themselves (CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED).
const NOT_TRACED: &str = "; another profiler (torch.profiler, Nsight Systems, Nsight Compute) may hold it. \
     Kernels, copies and memsets are not traced; stage GPU times (CUDA events) go on";

/// stageprof's CUPTI subscriber while it traces: CUPTI takes one per
/// process, so holding it tells another profiler that CUPTI is taken (and
/// tells stageprof when another holds it), and it is the way out again (`detach`).
static SUBSCRIBER: AtomicPtr<CUpti_Subscriber_st> = AtomicPtr::new(std::ptr::null_mut());
/// Whether CUPTI is attached: from `start` to `stop`, which kernel tracing
/// in some frames calls again and again. Every other CUPTI call holds it
/// for reading, so that CUPTI is never finalized under a call, nor called
/// (which would bring it back) once finalized.
static ATTACHED: RwLock<bool> = RwLock::new(false);
/// How many times CUPTI was attached: a stage pops its correlation id only
/// in the attachment it pushed it in.
static ATTACHMENT: AtomicU64 = AtomicU64::new(0);
/// Set while `detach` waits for a driver call's exit to finalize CUPTI from.
static DETACHING: AtomicBool = AtomicBool::new(false);

/// Attaches CUPTI and turns activity recording on, or says why it cannot be.
pub(crate) fn start() -> Result<(), String> {
    cupti().map_err(|e| format!("{e}; kernels, copies and memsets are not traced"))?;
    let mut attached = ATTACHED.write().unwrap_or_else(|e| e.into_inner());
    if *attached {
        return Ok(());
    }
    // Subscribing first: registering buffer callbacks while another profiler holds CUPTI
    // would take its activity records from it.
    let mut subscriber = std::ptr::null_mut();
    // SAFETY: `subscriber` is a valid out-pointer; the callback matches CUpti_CallbackFunc and lives for the program.
    check(unsafe { (lib().cuptiSubscribe)(&mut subscriber, Some(on_driver_call), std::ptr::null_mut()) })
        .map_err(|e| format!("CUPTI is taken ({e}){NOT_TRACED}"))?;
    SUBSCRIBER.store(subscriber, Release);
    // SAFETY: the callbacks match the signatures CUPTI declares and live for the whole program.
    check(unsafe { (lib().cuptiActivityRegisterCallbacks)(Some(buffer_requested), Some(buffer_completed)) }).map_err(
        |e| {
            detach(|| ());
            format!("CUPTI is unavailable ({e}){NOT_TRACED}")
        },
    )?;
    for kind in KINDS {
        // SAFETY: `kind` is one of CUpti_ActivityKind's values (repr(u32) enum).
        let kind: CUpti_ActivityKind = unsafe { std::mem::transmute(kind) };
        check(unsafe { (lib().cuptiActivityEnable)(kind) }).map_err(|e| {
            disable_and_detach(|| ());
            format!("CUPTI refused activity kind {kind:?} ({e}){NOT_TRACED}")
        })?;
    }
    trace_only_launching_calls();
    *attached = true;
    ATTACHMENT.fetch_add(1, Relaxed);
    Ok(())
}

/// Leaves API records on only for the calls that launch work; where CUPTI
/// cannot choose calls (before CUDA 12.5), every call stays traced.
fn trace_only_launching_calls() {
    let Some((runtime_api, driver_api)) = lib().choose_api_calls else { return };
    for cbid in 1..MAX_CBID {
        let runtime = u8::from(LAUNCHING_RUNTIME_CBIDS.contains(&cbid));
        let driver = u8::from(LAUNCHING_DRIVER_CBIDS.contains(&cbid));
        // SAFETY: plain calls with an id and a flag; an id CUPTI does not know is an error
        // return, which leaves that id as it was.
        unsafe {
            runtime_api(cbid, runtime);
            driver_api(cbid, driver);
        }
    }
}

/// Turns the activity kinds off again (after a final flush) and hands
/// CUPTI back, so that another profiler (torch.profiler) can take it later
/// in the process, and so that launches cost what they cost without it
/// (attached, CUPTI slows each launch even with no kind on: 0.47 µs of 2.9
/// on an H100 host). `driver_call` is any CUDA driver call.
pub(crate) fn stop(driver_call: impl FnOnce()) {
    let mut attached = ATTACHED.write().unwrap_or_else(|e| e.into_inner());
    if !*attached {
        return;
    }
    disable_and_detach(driver_call);
    *attached = false;
    // Names of the next attachment's kernels may come at addresses these had.
    *KERNEL_NAMES.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let delivered = std::mem::take(&mut *INBOX.lock().unwrap_or_else(|e| e.into_inner()));
    SEALED.lock().unwrap_or_else(|e| e.into_inner()).push(delivered);
}

fn disable_and_detach(driver_call: impl FnOnce()) {
    for kind in KINDS {
        // SAFETY: as in `start`; disabling a kind that is not enabled is harmless.
        unsafe {
            let kind: CUpti_ActivityKind = std::mem::transmute(kind);
            (lib().cuptiActivityDisable)(kind);
        }
    }
    detach(driver_call);
}

/// Detaches CUPTI from the process the way NVIDIA documents ("dynamic
/// detach"): `cuptiFinalize` from a callback at a driver call's exit, where
/// no other CUPTI call of the process is half done (Kineto crashed calling
/// it from a thread of its own). The driver call is made here; if its
/// callback never comes, the subscriber is at least given up.
fn detach(driver_call: impl FnOnce()) {
    let subscriber = SUBSCRIBER.load(Acquire);
    if subscriber.is_null() {
        return;
    }
    DETACHING.store(true, Release);
    // SAFETY: `subscriber` came from cuptiSubscribe and is not yet given up.
    let enabled = unsafe { (lib().cuptiEnableDomain)(1, subscriber, CUpti_CallbackDomain::CUPTI_CB_DOMAIN_DRIVER_API) };
    if check(enabled).is_ok() {
        driver_call();
    }
    if DETACHING.swap(false, AcqRel) {
        // SAFETY: as above; the callback did not run, so the subscriber is still ours.
        unsafe { (lib().cuptiUnsubscribe)(subscriber) };
    }
    SUBSCRIBER.store(std::ptr::null_mut(), Release);
}

/// The subscriber's callback: enabled only while `detach` runs.
unsafe extern "C" fn on_driver_call(_: *mut c_void, _: CUpti_CallbackDomain, _: CUpti_CallbackId, data: *const c_void) {
    // SAFETY: for the driver API domain, CUPTI passes a CUpti_CallbackData (or null).
    let at_exit = unsafe { data.cast::<CUpti_CallbackData>().as_ref() }
        .is_some_and(|d| d.callbackSite == CUpti_ApiCallbackSite::CUPTI_API_EXIT);
    if at_exit && DETACHING.swap(false, AcqRel) {
        // SAFETY: called once, from an API exit callback, as CUPTI's dynamic detach asks;
        // it also ends the subscription.
        unsafe { (lib().cuptiFinalize)() };
    }
}

/// CUPTI as `start` loaded it: every other function here runs only after `start` succeeded.
fn lib() -> &'static Cupti {
    cupti().expect("CUPTI is loaded before anything is traced")
}

/// Whether CUPTI is attached now.
pub(crate) fn attached() -> bool {
    *ATTACHED.read().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` while CUPTI is attached (and stays so), or not at all.
#[inline]
pub(crate) fn while_attached<R>(f: impl FnOnce() -> R) -> Option<R> {
    let attached = ATTACHED.read().unwrap_or_else(|e| e.into_inner());
    attached.then(f)
}

/// Hands over every buffer CUPTI holds (`forced`: also those still being filled).
pub(crate) fn flush(forced: bool) {
    // SAFETY: plain call; CUPTI calls `buffer_completed` before returning.
    while_attached(|| unsafe { (lib().cuptiActivityFlushAll)(if forced { FLUSH_FORCED } else { 0 }) });
}

/// CUPTI's clock now, in ns; call it only inside [`while_attached`].
pub(crate) fn timestamp() -> u64 {
    let mut ts = 0u64;
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { (lib().cuptiGetTimestamp)(&mut ts) };
    ts
}

/// Names `instance` as the launcher of this thread's next launches; the
/// attachment it did so in, for [`pop_stage`] (`None`: CUPTI is detached).
#[inline]
pub(crate) fn push_stage(instance: u64) -> Option<u64> {
    while_attached(|| {
        // SAFETY: plain call with an id; CUPTI keeps a per-thread stack.
        unsafe { (lib().cuptiActivityPushExternalCorrelationId)(EXTERNAL_KIND, instance) };
        ATTACHMENT.load(Relaxed)
    })
}

/// Undoes a [`push_stage`] made in `attachment`: a later attachment's stack never held it.
#[inline]
pub(crate) fn pop_stage(attachment: u64) {
    while_attached(|| {
        if ATTACHMENT.load(Relaxed) == attachment {
            let mut last = 0u64;
            // SAFETY: `last` is a valid out-pointer; popping an empty stack is an error return.
            unsafe { (lib().cuptiActivityPopExternalCorrelationId)(EXTERNAL_KIND, &mut last) };
        }
    });
}

/// What CUPTI delivered since the last call: the whole of each attachment
/// that ended meanwhile, oldest first, then the current one's so far.
pub(crate) fn take() -> (Vec<Delivery>, Delivery) {
    let sealed = std::mem::take(&mut *SEALED.lock().unwrap_or_else(|e| e.into_inner()));
    (sealed, std::mem::take(&mut *INBOX.lock().unwrap_or_else(|e| e.into_inner())))
}

fn check(r: CUptiResult) -> Result<(), String> {
    if r == CUptiResult::CUPTI_SUCCESS {
        return Ok(());
    }
    let mut text: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: CUPTI returns a pointer to a static string, or leaves it null.
    unsafe { (lib().cuptiGetResultString)(r, &mut text) };
    if text.is_null() {
        return Err(format!("{r:?}"));
    }
    // SAFETY: non-null and NUL-terminated, static.
    Err(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn buffer_requested(buffer: *mut *mut u8, size: *mut usize, max_records: *mut usize) {
    // CUPTI wants 8-byte alignment: a boxed u64 slice has it. Freed in `buffer_completed`.
    let words = vec![0u64; BUFFER_BYTES / 8].into_boxed_slice();
    // SAFETY: CUPTI passes valid out-pointers.
    unsafe {
        *buffer = Box::into_raw(words) as *mut u8;
        *size = BUFFER_BYTES;
        *max_records = 0;
    }
}

unsafe extern "C" fn buffer_completed(
    context: cudarc::driver::sys::CUcontext,
    stream: u32,
    buffer: *mut u8,
    _size: usize,
    valid: usize,
) {
    let mut got = Delivery::default();
    let mut record: *mut cupti::CUpti_Activity = std::ptr::null_mut();
    // SAFETY: `buffer` holds `valid` bytes of records; CUPTI walks them and
    // hands out pointers to whole records, each starting with its kind.
    while unsafe { (lib().cuptiActivityGetNextRecord)(buffer, valid, &mut record) } == CUptiResult::CUPTI_SUCCESS {
        let kind = unsafe { *(record as *const u32) };
        match kind {
            KIND_CONCURRENT_KERNEL => got.activities.push(unsafe { kernel(&*(record as *const KernelHead)) }),
            KIND_MEMCPY => got.activities.push(unsafe { memcpy(&*(record as *const MemcpyHead)) }),
            KIND_MEMSET => got.activities.push(unsafe { memset(&*(record as *const MemsetHead)) }),
            KIND_EXTERNAL_CORRELATION => {
                let r = unsafe { &*(record as *const ExternalCorrelation) };
                if r.external_kind == EXTERNAL_KIND as u32 {
                    got.external.push((r.correlation_id, r.external_id));
                }
            }
            KIND_RUNTIME | KIND_DRIVER => {
                let r = unsafe { &*(record as *const ApiHead) };
                got.api_starts.push((r.correlation_id, r.start));
            }
            _ => {}
        }
    }
    let mut dropped = 0usize;
    // SAFETY: `dropped` is a valid out-pointer.
    unsafe { (lib().cuptiActivityGetNumDroppedRecords)(context, stream, &mut dropped) };
    let mut inbox = INBOX.lock().unwrap_or_else(|e| e.into_inner());
    inbox.activities.extend(got.activities);
    inbox.external.extend(got.external);
    inbox.api_starts.extend(got.api_starts);
    inbox.dropped += dropped as u64;
    drop(inbox);
    // SAFETY: `buffer` came from `buffer_requested`, as a boxed slice of this length.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buffer as *mut u64, BUFFER_BYTES / 8)) });
}

fn kernel(r: &KernelHead) -> RawActivity {
    RawActivity {
        correlation: r.correlation_id,
        work: GpuWork::Kernel,
        name: kernel_name(r.name),
        start: r.start,
        end: r.end,
        device: r.device_id,
        stream: r.stream_id,
        bytes: 0,
        shape: Some(LaunchShape { grid: r.grid.map(|v| v.max(0) as u32), block: r.block.map(|v| v.max(0) as u32) }),
    }
}

fn memcpy(r: &MemcpyHead) -> RawActivity {
    // CUpti_ActivityMemcpyKind: 1 HtoD, 2 DtoH, 8 DtoD; arrays, host-to-host and peer are "other".
    let copy = match r.copy_kind {
        1 => CopyKind::HostToDevice,
        2 => CopyKind::DeviceToHost,
        8 => CopyKind::DeviceToDevice,
        _ => CopyKind::Other,
    };
    let name = match copy {
        CopyKind::HostToDevice => "Memcpy HtoD",
        CopyKind::DeviceToHost => "Memcpy DtoH",
        CopyKind::DeviceToDevice => "Memcpy DtoD",
        CopyKind::Other => "Memcpy",
    };
    RawActivity {
        correlation: r.correlation_id,
        work: GpuWork::Copy(copy),
        name: dynamic_name(name),
        start: r.start,
        end: r.end,
        device: r.device_id,
        stream: r.stream_id,
        bytes: r.bytes,
        shape: None,
    }
}

fn memset(r: &MemsetHead) -> RawActivity {
    RawActivity {
        correlation: r.correlation_id,
        work: GpuWork::Memset,
        name: dynamic_name("Memset"),
        start: r.start,
        end: r.end,
        device: r.device_id,
        stream: r.stream_id,
        bytes: r.bytes,
        shape: None,
    }
}

/// The id of a kernel's demangled name, looked up once per name pointer.
fn kernel_name(ptr: *const std::ffi::c_char) -> u32 {
    let mut names = KERNEL_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    *names.entry(ptr as usize).or_insert_with(|| {
        if ptr.is_null() {
            return dynamic_name("kernel");
        }
        // SAFETY: CUPTI's kernel names are NUL-terminated and valid while the module is loaded.
        let mangled = unsafe { CStr::from_ptr(ptr) }.to_string_lossy();
        dynamic_name(&demangle(&mangled))
    })
}

/// A C++ kernel name as people read it; other names as they are.
pub(crate) fn demangle(name: &str) -> String {
    cpp_demangle::Symbol::new(name).ok().and_then(|s| s.demangle().ok()).unwrap_or_else(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_kernels_and_keeps_c_names() {
        assert_eq!(demangle("_Z9undistortPKfPfii"), "undistort(float const*, float*, int, int)");
        assert_eq!(demangle("shifted"), "shifted");
    }

    #[test]
    fn record_heads_match_cuptis_layouts() {
        // Against the bindings generated from cupti_activity.h, across record versions.
        use std::mem::offset_of;
        macro_rules! same {
            ($head:ident, $full:ty, $($a:ident = $b:ident),+) => {
                $(assert_eq!(offset_of!($head, $a), offset_of!($full, $b), stringify!($full.$b));)+
            };
        }
        same!(
            KernelHead,
            cupti::CUpti_ActivityKernel9,
            start = start,
            end = end,
            device_id = deviceId,
            stream_id = streamId,
            grid = gridX,
            block = blockX,
            correlation_id = correlationId,
            name = name
        );
        same!(KernelHead, cupti::CUpti_ActivityKernel10, start = start, correlation_id = correlationId, name = name);
        same!(
            MemcpyHead,
            cupti::CUpti_ActivityMemcpy5,
            copy_kind = copyKind,
            bytes = bytes,
            start = start,
            end = end,
            device_id = deviceId,
            stream_id = streamId,
            correlation_id = correlationId
        );
        same!(MemcpyHead, cupti::CUpti_ActivityMemcpy6, bytes = bytes, correlation_id = correlationId);
        same!(
            MemsetHead,
            cupti::CUpti_ActivityMemset4,
            bytes = bytes,
            start = start,
            end = end,
            device_id = deviceId,
            stream_id = streamId,
            correlation_id = correlationId
        );
        same!(
            ApiHead,
            cupti::CUpti_ActivityAPI,
            cbid = cbid,
            start = start,
            end = end,
            thread_id = threadId,
            correlation_id = correlationId
        );
        same!(
            ExternalCorrelation,
            cupti::CUpti_ActivityExternalCorrelation,
            external_kind = externalKind,
            external_id = externalId,
            correlation_id = correlationId
        );
    }
}
