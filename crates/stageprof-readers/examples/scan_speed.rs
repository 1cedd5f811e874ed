//! Scanner throughput on a file already in the page cache:
//! `cargo run --release -p stageprof-readers --example scan_speed -- TRACE.json`

use std::time::Instant;

use stageprof_readers::Scanner;

fn main() {
    let path = std::env::args().nth(1).expect("usage: scan_speed TRACE.json");
    let bytes = std::fs::metadata(&path).unwrap().len();
    for _ in 0..3 {
        let start = Instant::now();
        let mut sc = Scanner::new(std::fs::File::open(&path).unwrap());
        let (mut n, mut sum) = (0u64, 0i64);
        while let Some(e) = sc.next_event().unwrap() {
            n += 1;
            sum = sum.wrapping_add(e.ts.micros_as_ns().unwrap_or(0));
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "{n} events, {:.0} MB in {s:.3} s: {:.0} MB/s (checksum {sum})",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / s
        );
    }
}
