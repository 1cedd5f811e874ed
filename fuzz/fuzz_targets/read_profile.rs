//! Any bytes given to `stageprof report`'s reader (Chrome/Kineto JSON, gzip,
//! native files) must be read or refused, never panic or hang; and whatever
//! is read must summarize.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run read_profile fuzz/corpus/read_profile -- -max_total_time=600`

#![no_main]

use libfuzzer_sys::fuzz_target;
use stageprof_analysis::Aggregator;

fuzz_target!(|data: &[u8]| {
    let mut agg = Aggregator::default();
    if let Ok(p) = stageprof_readers::read_profile(data, &mut agg) {
        let _ = agg.summary(&p.catalog, p.run, 3);
    }
});
