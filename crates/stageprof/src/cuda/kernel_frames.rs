//! Kernel tracing in some frames only.
//!
//! CUPTI's records of every launch cost the host time in each launch: a
//! PyTorch pipeline of thousands of small launches a frame ran +47% slower
//! with kernels traced throughout (H200). Traced in whole frames, some of
//! them, the cost is that share of it, and a stage's GPU work figures are
//! exact for its calls inside the traced frames, which the report counts
//! (`gpu_traced_calls`). CUDA events and GPU memory are not sampled.
//!
//! Which frames: with `kernel_every = N`, 1 in N; by default (0), as many as
//! keep tracing's cost under [`COST_SHARE`] of the run's time. That cost is
//! measured, not assumed: a traced frame costs its duration less the usual
//! duration of untraced ones (an average of them), plus the time spent
//! switching CUPTI; so does the frame after a detach, whose launches are
//! still slower (5.0 µs against 3.9 on an H100 host, one frame on). A frame
//! is traced while the cost so far is within the share of the time since
//! the session began. Until an untraced frame has been seen, a traced
//! frame's whole duration counts as cost.
//!
//! Tracing is on from the session's start to its first frame (a program
//! without frames is traced throughout), then from each traced frame's
//! begin to its end; frames of several threads that overlap keep it on
//! until the last of them ends. Each on and off goes into the profile
//! (KERNEL_TRACE records, written by the session's thread), and only calls
//! wholly inside a window get GPU work figures.
//!
//! Off means CUPTI detached, not its activity kinds disabled: attached, it
//! slows every launch even with no kind on (0.47 µs of a 2.9 µs launch on
//! an H100 host; +25% on the Python demo's frames). So a traced frame
//! attaches CUPTI as it begins and, as it ends, waits for the GPU to finish
//! what was launched (its records complete), hands the records over and
//! detaches; the time that takes counts in tracing's cost. A stage open
//! across an attach names no launcher to CUPTI (its correlation id was not
//! pushed): its launches count as made outside any stage.

use std::sync::{Arc, Mutex};

use cudarc::driver::CudaContext;

use super::activity;
use crate::clock::ticks;
use crate::notice::report;

/// The most of the run's time kernel tracing may cost, by default. With
/// the events' own 0.5-1% it must stay under 3% for Rust pipelines: at 2%,
/// `gpu_check overhead kernels 3000` cost +2.9 to +3.4% on an H100 host,
/// tracing itself about 2.2 points of it.
pub(crate) const COST_SHARE: f64 = 0.015;
/// Weight of the newest untraced frame in their average duration.
const USUAL_WEIGHT: f64 = 0.1;

/// Which frames trace kernels, and when tracing went on and off.
pub(crate) struct KernelFrames {
    state: Mutex<State>,
    ctx: Arc<CudaContext>,
}

/// A frame begun under kernel tracing's rule; given back as it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameTrace {
    traced: bool,
    began: u64,
    /// The first frame to begin after CUPTI was detached.
    after_detach: bool,
}

#[derive(Debug)]
struct State {
    rule: Rule,
    /// No more attaching: another profiler took CUPTI, or the session ends.
    given_up: bool,
    /// CUPTI was detached since the last frame began.
    detached: bool,
    /// Traced frames open now, on any thread.
    open: u32,
    /// Each switch, `(ticks, on)`, not yet written.
    edges: Vec<(u64, bool)>,
}

#[derive(Debug)]
enum Rule {
    /// 1 in `every` frames; `begun` so far.
    Every { every: u64, begun: u64 },
    /// Within a share of the time since `since` (ticks).
    Budget { since: u64, cost: f64, usual: Option<f64> },
}

impl KernelFrames {
    /// Kernel tracing, on now, in 1 of every `every` frames (0: within
    /// [`COST_SHARE`]) of the pipeline on `ctx`.
    pub(crate) fn new(every: u32, ctx: Arc<CudaContext>) -> KernelFrames {
        let now = ticks();
        let rule = match every {
            0 => Rule::Budget { since: now, cost: 0.0, usual: None },
            n => Rule::Every { every: u64::from(n), begun: 0 },
        };
        let state = State { rule, given_up: false, detached: false, open: 0, edges: vec![(now, true)] };
        KernelFrames { state: Mutex::new(state), ctx }
    }

    /// A recorded frame begins; its end must be told with what this returns.
    pub(crate) fn frame_begins(&self) -> FrameTrace {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let began = ticks();
        let traced = s.rule.traces(began) && !s.given_up;
        if traced {
            s.open += 1;
            if !activity::attached() {
                s.switch(true, &self.ctx);
            }
        } else if s.open == 0 && activity::attached() {
            // Only before the first frame: tracing was on from the session's start.
            s.switch(false, &self.ctx);
        }
        FrameTrace { traced, began, after_detach: std::mem::take(&mut s.detached) }
    }

    /// A frame begun with [`KernelFrames::frame_begins`] ends.
    pub(crate) fn frame_ends(&self, frame: FrameTrace) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ended = ticks();
        let mut switched = 0;
        if frame.traced {
            s.open = s.open.saturating_sub(1);
            if s.open == 0 && activity::attached() {
                switched = s.switch(false, &self.ctx);
            }
        }
        s.rule.frame_ended(frame, ended, switched);
    }

    /// The session ends: no frame attaches CUPTI again (the session detaches it once).
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).given_up = true;
    }

    /// The switches since the last call, to be written.
    pub(crate) fn take_edges(&self) -> Vec<(u64, bool)> {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).edges)
    }
}

