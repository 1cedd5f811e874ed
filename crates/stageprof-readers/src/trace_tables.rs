//! First pass over a Chrome/Kineto trace: the events stageprof needs, kept
//! in compact tables (a few dozen bytes an event, against hundreds in the
//! file); everything else is skipped as it streams by.

use std::collections::HashMap;

use stageprof_model::ingest::gpu_work::Activity;
use stageprof_model::ingest::MemorySample;
use stageprof_model::{Catalog, CopyKind, GpuWork, LaunchShape, NameId, SpanKind, ThreadInfo};

use crate::json_scan::{Event, KeyFinder, Members, Raw, ScanError, Scanner};
use crate::plausibility::{Implausible, Offender, Plausibility, LEARNING_EVENTS};

/// A stage or frame call on a CPU thread. Times are nanoseconds as in the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub thread: u32,
    pub kind: SpanKind,
    pub name: NameId,
    pub start: i64,
    pub end: i64,
}

/// What launched GPU work: the thread and time of the runtime or driver call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Launch {
    pub thread: u32,
    /// How long the launch call took, in ns (saturated; it fits the padding).
    pub dur: u32,
    pub ts: i64,
}

impl Launch {
    fn end(&self) -> i64 {
        self.ts.saturating_add(i64::from(self.dur))
    }
}

/// Launches by correlation id. Ids can repeat (a profiler restarted within
/// one trace reuses them): then each GPU activity joins the launch with its
/// id that precedes it most closely in time.
#[derive(Default)]
pub(crate) struct Launches {
    /// Each id's first launch.
    first: HashMap<i64, Launch>,
    /// Every launch of an id seen more than once, in time order once sorted.
    repeated: HashMap<i64, Vec<Launch>>,
}

impl Launches {
    /// A launch call. A call that starts inside the one before it with the
    /// same id (a runtime call handing on to a driver call or another
    /// thread, as MTIA's runtime writes them) is part of the same launch,
    /// not a repeat.
    pub(crate) fn insert(&mut self, correlation: i64, launch: Launch) {
        let Some(&first) = self.first.get(&correlation) else {
            self.first.insert(correlation, launch);
            return;
        };
        let list = self.repeated.entry(correlation).or_insert_with(|| vec![first]);
        let last = *list.last().expect("holds the first");
        if (last.ts..=last.end()).contains(&launch.ts) {
            if list.len() == 1 {
                self.repeated.remove(&correlation);
            }
            return;
        }
        list.push(launch);
    }

    pub(crate) fn sort(&mut self) {
        for list in self.repeated.values_mut() {
            list.sort_by_key(|l| l.ts);
        }
    }

    /// Correlation ids that more than one launch carried.
    pub(crate) fn repeated_ids(&self) -> usize {
        self.repeated.len()
    }

    /// The lowest correlation id of any launch.
    pub(crate) fn first_id(&self) -> Option<i64> {
        self.first.keys().min().copied()
    }

    /// The launch of work with id `correlation` that started at `start`.
    pub(crate) fn of(&self, correlation: i64, start: i64) -> Option<Launch> {
        let Some(list) = self.repeated.get(&correlation) else { return self.first.get(&correlation).copied() };
        // The latest launch at or before the work's start; if none, the earliest.
        let after = list.partition_point(|l| l.ts <= start);
        Some(list[after.saturating_sub(1)])
    }
}

/// The outermost operators of threads with no stage of their own, which
/// name the GPU work such a thread launches outside every stage (a
/// communication thread's `record_param_comms`, a loader's `aten::copy_`).
/// A thread's list is dropped once it shows a stage, so memory goes only to
/// threads that may need it.
/// An operator kept by [`TopLevelOps`]: start, end, name.
type TopOp = (i64, i64, NameId);

#[derive(Default)]
pub(crate) struct TopLevelOps {
    /// Per thread: `(start, end, name)`, each starting after the last one ended
    /// (operators come in time order per thread; out-of-order ones are kept
    /// too); `None` once the thread showed a stage.
    by_thread: HashMap<u32, Option<Vec<TopOp>>>,
}

impl TopLevelOps {
    /// Whether an operator on `thread` from `start` to `end` is outside the last one kept.
    fn is_new(&self, thread: u32, start: i64) -> bool {
        match self.by_thread.get(&thread) {
            None => true,
            Some(None) => false,
            Some(Some(list)) => list.last().is_none_or(|&(s, e, _)| start >= e || start < s),
        }
    }

