//! The one way stageprof speaks to the person running the pipeline: a line
//! on stderr, prefixed so it is told apart from the pipeline's own output.

/// Tells the person running the pipeline, on standard error.
pub(crate) fn report(message: &str) {
    eprintln!("stageprof: {message}");
}