impl State {
    /// Attaches or detaches CUPTI, noting when: an on after tracing is on,
    /// an off before it goes off, so that the windows written hold only
    /// traced time. Returns the ticks the switch took.
    fn switch(&mut self, on: bool, ctx: &CudaContext) -> u64 {
        let began = ticks();
        if on {
            match activity::start() {
                Ok(()) => self.edges.push((ticks(), true)),
                Err(e) => {
                    self.given_up = true;
                    report(&format!("kernel tracing stops: {e}"));
                }
            }
        } else {
            self.edges.push((ticks(), false));
            // The records of work launched while traced are complete only once it has run.
            let _ = ctx.synchronize();
            activity::flush(true);
            activity::stop(|| {
                let _ = cudarc::driver::result::ctx::get_current();
            });
            self.detached = true;
        }
        ticks().saturating_sub(began)
    }
}

impl Rule {
    /// Whether a frame beginning at tick `now` is traced.
    fn traces(&mut self, now: u64) -> bool {
        match self {
            Rule::Every { every, begun } => {
                *begun += 1;
                (*begun - 1) % *every == 0
            }
            Rule::Budget { since, cost, .. } => *cost <= COST_SHARE * now.saturating_sub(*since) as f64,
        }
    }

    /// Counts a frame that ended at tick `now`; `switched`: ticks its end spent switching CUPTI.
    fn frame_ended(&mut self, frame: FrameTrace, now: u64, switched: u64) {
        let Rule::Budget { cost, usual, .. } = self else { return };
        let took = now.saturating_sub(frame.began) as f64;
        if frame.traced || frame.after_detach {
            // The switch on is inside the frame's time; the switch off is not.
            *cost += (took - usual.unwrap_or(0.0)).max(0.0) + switched as f64;
        } else {
            *usual = Some(usual.map_or(took, |u| u + USUAL_WEIGHT * (took - u)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames under `rule`, each `untraced` ticks long and `traced` when traced, back to back:
    /// which were traced.
    fn run(mut rule: Rule, frames: usize, untraced: u64, traced: u64) -> Vec<bool> {
        let mut now = 1_000;
        (0..frames)
            .map(|_| {
                let t = rule.traces(now);
                let frame = FrameTrace { traced: t, began: now, after_detach: false };
                now += if t { traced } else { untraced };
                rule.frame_ended(frame, now, 0);
                t
            })
            .collect()
    }

    #[test]
    fn one_in_every_n_frames_from_the_first() {
        let picked = run(Rule::Every { every: 4, begun: 0 }, 10, 100, 100);
        let at: Vec<usize> = (0..10).filter(|&i| picked[i]).collect();
        assert_eq!(at, [0, 4, 8]);
    }

    #[test]
    fn the_budget_keeps_the_measured_cost_within_its_share() {
        // Traced frames take 50% longer: the cost of tracing all of them would be a third of the run.
        let (frames, untraced, traced) = (20_000, 1_000, 1_500);
        let picked = run(Rule::Budget { since: 1_000, cost: 0.0, usual: None }, frames, untraced, traced);
        let n = picked.iter().filter(|&&t| t).count() as f64;
        let run_time = n * traced as f64 + (frames as f64 - n) * untraced as f64;
        let cost = n * (traced - untraced) as f64;
        // Within the share, and not far under it: each traced frame costs 500 of the 1.5% of ~1000 a frame.
        assert!(cost <= COST_SHARE * run_time + 1_500.0, "cost {cost} of {run_time}");
        assert!(cost >= 0.9 * COST_SHARE * run_time, "cost {cost} of {run_time}");
        assert!(picked[0], "the first frame is traced");
    }

    #[test]
    fn frames_that_tracing_does_not_slow_are_all_traced() {
        let picked = run(Rule::Budget { since: 1_000, cost: 0.0, usual: None }, 1_000, 1_000, 1_000);
        // The first counts whole (no untraced frame known yet), so the frames until the run is
        // 1 / COST_SHARE frames long wait; then every one is traced.
        let first_untraced = picked.iter().position(|&t| !t).unwrap();
        let last_untraced = picked.iter().rposition(|&t| !t).unwrap();
        assert_eq!(first_untraced, 1);
        assert_eq!(last_untraced, (1.0 / COST_SHARE).ceil() as usize - 1, "untraced up to frame {last_untraced}");
    }

    #[test]
    fn the_frame_after_a_detach_counts_against_tracing() {
        let mut rule = Rule::Budget { since: 0, cost: 0.0, usual: Some(1_000.0) };
        let untraced = |after_detach| FrameTrace { traced: false, began: 0, after_detach };
        rule.frame_ended(untraced(false), 1_400, 0);
        let Rule::Budget { cost, usual, .. } = rule else { unreachable!() };
        assert_eq!(cost, 0.0);
        assert!((usual.unwrap() - 1_040.0).abs() < 1e-9, "{usual:?}");
        rule.frame_ended(untraced(true), 1_500, 0);
        let Rule::Budget { cost, usual, .. } = rule else { unreachable!() };
        // 1,500 against the usual 1,040; the usual is left as it was.
        assert!((cost - 460.0).abs() < 1e-9 && usual == Some(1_040.0), "{cost} {usual:?}");
    }
}