    fn push(&mut self, thread: u32, start: i64, end: i64, name: NameId) {
        if let Some(list) = self.by_thread.entry(thread).or_insert_with(|| Some(Vec::new())) {
            list.push((start, end, name));
        }
    }

    fn thread_has_stages(&mut self, thread: u32) {
        self.by_thread.insert(thread, None);
    }

    pub(crate) fn sort(&mut self) {
        for list in self.by_thread.values_mut().flatten() {
            list.sort_unstable();
        }
    }

    /// The outermost operator of `thread` open at `ts`, if it is kept.
    pub(crate) fn at(&self, thread: u32, ts: i64) -> Option<NameId> {
        let list = self.by_thread.get(&thread)?.as_ref()?;
        let after = list.partition_point(|&(s, _, _)| s <= ts);
        list[..after].iter().rev().take_while(|&&(_, e, _)| e >= ts).last().map(|&(_, _, n)| n)
    }
}

/// A CPU operator that autograd links forward to backward: its `Sequence
/// number`, and whether it runs the backward (a non-zero `Fwd thread id`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AutogradOp {
    pub thread: u32,
    pub start: i64,
    pub end: i64,
    pub seq: i64,
    pub backward: bool,
}

/// A counter sample (`ph: "C"`), one per value in its args.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counter {
    pub thread: u32,
    pub name: NameId,
    pub ts: i64,
    pub value: f64,
}

/// Finders of the args members the first pass reads, built once.
struct ArgKeys {
    correlation: KeyFinder,
    bytes: KeyFinder,
    sequence: KeyFinder,
    grid: KeyFinder,
    block: KeyFinder,
    size: KeyFinder,
    direction: KeyFinder,
}

impl Default for ArgKeys {
    fn default() -> Self {
        ArgKeys {
            correlation: KeyFinder::new("correlation"),
            bytes: KeyFinder::new("bytes"),
            sequence: KeyFinder::new("Sequence number"),
            grid: KeyFinder::new("grid"),
            block: KeyFinder::new("block"),
            size: KeyFinder::new("size"),
            direction: KeyFinder::new("direction"),
        }
    }
}

/// Everything the first pass keeps.
#[derive(Default)]
pub(crate) struct Tables {
    keys: ArgKeys,
    pub catalog: Catalog,
    names: HashMap<Box<str>, NameId>,
    /// Threads by `pid` and `tid` text (joined by a 0 byte).
    threads: HashMap<Vec<u8>, u32>,
    thread_key: Vec<u8>,
    /// The last thread looked up, and its key: events come in runs of one thread.
    last_thread: Option<u32>,
    last_thread_key: Vec<u8>,
    pub calls: Vec<Call>,
    pub launches: Launches,
    pub activities: Vec<Activity>,
    /// PyTorch's allocator events, with their device type (0: host, 1: CUDA).
    pub memory: Vec<(u8, MemorySample)>,
    pub counters: Vec<Counter>,
    pub autograd_ops: Vec<AutogradOp>,
    pub top_level_ops: TopLevelOps,
    /// Intervals the host spent in a synchronization or blocking copy, and
    /// device-side sync events (`cuda_sync`).
    pub syncs: Vec<(i64, i64)>,
    /// Open `B` events per thread, waiting for their `E`.
    open_begins: HashMap<u32, Vec<(NameId, i64)>>,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Whether it looked like a PyTorch profiler trace (Kineto categories seen).
    pub kineto: bool,
    pub events: u64,
    pub problems: Problems,
    pub plausibility: Plausibility,
    /// Events of another accelerator's categories that stageprof cannot read, by category.
    pub unread_device_events: Vec<(String, u64)>,
}

/// Counts of things that were off in the file, for warnings.
#[derive(Default, Debug)]
pub(crate) struct Problems {
    pub unmatched_end: u64,
    pub unclosed_begin: u64,
}

/// What the first pass found besides the tables.
pub(crate) struct ScanOutcome {
    /// Why scanning stopped early, if it did (everything before was read).
    pub stopped: Option<ScanError>,
    pub repaired: u64,
    pub skipped: u64,
    pub base_time_ns: Option<i64>,
    pub device_names: Vec<String>,
    /// `distributedInfo.rank`.
    pub rank: Option<u32>,
}

