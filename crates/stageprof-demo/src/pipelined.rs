//! The pipeline with its stages on threads joined by bounded queues
//! (`stageprof demo --pipelined`): frames flow through one at a time, each
//! stage working on the next frame while the later stages finish the ones
//! before, so throughput is set by the slowest stage, not by the sum.
//!
//! Each stage runs on a thread of its own, named after it, with a
//! one-thread rayon pool, so that its data-parallel loops run on that
//! thread and the stages do not compete for one shared pool: the
//! pipeline's model (a stage's capacity is one item per service time) then
//! holds where there are as many cores as stages.
//!
//! [`StageCosts`] really scales a stage's work: at factor `f` the stage
//! computes frame `n` `ceil((n+1)f) - ceil(nf)` times, so `f` times in all
//! over many frames; a frame it computes zero times gets its last result
//! again (that frame is then not checked against the surface).

use std::sync::Arc;
use std::time::Instant;

use stageprof::queue::{bounded, Receiver, Sender};

use crate::check::DepthError;
use crate::image::Image;
use crate::pipeline::{
    capture, check_against, dense_matching, depth_estimation, fusion, kernels, sparse_matching, surface_reconstruction,
    undistortion, MemoryMode, PipelineConfig,
};
use crate::scene::{Rig, Surface};

/// Items a queue between two stages holds.
pub const QUEUE_CAPACITY: usize = 2;

/// The pipelined stages, in the order frames pass them; each is a thread of that name.
pub const STAGES: [&str; 6] =
    ["capture", "undistortion", "sparse_matching", "dense_matching", "depth_estimation", "fusion"];

/// How much work each stage does, as a factor of its real work (1 where not given).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageCosts(Vec<(usize, f64)>);

impl StageCosts {
    /// `STAGE=FACTOR`, e.g. `depth_estimation=2` or `fusion=0.5`.
    pub fn parse(text: &str) -> Result<(usize, f64), String> {
        let (stage, factor) =
            text.split_once('=').ok_or_else(|| format!("{text:?}: a stage cost is written STAGE=FACTOR"))?;
        let index = STAGES
            .iter()
            .position(|s| *s == stage)
            .ok_or_else(|| format!("{stage:?} in {text:?}: the stages are {}", STAGES.join(", ")))?;
        match factor.parse::<f64>() {
            Ok(f) if f.is_finite() && (0.05..=20.0).contains(&f) => Ok((index, f)),
            _ => Err(format!("{factor:?} in {text:?}: a factor is a number from 0.05 to 20")),
        }
    }

    /// Costs with stage `stage` scaled by `factor` (a later value for one stage replaces an earlier).
    pub fn with(mut self, (stage, factor): (usize, f64)) -> StageCosts {
        self.0.retain(|&(s, _)| s != stage);
        self.0.push((stage, factor));
        self
    }

    fn factor(&self, stage: usize) -> f64 {
        self.0.iter().find(|&&(s, _)| s == stage).map_or(1.0, |&(_, f)| f)
    }
}

/// How many times a stage at `factor` computes frame `n` (see the module docs).
fn repeats(factor: f64, n: usize) -> usize {
    let done_by = |frames: usize| (frames as f64 * factor - 1e-9).ceil().max(0.0) as usize;
    done_by(n + 1) - done_by(n)
}

/// A frame on its way through the pipeline: what the stages so far made of it.
#[derive(Clone)]
struct Flowing {
    frame: usize,
    surface: Surface,
    images: Arc<Vec<Image>>,
    range: (f32, f32),
    pairwise: Arc<Vec<Vec<f32>>>,
    depth: Arc<Vec<f32>>,
    /// Whether every stage so far computed this frame (rather than giving its last result again).
    fresh: bool,
}

/// What a pipelined run produced.
#[derive(Clone, Copy, Debug)]
pub struct PipelinedRun {
    /// The worst depth error over the frames every stage computed.
    pub worst: Option<DepthError>,
    /// Frames checked against the surface.
    pub checked: usize,
    /// Frames a second leaving the last stage, from its first frame to its
    /// last (the pipeline filling up not counted); measured here with the
    /// wall clock, independently of the profiler.
    pub frames_per_s: Option<f64>,
}

/// Where the stages' threads run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the OS puts them.
    #[default]
    Free,
    /// Stage `i` on CPU `cpus[i]` only (Linux), so that no two stages share
    /// a core and none migrates: runs of the same work then differ less on a
    /// shared machine.
    Pinned(Vec<usize>),
}

