//! Reading a native stageprof file through the same decoder the recorder uses.

use std::io::{Read, Seek, SeekFrom};

use crate::native::{Chunk, NativeError, NativeReader};
use crate::wire::TickScale;
use crate::{Catalog, HostInfo, ProfileSink};

use super::decode::RecordDecoder;
use super::gpu_join::{GpuJoin, GpuLedger};
use crate::{RunInfo, Warning};

/// How far past the names seen so far a names chunk may start.
const MAX_NAME_GAP: usize = 1 << 16;

/// What a native file holds besides its events.
pub struct NativeProfile {
    /// Names, paths and threads of the profile.
    pub catalog: Catalog,
    /// What is known of the run.
    pub run: RunInfo,
}

/// Meta key the recorder writes when the profile holds GPU records.
pub const GPU_RECORDS_KEY: &str = "gpu_records";

/// Meta key of a part of a bounded profile (`max_disk_mb`): the part's number.
pub const BOUNDED_PART_KEY: &str = "bounded_part";

/// Streams a native file into `sink`; memory stays bounded by the number of
/// distinct stages (and, for profiles with GPU records, by the number of
/// GPU activities, read in a first pass). A truncated or corrupt tail becomes
/// a warning in the returned [`RunInfo`]: everything before it is still delivered.
pub fn read_native<R: Read + Seek>(input: R, sink: &mut dyn ProfileSink) -> Result<NativeProfile, NativeError> {
    read_native_parts(vec![input], sink)
}

/// Streams the parts of one bounded run (`max_disk_mb`: `profile.<n>.stgp`),
/// in the order they were written, into `sink` as one profile, as
/// [`read_native`] does one file. Where a part was not kept between two
/// that were, the calls open at the end of the first are closed there,
/// marked unfinished, and ends in the next whose begins were in the part
/// not kept are left out; the warnings say which parts the figures cover.
pub fn read_native_parts<R: Read + Seek>(
    mut parts: Vec<R>,
    sink: &mut dyn ProfileSink,
) -> Result<NativeProfile, NativeError> {
    let mut ledger = GpuLedger::default();
    let mut gpu_records = false;
    for part in &mut parts {
        gpu_records |= read_gpu_ledger(&mut *part, &mut ledger)?;
    }
    let mut join = (gpu_records && !ledger.is_empty()).then(|| GpuJoin::new(ledger));
    if let Some(join) = &join {
        join.emit_memory_levels(sink);
    }
    let mut catalog = Catalog::default();
    let mut run = RunInfo { source: "stageprof".into(), end_reason: "truncated".into(), ..RunInfo::default() };
    let mut meta: Vec<(String, String)> = Vec::new();
    let mut decoder: Option<RecordDecoder> = None;
    let mut end_ticks = None;
    // Bounded parts read, and whether one was missing between two of them.
    let (mut kept, mut gaps) = (Vec::new(), false);
    // The run the first part is of: (pid, start_unix_ns).
    let mut run_of_first: Option<(Option<String>, Option<String>)> = None;
    for mut input in parts {
        input.seek(SeekFrom::Start(0)).map_err(NativeError::Io)?;
        let mut reader = NativeReader::new(input)?;
        loop {
            let chunk = match reader.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e @ (NativeError::Truncated { .. } | NativeError::Corrupt { .. })) => {
                    run.warnings.push(Warning::ReadStopped { problem: e.to_string(), events_before: None });
                    break;
                }
                Err(e) => return Err(e),
            };
            match chunk {
                Chunk::Meta(pairs) => {
                    if let Some(part) = get(&pairs, BOUNDED_PART_KEY).and_then(|v| v.parse::<u64>().ok()) {
                        let this_run =
                            (get(&pairs, "pid").map(str::to_owned), get(&pairs, "start_unix_ns").map(str::to_owned));
                        if run_of_first.get_or_insert_with(|| this_run.clone()) != &this_run {
                            let first = kept.first().copied().unwrap_or(part);
                            return Err(NativeError::PartsOfDifferentRuns { first, other: part });
                        }
                        // A run's first kept part after part 0 starts with the ends of calls begun before it.
                        gaps |= kept.is_empty() && part > 0;
                        if kept.last().is_some_and(|&last: &u64| part != last + 1) {
                            gaps = true;
                            if let Some(d) = &mut decoder {
                                let at = end_ticks.map(|t| d.scale.ns(t));
                                d.nester.close_open(&catalog, at, sink);
                            }
                        }
                        kept.push(part);
                    }
                    meta.extend(pairs);
                    new_decoder(&mut decoder, &meta, &mut join);
                }
                Chunk::Names { first_id, names } => {
                    // Names arrive in order; an id far past them is corruption, not a reason to allocate.
                    if first_id as usize > catalog.name_count() + MAX_NAME_GAP {
                        run.warnings.push(Warning::CorruptNames { before_byte: reader.offset(), first_id });
                        continue;
                    }
                    for (i, n) in names.iter().enumerate() {
                        catalog.set_name(first_id.saturating_add(i as u32), n);
                    }
                }
                Chunk::Thread(t) => catalog.add_thread(t),
                Chunk::Records { thread, words } => {
                    let at = reader.offset();
                    let decoder = new_decoder(&mut decoder, &meta, &mut join);
                    if let Err(e) = decoder.feed(&mut catalog, thread, &words, sink) {
                        let problem = e.message.to_string();
                        run.warnings.push(Warning::BadRecord { chunk_end_byte: at, word: e.word, problem });
                    }
                }
                Chunk::Pass { began } => new_decoder(&mut decoder, &meta, &mut join).passed(began, &catalog, sink),
                Chunk::End { dropped_records, end_ticks: t, reason } => {
                    run.dropped_records = dropped_records;
                    run.end_reason = reason;
                    end_ticks = Some(t);
                }
            }
        }
    }
    if let Some(mut decoder) = decoder {
        let end_ns = end_ticks.map(|t| decoder.scale.ns(t));
        decoder.finish(&catalog, end_ns, sink);
        let unclaimed = Warning::OutsideStages { count: decoder.nester.unclaimed_gpu() as u64, busy_ns: None };
        // Across a part not kept, ends whose begins it held have nothing to match: no fault of the program's.
        let unmatched = decoder.nester.unmatched_ends();
        let unmatched = Warning::UnmatchedStageEnds { count: if gaps { 0 } else { unmatched } };
        run.warnings.extend([unclaimed, unmatched].into_iter().filter(|w| w.count() > 0));
        run.warnings.extend(decoder.join_warnings());
        if let Some((count, path)) = decoder.nester.stream_changed() {
            let stage = path.map_or_else(|| "a frame".to_owned(), |p| catalog.path_names(p).join("/"));
            run.warnings.push(Warning::StreamChanged { stage, count });
        }
        run.duration_ns = end_ns.unwrap_or(decoder.nester.last_ns());
    }
    apply_meta(&mut run, &meta);
    if !kept.is_empty() {
        run.warnings.push(Warning::BoundedParts { parts: kept });
    }
    Ok(NativeProfile { catalog, run })
}

