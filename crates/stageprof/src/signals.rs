//! SIGINT and SIGTERM: write the global session's outputs, then end the
//! process the way the signal would have.

use std::sync::{Mutex, Once, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::collector::report;
use crate::profiler::Profiler;

static WATCHED: Mutex<Option<Profiler>> = Mutex::new(None);
static LISTENER: Once = Once::new();

/// Makes `profiler` the one finished on a signal.
pub(crate) fn watch(profiler: &Profiler) {
    *WATCHED.lock().unwrap_or_else(PoisonError::into_inner) = Some(profiler.clone());
    LISTENER.call_once(|| {
        let signals = match Signals::new([SIGINT, SIGTERM]) {
            Ok(s) => s,
            Err(e) => return report(&format!("cannot watch SIGINT/SIGTERM ({e}); outputs are written only on finish")),
        };
        let spawned = std::thread::Builder::new().name("stageprof-signals".into()).spawn(move || listen(signals));
        if let Err(e) = spawned {
            report(&format!("cannot start the signal thread ({e}); outputs are written only on finish"));
        }
    });
}

/// Stops finishing `profiler` on a signal (it is being finished normally).
pub(crate) fn unwatch(profiler: &Profiler) {
    let mut watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
    if watched.as_ref().is_some_and(|p| p.same_as(profiler)) {
        *watched = None;
    }
}

fn listen(mut signals: Signals) {
    if let Some(sig) = signals.forever().next() {
        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
        let profiler = WATCHED.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(p) = profiler {
            p.finish_because(name);
        }
        // Ends the process as the signal's default action would, exit status included.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        std::process::exit(128 + sig);
    }
}