/// One CPU of each physical core this process may run on, in order (Linux;
/// empty where the topology cannot be read).
pub fn one_cpu_per_core() -> Vec<usize> {
    let read = |cpu: usize, what: &str| {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{what}")).ok()
    };
    let mut seen = std::collections::HashSet::new();
    allowed_cpus()
        .into_iter()
        .filter(|&cpu| {
            let core = (read(cpu, "physical_package_id"), read(cpu, "core_id"));
            core.0.is_some() && core.1.is_some() && seen.insert(core)
        })
        .collect()
}

#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set sized for the call; the kernel writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size and pointer describe `set`.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the bit set filled above, for CPUs within its size.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Keeps the calling thread on `cpu` (Linux); whether that took.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> bool {
    // SAFETY: as in `allowed_cpus`: a zeroed bit set, one bit set within its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (it came from `allowed_cpus`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is this thread; the size and pointer describe `set`.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_: usize) -> bool {
    false
}

/// Runs `frames` frames through the pipelined stages and waits for the last.
pub fn run_pipelined(
    config: &PipelineConfig,
    rig: &Rig,
    frames: usize,
    costs: &StageCosts,
    placement: &Placement,
) -> PipelinedRun {
    let config = PipelineConfig { memory: MemoryMode::Incremental, ..*config };
    let (mut senders, mut receivers): (Vec<Sender<Flowing>>, Vec<Receiver<Flowing>>) =
        STAGES[1..].iter().map(|next| bounded::<Flowing>(&format!("to {next}"), QUEUE_CAPACITY)).unzip();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Instant, Flowing)>();
    std::thread::scope(|scope| {
        for (index, name) in STAGES.iter().enumerate() {
            let input = (index > 0).then(|| receivers.remove(0));
            let output = (index + 1 < STAGES.len()).then(|| senders.remove(0));
            let done = done_tx.clone();
            let factor = costs.factor(index);
            let (config, rig) = (&config, rig);
            let cpu = match placement {
                Placement::Pinned(cpus) => cpus.get(index).copied(),
                Placement::Free => None,
            };
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| (*name).to_owned())
                    .start_handler(move |_| {
                        if let Some(cpu) = cpu.filter(|&c| !pin_to(c)) {
                            eprintln!("pipelined demo: stage {name} could not be kept on CPU {cpu}; it runs where the OS puts it");
                        }
                    })
                    .build()
                    .expect("a one-thread pool starts");
                pool.install(|| {
                    let mut stage = Stage { index, factor, config, rig, last: None };
                    let next = |n: usize| match &input {
                        Some(rx) => rx.recv().ok(),
                        None => (n < frames).then(|| Flowing::start(n)),
                    };
                    let mut n = 0;
                    while let Some(item) = next(n) {
                        let item = stage.run(item);
                        n += 1;
                        let delivered = match &output {
                            Some(tx) => tx.send(item).is_ok(),
                            None => done.send((Instant::now(), item)).is_ok(),
                        };
                        if !delivered {
                            break;
                        }
                    }
                });
            });
        }
        drop(done_tx);
    });
    let finished: Vec<(Instant, Flowing)> = done_rx.iter().collect();
    summarize(rig, &finished)
}

/// A pipelined run under a stageprof session made from `profile`: the run,
/// and what the session wrote and summarized.
pub fn profile_pipelined(
    profile: stageprof::Config,
    config: &PipelineConfig,
    rig: &Rig,
    frames: usize,
    costs: &StageCosts,
    placement: &Placement,
) -> (PipelinedRun, stageprof::Report) {
    let session = stageprof::init_with(profile);
    let run = run_pipelined(config, rig, frames, costs, placement);
    (run, session.finish())
}

/// Checks the frames every stage computed and measures the steady rate.
fn summarize(rig: &Rig, finished: &[(Instant, Flowing)]) -> PipelinedRun {
    let mut worst: Option<DepthError> = None;
    let mut checked = 0;
    for (_, item) in finished.iter().filter(|(_, i)| i.fresh) {
        if let Some(e) = check_against(&rig.cameras[0], &item.surface, &item.depth) {
            checked += 1;
            if worst.is_none_or(|w| e.median_mm > w.median_mm) {
                worst = Some(e);
            }
        }
    }
    let frames_per_s = match (finished.first(), finished.last()) {
        (Some(first), Some(last)) if finished.len() > 1 => {
            let seconds = last.0.duration_since(first.0).as_secs_f64();
            (seconds > 0.0).then(|| (finished.len() - 1) as f64 / seconds)
        }
        _ => None,
    };
    PipelinedRun { worst, checked, frames_per_s }
}

impl Flowing {
    fn start(frame: usize) -> Flowing {
        Flowing {
            frame,
            surface: Surface::at_frame(frame),
            images: Arc::default(),
            range: (0.0, 0.0),
            pairwise: Arc::default(),
            depth: Arc::default(),
            fresh: true,
        }
    }
}

