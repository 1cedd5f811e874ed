//! The ends of a process that skip `Session::finish`: SIGINT and SIGTERM
//! (outputs written, then the process ends as the signal would have), and
//! `std::process::exit` (outputs written from an `atexit` handler).

use std::sync::{Mutex, Once, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::notice::report;
use crate::profiler::Profiler;

static WATCHED: Mutex<Option<Profiler>> = Mutex::new(None);
static LISTENER: Once = Once::new();
static AT_EXIT: Once = Once::new();

/// Makes `profiler` the one finished at `exit`, and on a signal if `signals`.
pub(crate) fn watch(profiler: &Profiler, signals: bool) {
    *WATCHED.lock().unwrap_or_else(PoisonError::into_inner) = Some(profiler.clone());
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function with no arguments, as atexit requires.
        if unsafe { libc::atexit(finish_at_exit) } != 0 {
            report("cannot register an exit handler; std::process::exit will skip the outputs");
        }
    });
    if !signals {
        return;
    }
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

extern "C" fn finish_at_exit() {
    // A panic must not unwind into C; losing the outputs is the lesser harm.
    let _ = std::panic::catch_unwind(|| {
        let profiler = WATCHED.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(p) = profiler {
            p.finish_because("exit");
        }
    });
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