/// Categories whose complete events are not stages (Kineto's and older PyTorch's).
fn kineto_category(cat: &[u8]) -> Option<KinetoCat> {
    // Lower-cased on the stack: categories are short, and this runs for every event.
    let mut buf = [0u8; 24];
    let lower = buf.get_mut(..cat.len())?;
    for (l, c) in lower.iter_mut().zip(cat) {
        *l = c.to_ascii_lowercase();
    }
    let lower: &[u8] = lower;
    Some(match lower {
        b"user_annotation" => KinetoCat::Annotation,
        // XPU (through Kineto's plugin) writes its device work under CUDA's categories.
        b"kernel" => KinetoCat::Gpu(GpuWork::Kernel),
        b"gpu_memcpy" | b"memcpy" => KinetoCat::Gpu(GpuWork::Copy(CopyKind::Other)),
        b"gpu_memset" | b"memset" => KinetoCat::Gpu(GpuWork::Memset),
        b"mtia_ccp_events" => KinetoCat::MtiaDevice,
        b"cuda_runtime"
        | b"cuda_driver"
        | b"runtime"
        | b"driver"
        | b"mtia_runtime"
        | b"xpu_runtime"
        | b"privateuse1_runtime"
        | b"privateuse1_driver" => KinetoCat::Launch,
        b"cpu_op" | b"operator" => KinetoCat::Operator,
        b"cuda_sync" => KinetoCat::Sync,
        b"gpu_user_annotation"
        | b"cpu_instant_event"
        | b"python_function"
        | b"overhead"
        | b"trace"
        | b"ac2g"
        | b"fwdbwd"
        | b"async"
        | b"async_cpu_to_gpu"
        | b"collective_comm"
        | b"cuda_profiler_range"
        | b"external_correlation"
        | b"glow_runtime" => KinetoCat::Other,
        other if [&b"xpu_"[..], b"mtia_", b"privateuse1", b"hpu_"].iter().any(|p| other.starts_with(p)) => {
            KinetoCat::UnreadDevice
        }
        _ => return None,
    })
}

enum KinetoCat {
    Annotation,
    Gpu(GpuWork),
    /// MTIA's device events: work, copies (`dma_request`) and event waits.
    MtiaDevice,
    Launch,
    Operator,
    Sync,
    Other,
    /// Another accelerator's events whose layout stageprof does not know: counted and named.
    UnreadDevice,
}

/// Runtime and driver calls that block the host until the GPU catches up.
fn is_blocking_call(name: &[u8]) -> bool {
    let contains = |needle: &[u8]| memchr::memmem::find(name, needle).is_some();
    contains(b"Synchronize")
        || name == b"cudaMemcpy"
        || name == b"cudaMemcpy2D"
        || name.starts_with(b"cuMemcpyDtoH")
        || name.starts_with(b"cuMemcpyHtoD") && !contains(b"Async")
}

fn copy_kind(name: &str) -> CopyKind {
    if name.contains("HtoD") {
        CopyKind::HostToDevice
    } else if name.contains("DtoH") {
        CopyKind::DeviceToHost
    } else if name.contains("DtoD") {
        CopyKind::DeviceToDevice
    } else {
        CopyKind::Other
    }
}

impl Tables {
    pub(crate) fn name(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.catalog.set_name(id, name);
        self.names.insert(name.into(), id);
        id
    }

    fn thread(&mut self, pid: Raw<'_>, tid: Raw<'_>) -> u32 {
        self.thread_key.clear();
        self.thread_key.extend_from_slice(pid.bytes());
        self.thread_key.push(0);
        self.thread_key.extend_from_slice(tid.bytes());
        if let Some(last) = self.last_thread.filter(|_| self.last_thread_key == self.thread_key) {
            return last;
        }
        if let Some(&i) = self.threads.get(self.thread_key.as_slice()) {
            self.last_thread = Some(i);
            self.last_thread_key.clone_from(&self.thread_key);
            return i;
        }
        let index = self.threads.len() as u32;
        self.threads.insert(self.thread_key.clone(), index);
        let os_tid = tid.int().filter(|t| *t >= 0).unwrap_or(0) as u64;
        self.catalog.add_thread(ThreadInfo { index, os_tid, name: String::new() });
        index
    }

