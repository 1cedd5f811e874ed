//! The timeline a report draws: per track (a thread's stages, a GPU
//! stream's kernels and copies) the longest boxes, so that a trace of any
//! size gives a bounded drawing that still shows where the time went.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use stageprof_model::{Catalog, GpuActivity, NameId, Span};

/// Boxes kept per track: the longest.
pub const MAX_BOXES_PER_TRACK: usize = 4000;

/// A row group of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Track {
    /// A thread's stages, by its index in the profile.
    Thread(u32),
    /// A GPU stream.
    GpuStream {
        /// The device.
        device: u32,
        /// The stream on it.
        stream: u32,
    },
}

/// One drawn call or piece of GPU work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineBox {
    /// Start, since the profile's start.
    pub start_ns: u64,
    /// End, since the profile's start.
    pub end_ns: u64,
    /// Nesting depth within the track (0 for GPU work).
    pub depth: u32,
    /// Index into [`Timeline::names`].
    pub name: u32,
}

/// A track's boxes in start order, and how many it had in all.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackTimeline {
    /// Where the boxes ran.
    pub track: Track,
    /// The track's name (thread name or stream).
    pub label: String,
    /// The longest boxes, in time order.
    pub boxes: Vec<TimelineBox>,
    /// Boxes seen on the track, kept or not.
    pub seen: u64,
}

/// Every track, threads first, with the names the boxes use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// One per thread and stream.
    pub tracks: Vec<TrackTimeline>,
    /// The names boxes refer to by index.
    pub names: Vec<String>,
}

/// `(duration, start, end, depth, name)`, ordered so the shortest box is evicted first.
type Kept = Reverse<(u64, u64, u64, u32, NameId)>;

#[derive(Default)]
struct TrackAcc {
    longest: BinaryHeap<Kept>,
    seen: u64,
}

/// Gathers the timeline from spans and GPU activity.
#[derive(Default)]
pub(crate) struct TimelineBuilder {
    tracks: BTreeMap<Track, TrackAcc>,
}

impl TimelineBuilder {
    /// Takes a stage call.
    pub(crate) fn stage(&mut self, span: &Span) {
        self.add(Track::Thread(span.thread), span.start_ns, span.end_ns, span.depth, span.name);
    }

    /// Takes a piece of GPU work.
    pub(crate) fn gpu(&mut self, a: &GpuActivity) {
        self.add(Track::GpuStream { device: a.device, stream: a.stream }, a.start_ns, a.end_ns, 0, a.name);
    }

    fn add(&mut self, track: Track, start: u64, end: u64, depth: u32, name: NameId) {
        let acc = self.tracks.entry(track).or_default();
        acc.seen += 1;
        let entry = Reverse((end.saturating_sub(start), start, end, depth, name));
        if acc.longest.len() < MAX_BOXES_PER_TRACK {
            acc.longest.push(entry);
        } else if acc.longest.peek().is_some_and(|shortest| entry < *shortest) {
            acc.longest.pop();
            acc.longest.push(entry);
        }
    }

    /// What was kept, with names resolved.
    pub(crate) fn timeline(&self, catalog: &Catalog) -> Timeline {
        let mut names: Vec<String> = Vec::new();
        let mut index: BTreeMap<NameId, u32> = BTreeMap::new();
        let tracks = self
            .tracks
            .iter()
            .map(|(&track, acc)| {
                let mut boxes: Vec<TimelineBox> = acc
                    .longest
                    .iter()
                    .map(|&Reverse((_, start_ns, end_ns, depth, name))| {
                        let name = *index.entry(name).or_insert_with(|| {
                            names.push(catalog.name(name).to_owned());
                            names.len() as u32 - 1
                        });
                        TimelineBox { start_ns, end_ns, depth, name }
                    })
                    .collect();
                boxes.sort_by_key(|b| (b.start_ns, b.depth));
                TrackTimeline { track, label: label(track, catalog), boxes, seen: acc.seen }
            })
            .collect();
        Timeline { tracks, names }
    }
}

fn label(track: Track, catalog: &Catalog) -> String {
    match track {
        Track::Thread(i) => thread_label(i, catalog),
        Track::GpuStream { device, stream } => format!("GPU {device} stream {stream}"),
    }
}

/// A thread's name as outputs show it: its own, else its OS id, else its index.
pub(crate) fn thread_label(index: u32, catalog: &Catalog) -> String {
    match catalog.threads().iter().find(|t| t.index == index) {
        Some(t) if !t.name.is_empty() => t.name.clone(),
        Some(t) if t.os_tid != 0 => format!("thread {}", t.os_tid),
        _ => format!("thread #{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_model::GpuWork;

    #[test]
    fn keeps_the_longest_boxes_of_each_track() {
        let mut catalog = Catalog::default();
        let k = 3;
        catalog.set_name(k, "gemm");
        let mut b = TimelineBuilder::default();
        let n = MAX_BOXES_PER_TRACK as u64 + 500;
        for i in 0..n {
            // Durations 1..=n in a scrambled order.
            let d = (i * 7919) % n + 1;
            let a = GpuActivity {
                path: None,
                name: k,
                work: GpuWork::Kernel,
                device: 0,
                stream: 7,
                start_ns: i * 10_000,
                end_ns: i * 10_000 + d,
                bytes: 0,
                shape: None,
            };
            b.gpu(&a);
        }
        let t = b.timeline(&catalog);
        assert_eq!(t.names, ["gemm"]);
        let [track] = &t.tracks[..] else { panic!("{:?}", t.tracks.len()) };
        assert_eq!((track.label.as_str(), track.seen, track.boxes.len()), ("GPU 0 stream 7", n, MAX_BOXES_PER_TRACK));
        let shortest = track.boxes.iter().map(|b| b.end_ns - b.start_ns).min().unwrap();
        assert_eq!(shortest, 501, "the 500 shortest were left out");
        assert!(track.boxes.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    }
}