/// One stage's thread: its work, scaled, and its last result.
struct Stage<'a> {
    index: usize,
    factor: f64,
    config: &'a PipelineConfig,
    rig: &'a Rig,
    last: Option<Flowing>,
}

impl Stage<'_> {
    /// `item` with this stage's work done on it, as many times as the cost factor says.
    fn run(&mut self, item: Flowing) -> Flowing {
        let times = repeats(self.factor, item.frame);
        if let (Some(last), 0) = (&self.last, times) {
            return Flowing { fresh: false, ..self.reuse(last, item) };
        }
        let mut out = self.work(item.clone());
        for _ in 1..times {
            out = self.work(item.clone());
        }
        self.last = Some(out.clone());
        out
    }

    /// `item` given this stage's outputs from its last result `last`.
    fn reuse(&self, last: &Flowing, mut item: Flowing) -> Flowing {
        match self.index {
            0 | 1 => item.images = last.images.clone(),
            2 => item.range = last.range,
            3 => item.pairwise = last.pairwise.clone(),
            _ => item.depth = last.depth.clone(),
        }
        item
    }

    fn work(&self, mut item: Flowing) -> Flowing {
        let (config, rig) = (self.config, self.rig);
        let k = kernels(config.device);
        match self.index {
            0 => item.images = Arc::new(capture(rig, &item.surface)),
            1 => item.images = Arc::new(undistortion(k, rig, &item.images)),
            2 => item.range = sparse_matching(rig, &item.images).1,
            3 => item.pairwise = Arc::new(dense_matching(config, rig, &item.images, item.range).depths),
            4 => item.depth = Arc::new(depth_estimation(k, config, rig, &item.images, item.range)),
            _ => {
                let fused = fusion(&item.depth, &item.pairwise);
                surface_reconstruction(&rig.cameras[0], &fused);
                item.depth = Arc::new(fused);
            }
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only() {
        let cores = one_cpu_per_core();
        let allowed = allowed_cpus();
        assert!(!cores.is_empty() && cores.iter().all(|c| allowed.contains(c)), "{cores:?} of {allowed:?}");
        let last = *cores.last().unwrap();
        let seen = std::thread::spawn(move || (pin_to(last), allowed_cpus())).join().unwrap();
        assert_eq!(seen, (true, vec![last]));
        // This thread was not moved.
        assert_eq!(allowed_cpus(), allowed);
    }

    #[test]
    fn a_factor_repeats_the_work_that_many_times_over_the_frames() {
        for (factor, frames, want) in [(1.0, 10, 10), (2.0, 10, 20), (0.5, 10, 5), (1.5, 10, 15), (0.25, 8, 2)] {
            let total: usize = (0..frames).map(|n| repeats(factor, n)).sum();
            assert_eq!(total, want, "factor {factor}");
        }
        // The first frame is always computed, so the check has a frame to check.
        assert_eq!(repeats(0.25, 0), 1);
        assert_eq!((0..4).map(|n| repeats(0.5, n)).collect::<Vec<_>>(), [1, 0, 1, 0]);
    }

    #[test]
    fn stage_costs_parse_and_name_what_is_wrong() {
        assert_eq!(StageCosts::parse("depth_estimation=2").unwrap(), (4, 2.0));
        assert_eq!(StageCosts::parse("fusion=0.5").unwrap(), (5, 0.5));
        for (bad, says) in [
            ("depth=2", "the stages are capture"),
            ("fusion", "STAGE=FACTOR"),
            ("fusion=0", "from 0.05 to 20"),
            ("fusion=x", "from 0.05 to 20"),
            ("fusion=inf", "from 0.05 to 20"),
        ] {
            let e = StageCosts::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let costs = StageCosts::default().with((4, 2.0)).with((4, 3.0));
        assert_eq!((costs.factor(4), costs.factor(0)), (3.0, 1.0));
    }

    #[test]
    fn every_frame_flows_through_and_is_checked() {
        let config = PipelineConfig { width: 96, height: 72, depth_planes: 16, ..PipelineConfig::default() };
        let rig = Rig::new(config.views, config.width, config.height);
        let run = run_pipelined(&config, &rig, 4, &StageCosts::default(), &Placement::Free);
        assert_eq!(run.checked, 4);
        assert!(run.frames_per_s.is_some());
        let halved = run_pipelined(&config, &rig, 4, &StageCosts::default().with((4, 0.5)), &Placement::Free);
        assert_eq!(halved.checked, 2, "frames 1 and 3 reuse the plane sweep's last depth");
    }
}