    fn see_time(&mut self, start: i64, end: i64) {
        self.first_ts = Some(self.first_ts.map_or(start, |f| f.min(start)));
        self.last_ts = Some(self.last_ts.map_or(end, |l| l.max(end)));
    }

    /// Takes one event into the tables, unless its times are implausible.
    fn take(&mut self, e: &Event<'_>) {
        self.events += 1;
        let ph = e.phase();
        if ph == b'M' {
            return self.metadata(e);
        }
        let timed = matches!(ph, b'X' | b'B' | b'E' | b'i' | b'I' | b'C');
        let times = event_times(e);
        let checked = times.ok_or(Implausible::NoTime).and_then(|(s, t)| self.plausibility.check(s, t).map(|_| (s, t)));
        let (ts, end) = match checked {
            Ok(times) => times,
            Err(why) => {
                if timed {
                    self.plausibility.leave_out(why, || Offender {
                        category: e.cat.text().into_owned(),
                        name: e.name.text().into_owned(),
                        offset: e.offset,
                    });
                }
                return;
            }
        };
        let cat = kineto_category(e.cat.bytes());
        self.kineto |= cat.is_some();
        match ph {
            b'X' => {
                self.see_time(ts, end);
                self.complete(e, cat, ts, end);
            }
            b'B' => {
                self.see_time(ts, ts);
                let (thread, name) = (self.thread(e.pid, e.tid), self.name(&e.name.text()));
                self.open_begins.entry(thread).or_default().push((name, ts));
            }
            b'E' => {
                self.see_time(ts, ts);
                let thread = self.thread(e.pid, e.tid);
                match self.open_begins.get_mut(&thread).and_then(Vec::pop) {
                    Some((name, start)) => {
                        self.calls.push(Call { thread, kind: SpanKind::Stage, name, start, end: ts.max(start) })
                    }
                    None => self.problems.unmatched_end += 1,
                }
            }
            b'i' | b'I' if e.name.bytes() == b"[memory]" => self.memory_event(e, ts),
            b'C' => self.counter(e, ts),
            _ => {}
        }
    }

    /// A kernel's `grid` and `block` args, when both are three numbers.
    fn launch_shape(&self, args: Raw<'_>) -> Option<LaunchShape> {
        let dims = |finder: &KeyFinder| -> Option<[u32; 3]> {
            let elements = finder.get(args)?.elements();
            let mut out = [0u32; 3];
            for (o, e) in out.iter_mut().zip(&elements) {
                *o = u32::try_from(e.int()?).ok()?;
            }
            (elements.len() == 3).then_some(out)
        };
        Some(LaunchShape { grid: dims(&self.keys.grid)?, block: dims(&self.keys.block)? })
    }

    fn complete(&mut self, e: &Event<'_>, cat: Option<KinetoCat>, start: i64, end: i64) {
        match cat {
            None | Some(KinetoCat::Annotation) => {
                let name = e.name.text();
                let kind = if name.starts_with("ProfilerStep#") { SpanKind::Frame } else { SpanKind::Stage };
                let (thread, name) = (self.thread(e.pid, e.tid), self.name(&name));
                self.top_level_ops.thread_has_stages(thread);
                self.calls.push(Call { thread, kind, name, start, end });
            }
            Some(KinetoCat::Sync) => self.syncs.push((start, end)),
            Some(KinetoCat::Launch) => {
                if is_blocking_call(e.name.bytes()) {
                    self.syncs.push((start, end));
                }
                if let Some(c) = self.keys.correlation.get(e.args).and_then(|c| c.int()) {
                    let thread = self.thread(e.pid, e.tid);
                    let dur = u32::try_from(end - start).unwrap_or(u32::MAX);
                    self.launches.insert(c, Launch { thread, dur, ts: start });
                }
            }
            Some(KinetoCat::Gpu(kind)) => {
                let kind = match kind {
                    GpuWork::Copy(_) => GpuWork::Copy(copy_kind(&e.name.text())),
                    k => k,
                };
                let (bytes, shape) = match kind {
                    GpuWork::Kernel => (0, self.launch_shape(e.args)),
                    _ => (self.keys.bytes.get(e.args).and_then(|b| b.int()).unwrap_or(0).max(0) as u64, None),
                };
                self.device_work(e, kind, start, end, bytes, shape);
            }
            Some(KinetoCat::Operator) => {
                let thread = self.thread(e.pid, e.tid);
                if self.top_level_ops.is_new(thread, start) {
                    let name = self.name(&e.name.text());
                    self.top_level_ops.push(thread, start, end, name);
                }
                // Most operators have no sequence number: skip them without parsing their args.
                if !self.keys.sequence.in_text(e.args) {
                    return;
                }
                let args = Members::of(e.args);
                if let Some(seq) = args.get("Sequence number").and_then(|v| v.int()) {
                    let backward = args.get("Fwd thread id").and_then(|v| v.int()).is_some_and(|t| t != 0);
                    self.autograd_ops.push(AutogradOp { thread, start, end, seq, backward });
                }
            }
            Some(KinetoCat::MtiaDevice) => self.mtia_device_event(e, start, end),
            Some(KinetoCat::UnreadDevice) => {
                let cat = e.cat.bytes();
                match self.unread_device_events.iter_mut().find(|(c, _)| c.as_bytes() == cat) {
                    Some((_, n)) => *n += 1,
                    None => self.unread_device_events.push((e.cat.text().into_owned(), 1)),
                }
            }
            Some(KinetoCat::Other) => {}
        }
    }