/// The decoder, made on first need, joining GPU results if there are any.
fn new_decoder<'a>(
    decoder: &'a mut Option<RecordDecoder>,
    meta: &[(String, String)],
    join: &mut Option<GpuJoin>,
) -> &'a mut RecordDecoder {
    decoder.get_or_insert_with(|| {
        let mut d = RecordDecoder::new(scale_from(meta));
        if let Some(join) = join.take() {
            d.nester.join_gpu(join);
        }
        d
    })
}

/// First pass: the GPU results of a profile that says it has some, added
/// to `ledger`; whether it says so. Damage is left for the second pass to report.
fn read_gpu_ledger<R: Read>(input: R, ledger: &mut GpuLedger) -> Result<bool, NativeError> {
    let mut reader = NativeReader::new(input)?;
    let mut scale = None;
    while let Ok(Some(chunk)) = reader.next_chunk() {
        match chunk {
            Chunk::Meta(pairs) => {
                if get(&pairs, GPU_RECORDS_KEY) != Some("true") && scale.is_none() {
                    return Ok(false);
                }
                scale.get_or_insert_with(|| scale_from(&pairs));
            }
            Chunk::Records { thread, words } => {
                let scale = scale.unwrap_or_else(|| scale_from(&[]));
                let _ = crate::wire::decode(&words, |r| ledger.add(&r, thread, scale));
            }
            _ => {}
        }
    }
    Ok(scale.is_some())
}

fn get<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn scale_from(meta: &[(String, String)]) -> TickScale {
    let num = |k| get(meta, k).and_then(|v| v.parse().ok());
    TickScale {
        ticks_per_second: num("ticks_per_second").unwrap_or(1_000_000_000),
        start_ticks: num("start_ticks").unwrap_or(0),
    }
}

fn apply_meta(run: &mut RunInfo, meta: &[(String, String)]) {
    if let Some(source) = get(meta, "source") {
        run.source = source.to_owned();
    }
    run.host = HostInfo::from_pairs(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let num = |k| get(meta, k).and_then(|v| v.parse::<u64>().ok());
    run.start_unix_ns = num("start_unix_ns").unwrap_or(0);
    run.pid = num("pid").unwrap_or(0) as u32;
    run.rank = num("rank").map(|r| r as u32);
    run.peak_rss_bytes = num("peak_rss_bytes");
    run.cpu_time = get(meta, "cpu_time") == Some("true");
    run.memory_tracked = get(meta, "memory_tracked") == Some("true");
}
