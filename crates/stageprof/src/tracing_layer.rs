//! Code already instrumented with `tracing` gets stages for free: this
//! Layer turns every entered span into a stage named after the span.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let _session = stageprof::init();
//! tracing_subscriber::registry().with(stageprof::tracing_layer::StageLayer::global()).init();
//! ```

use std::cell::RefCell;

use tracing::span::Id;
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::{Profiler, StageGuard};

/// A tracing-subscriber Layer that records entered spans as stages.
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
}

thread_local! {
    /// Stages of spans entered on this thread and not yet exited.
    static ENTERED: RefCell<Vec<(Id, StageGuard)>> = const { RefCell::new(Vec::new()) };
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for StageLayer {
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let name = span.metadata().name();
        let guard = match &self.profiler {
            Some(p) => p.stage(name),
            None => crate::stage(name),
        };
        if guard.is_recording() {
            let _ = ENTERED.try_with(|e| e.borrow_mut().push((id.clone(), guard)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = ENTERED.try_with(|e| {
            let guard = {
                let mut entered = e.borrow_mut();
                entered.iter().rposition(|(i, _)| i == id).map(|at| entered.remove(at))
            };
            // Dropped outside the borrow: ending a stage may not re-enter this cell.
            drop(guard);
        });
    }
}