    /// MTIA's device events: `dma_request` is a copy (`direction`, `size`),
    /// `event_wait`/`event_record` are the device waiting on or marking a
    /// stream (not work), anything else is a kernel.
    fn mtia_device_event(&mut self, e: &Event<'_>, start: i64, end: i64) {
        let work = match e.name.bytes() {
            b"event_wait" | b"event_record" => return,
            b"dma_request" => {
                let direction = self.keys.direction.get(e.args).map(|d| d.text().into_owned()).unwrap_or_default();
                GpuWork::Copy(match direction.as_str() {
                    "HOST_TO_DEVICE" => CopyKind::HostToDevice,
                    "DEVICE_TO_HOST" => CopyKind::DeviceToHost,
                    "DEVICE_TO_DEVICE" => CopyKind::DeviceToDevice,
                    _ => CopyKind::Other,
                })
            }
            _ => GpuWork::Kernel,
        };
        let bytes = match work {
            GpuWork::Copy(_) => self.keys.size.get(e.args).and_then(|b| b.int()).unwrap_or(0).max(0) as u64,
            _ => 0,
        };
        self.device_work(e, work, start, end, bytes, None);
    }

    /// One piece of device work; `correlation` joins it to its launch.
    fn device_work(
        &mut self,
        e: &Event<'_>,
        work: GpuWork,
        start: i64,
        end: i64,
        bytes: u64,
        shape: Option<LaunchShape>,
    ) {
        let correlation = self.keys.correlation.get(e.args).and_then(|c| c.int()).unwrap_or(-1);
        let name = self.name(&e.name.text());
        let number = |raw: Raw<'_>| raw.int().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let (device, stream) = (number(e.pid), number(e.tid));
        self.activities.push(Activity { correlation, device, stream, work, name, start, end, bytes, shape });
    }

    fn memory_event(&mut self, e: &Event<'_>, ts: i64) {
        let args = Members::of(e.args);
        let get = |k: &str| args.get(k).and_then(|v| v.int());
        let (Some(total), Some(device_type)) = (get("Total Allocated"), get("Device Type")) else { return };
        let sample = MemorySample {
            ts,
            device: get("Device Id").unwrap_or(-1),
            total,
            bytes: get("Bytes").unwrap_or(0),
            reserved: get("Total Reserved"),
        };
        self.memory.push((device_type.clamp(0, 255) as u8, sample));
    }

    fn counter(&mut self, e: &Event<'_>, ts: i64) {
        let base = e.name.text().into_owned();
        let thread = self.thread(e.pid, e.tid);
        let values: Vec<(String, f64)> =
            e.args.members().into_iter().filter_map(|(k, v)| Some((k.into_owned(), v.float()?))).collect();
        let single = values.len() == 1;
        for (key, value) in values {
            let label = if single && (key == "value" || key == base) { base.clone() } else { format!("{base}.{key}") };
            let name = self.name(&label);
            self.counters.push(Counter { thread, name, ts, value });
        }
        self.see_time(ts, ts);
    }

