//! A small stereo-style image pipeline, instrumented with stageprof.
//!
//! Every stage does real work on synthetic images: blur, gradients,
//! keypoints, descriptor matching, a plane-sweep cost volume in batches.
//! Run: `cargo run --release -p pipeline-example -- [FRAMES]`.

use rayon::prelude::*;

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

const W: usize = 320;
const H: usize = 240;
const VIEWS: usize = 4;
const DEPTHS: usize = 32;
const BATCH: usize = 8;

type Image = Vec<f32>;

fn main() {
    let frames: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 12,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: pipeline-example [FRAMES]   (FRAMES: a whole number above 0)");
            std::process::exit(2);
        }
    };
    let session = stageprof::init();
    let mut checksum = 0.0f64;
    for frame in 0..frames {
        let _frame = stageprof::frame();
        let views = load(frame);
        let smooth = undistort(&views);
        let keypoints = detect(&smooth);
        let matches = match_views(&smooth, &keypoints);
        stageprof::counter!("matches", matches);
        let depth = depth_estimation(&smooth);
        checksum += fuse(&depth);
    }
    println!("pipeline-example: {frames} frames, checksum {checksum:.3}");
    session.finish();
}

/// Renders each view of a moving textured scene.
#[stageprof::profile]
fn load(frame: usize) -> Vec<Image> {
    (0..VIEWS)
        .map(|v| {
            let shift = (frame * 3 + v * 5) as f32;
            (0..W * H)
                .map(|i| {
                    let (x, y) = ((i % W) as f32 + shift, (i / W) as f32);
                    ((x * 0.11).sin() * (y * 0.07).cos() + (x * 0.031 + y * 0.017).sin()) * 0.5 + 0.5
                })
                .collect()
        })
        .collect()
}

/// One blur pass per view, views in parallel on rayon's threads.
fn undistort(views: &[Image]) -> Vec<Image> {
    let _s = stageprof::scope!("undistort");
    views
        .par_iter()
        .map(|img| {
            let _v = stageprof::scope!("undistort_view");
            let mut out = vec![0.0; W * H];
            for y in 1..H - 1 {
                for x in 1..W - 1 {
                    let i = y * W + x;
                    out[i] = (img[i - 1] + img[i + 1] + img[i - W] + img[i + W] + 4.0 * img[i]) / 8.0;
                }
            }
            out
        })
        .collect()
}

/// Corners: local maxima of gradient energy.
fn detect(views: &[Image]) -> Vec<Vec<usize>> {
    let _s = stageprof::scope!("detect");
    views
        .par_iter()
        .map(|img| {
            let energy: Vec<f32> = {
                let _g = stageprof::scope!("gradients");
                (0..W * H)
                    .map(|i| {
                        let (x, y) = (i % W, i / W);
                        if x == 0 || y == 0 || x == W - 1 || y == H - 1 {
                            return 0.0;
                        }
                        let gx = img[i + 1] - img[i - 1];
                        let gy = img[i + W] - img[i - W];
                        gx * gx + gy * gy
                    })
                    .collect()
            };
            let _n = stageprof::scope!("non_max");
            (W + 1..W * H - W - 1)
                .filter(|&i| {
                    let e = energy[i];
                    e > 0.01 && [i - 1, i + 1, i - W, i + W].iter().all(|&j| energy[j] < e)
                })
                .collect()
        })
        .collect()
}

/// Mutual nearest neighbours of 5x5 patch descriptors between neighbouring views.
fn match_views(views: &[Image], keypoints: &[Vec<usize>]) -> usize {
    let _s = stageprof::scope!("match");
    let descriptors: Vec<Vec<[f32; 25]>> = {
        let _d = stageprof::scope!("describe");
        views
            .iter()
            .zip(keypoints)
            .map(|(img, kps)| {
                kps.iter()
                    .filter(|&&i| (i % W) >= 2 && (i % W) < W - 2 && i / W >= 2 && i / W < H - 2)
                    .take(400)
                    .map(|&i| std::array::from_fn(|k| img[i + (k / 5) * W + k % 5 - 2 * W - 2]))
                    .collect()
            })
            .collect()
    };
    let _m = stageprof::scope!("nearest_neighbours");
    (0..VIEWS - 1)
        .into_par_iter()
        .map(|v| {
            let (a, b) = (&descriptors[v], &descriptors[v + 1]);
            let nearest = |d: &[f32; 25], set: &[[f32; 25]]| {
                (0..set.len()).min_by(|&i, &j| dist(d, &set[i]).total_cmp(&dist(d, &set[j]))).unwrap_or(usize::MAX)
            };
            (0..a.len())
                .filter(|&i| {
                    let j = nearest(&a[i], b);
                    j != usize::MAX && nearest(&b[j], a) == i
                })
                .count()
        })
        .sum()
}

fn dist(a: &[f32; 25], b: &[f32; 25]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Plane sweep: a cost volume over depth hypotheses, built in batches, then winner-take-all.
fn depth_estimation(views: &[Image]) -> Vec<u8> {
    let _s = stageprof::scope!("depth_estimation");
    let reference = &views[0];
    let mut best = vec![(f32::MAX, 0u8); W * H];
    for batch in (0..DEPTHS).step_by(BATCH) {
        let _b = stageprof::scope!("cost_volume_batch");
        // The whole batch's volume is held at once: this is where memory peaks.
        let volume: Vec<Vec<f32>> = (batch..batch + BATCH)
            .map(|d| {
                let _w = stageprof::scope!("warp");
                let shift = d / 4;
                (0..W * H)
                    .map(|i| {
                        let x = i % W;
                        let cost: f32 =
                            views[1..].iter().map(|v| (reference[i] - v[i - x + (x + shift).min(W - 1)]).abs()).sum();
                        cost
                    })
                    .collect()
            })
            .collect();
        stageprof::counter!("volume_bytes", volume.len() * W * H * 4);
        let _e = stageprof::scope!("extract_depth");
        for (k, plane) in volume.iter().enumerate() {
            for (b, &c) in best.iter_mut().zip(plane) {
                if c < b.0 {
                    *b = (c, (batch + k) as u8);
                }
            }
        }
    }
    best.into_iter().map(|(_, d)| d).collect()
}

/// Median of depth over 3x3 neighbourhoods.
#[stageprof::profile]
fn fuse(depth: &[u8]) -> f64 {
    let mut sum = 0u64;
    for y in 1..H - 1 {
        for x in 1..W - 1 {
            let mut n: Vec<u8> = (0..9).map(|k| depth[(y + k / 3 - 1) * W + x + k % 3 - 1]).collect();
            n.sort_unstable();
            sum += u64::from(n[4]);
        }
    }
    sum as f64 / (W * H) as f64
}
