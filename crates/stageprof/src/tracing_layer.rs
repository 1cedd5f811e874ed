//! Code already instrumented with `tracing` gets stages for free: this
//! Layer turns every span into one call of a stage named after the span.
//!
//! A span is one call from its creation to its close, nested under its
//! tracing parent, whichever threads entered it: an `async fn` under
//! `#[tracing::instrument]` is entered at every poll, and is still one call
//! that lived 5 ms and worked 0.2 ms of them. Its busy time (entered) and
//! idle time (the rest) are reported beside its wall time. The call is
//! written when the span closes, on the thread that closes it, and belongs
//! to the frame open there.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let _session = stageprof::init();
//! tracing_subscriber::registry().with(stageprof::tracing_layer::StageLayer::global()).init();
//! ```

use std::sync::atomic::Ordering::Relaxed;

use stageprof_model::wire::{TaskRecord, MAX_TASK_DEPTH};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::{ticks, ticks_to_ns};
use crate::names::dynamic_name;
use crate::recorder::{with_writer, Target, GLOBAL_RECORDING};
use crate::Profiler;

/// A tracing-subscriber Layer that records spans as stage calls.
pub struct StageLayer {
    /// `None` records to the global session.
    profiler: Option<Profiler>,
}

impl StageLayer {
    /// Records to the global session ([`crate::init`]).
    pub fn global() -> StageLayer {
        StageLayer { profiler: None }
    }

    /// Records to `profiler`.
    pub fn new(profiler: Profiler) -> StageLayer {
        StageLayer { profiler: Some(profiler) }
    }

    fn recording(&self) -> bool {
        match &self.profiler {
            Some(p) => p.shared().recording.load(Relaxed),
            None => GLOBAL_RECORDING.load(Relaxed),
        }
    }

    fn target(&self) -> Target<'_> {
        match &self.profiler {
            Some(p) => Target::Instance(p.shared()),
            None => Target::Global,
        }
    }
}

/// What the Layer keeps in each span's extensions.
struct Timing {
    created: u64,
    /// Ticks entered so far, and since when it is entered (how many times, for re-entry).
    busy_ticks: u64,
    entered_at: u64,
    entered: u32,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for StageLayer {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.recording() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Timing { created: ticks(), busy_ticks: 0, entered_at: 0, entered: 0 });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(t) = extensions.get_mut::<Timing>() {
            if t.entered == 0 {
                t.entered_at = ticks();
            }
            t.entered += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(t) = extensions.get_mut::<Timing>() {
            t.entered = t.entered.saturating_sub(1);
            if t.entered == 0 {
                t.busy_ticks += ticks().saturating_sub(t.entered_at);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let closed = ticks();
        let Some(span) = ctx.span(&id) else { return };
        let Some(timing) = span.extensions_mut().remove::<Timing>() else { return };
        if !self.recording() {
            return;
        }
        // Ancestors from the parent up; the record wants the outermost first.
        let chain: Vec<u32> = span.scope().skip(1).map(|a| dynamic_name(a.name())).collect();
        let depth = chain.len().min(MAX_TASK_DEPTH);
        let mut ancestors = [0u32; MAX_TASK_DEPTH];
        for (slot, &name) in ancestors.iter_mut().zip(chain[..depth].iter().rev()) {
            *slot = name;
        }
        let task = TaskRecord {
            name: dynamic_name(span.name()),
            start_ticks: timing.created,
            end_ticks: closed,
            busy_ns: ticks_to_ns(timing.busy_ticks),
            id: id.into_u64(),
            parent: span.parent().map_or(0, |p| p.id().into_u64()),
            ancestors,
            depth,
        };
        let (words, len) = task.encode();
        with_writer(self.target(), |w| w.record(&words[..len]));
    }
}