    fn metadata(&mut self, e: &Event<'_>) {
        if e.name.bytes() == b"thread_name" {
            let thread = self.thread(e.pid, e.tid);
            if let Some(name) = e.arg("name") {
                let os_tid = e.tid.int().filter(|t| *t >= 0).unwrap_or(0) as u64;
                self.catalog.add_thread(ThreadInfo { index: thread, os_tid, name: name.text().into_owned() });
            }
        }
    }

    /// `B` events never closed: closed at the end of the trace, and counted.
    fn close_begins(&mut self) {
        let end = self.last_ts.unwrap_or(0);
        for (thread, open) in std::mem::take(&mut self.open_begins) {
            for (name, start) in open {
                self.problems.unclosed_begin += 1;
                self.calls.push(Call { thread, kind: SpanKind::Stage, name, start, end });
            }
        }
    }
}

/// An event's start and end in nanoseconds: `None` when `ts`, or a `dur`
/// that is present, is not a finite number.
fn event_times(e: &Event<'_>) -> Option<(i64, i64)> {
    let ts = e.ts.micros_as_ns()?;
    let dur = if e.dur.is_null() { 0 } else { e.dur.micros_as_ns()? };
    Some((ts, ts.checked_add(dur)?))
}

/// Events held back while the plausible window is learnt.
#[derive(Default)]
struct HeldEvents {
    /// Their texts as the elements of one JSON array, to be scanned again.
    text: Vec<u8>,
    offsets: Vec<u64>,
    starts: Vec<i64>,
}

impl HeldEvents {
    fn hold(&mut self, offset: u64, start: Option<i64>, text: &[u8]) {
        self.text.push(if self.offsets.is_empty() { b'[' } else { b',' });
        self.text.extend_from_slice(text);
        self.offsets.push(offset);
        self.starts.extend(start);
    }

    /// Fixes the window from the held events' starts, then takes them.
    fn release(&mut self, tables: &mut Tables) {
        tables.plausibility.fix(&mut self.starts);
        if self.offsets.is_empty() {
            return;
        }
        self.text.push(b']');
        let mut again = Scanner::new(self.text.as_slice());
        let mut offsets = self.offsets.iter();
        // They parsed once; read again from memory they parse the same.
        while let (Ok(Some(e)), Some(&offset)) = (again.next_event(), offsets.next()) {
            tables.take(&Event { offset, ..e });
        }
        *self = HeldEvents::default();
    }
}

/// Reads every event of `input` into tables.
///
/// The first [`LEARNING_EVENTS`] timed events are held back (as text) until
/// their median fixes the window of plausible times, then taken like the rest.
pub(crate) fn collect<R: std::io::Read>(input: R) -> (Tables, ScanOutcome) {
    let mut scanner = Scanner::new(input);
    let mut tables = Tables::default();
    let mut held = HeldEvents::default();
    let stopped = loop {
        let event = match scanner.next_event() {
            Ok(Some(e)) => e,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if tables.plausibility.is_fixed() {
            tables.take(&event);
            continue;
        }
        let (offset, start) = (event.offset, event_times(&event).map(|(s, _)| s));
        held.hold(offset, start, scanner.last_event_text());
        if held.starts.len() >= LEARNING_EVENTS {
            held.release(&mut tables);
        }
    };
    if !tables.plausibility.is_fixed() {
        held.release(&mut tables);
    }
    tables.close_begins();
    tables.launches.sort();
    tables.top_level_ops.sort();
    let base_time_ns = scanner.top_level("baseTimeNanoseconds").and_then(|v| v.int());
    let device_names = scanner
        .top_level("deviceProperties")
        .map(|p| p.elements().iter().filter_map(|d| d.get("name")).map(|n| n.text().into_owned()).collect())
        .unwrap_or_default();
    let rank = scanner
        .top_level("distributedInfo")
        .and_then(|d| d.get("rank"))
        .and_then(|r| r.int())
        .and_then(|r| u32::try_from(r).ok());
    let outcome = ScanOutcome {
        stopped,
        repaired: scanner.repaired(),
        skipped: scanner.skipped(),
        base_time_ns,
        device_names,
        rank,
    };
    (tables, outcome)
}
