//! The pipeline, one function per stage, each marked with `stageprof::scope!`.

use rayon::prelude::*;

use crate::check::{depth_error, DepthError};
use crate::geometry::Camera;
use crate::image::Image;
use crate::kernels::{CpuKernels, Device, Kernels};
use crate::scene::{render, Rig, Surface};

/// The kernels of `device`.
pub fn kernels(device: Device) -> &'static dyn Kernels {
    match device {
        Device::Cpu => &CpuKernels,
        #[cfg(feature = "cuda")]
        Device::Cuda => crate::cuda_kernels::cuda_kernels().expect("Device::Cuda is chosen only once the GPU works"),
    }
}

/// When pairwise results are let go (the user's planning notes compare both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Keep every pair's correspondence field, and the matcher's buffers,
    /// until all pairs are done and the frame is reconstructed.
    Accumulate,
    /// Turn each pair into depth as soon as it is matched; free the matcher
    /// before the later stages.
    Incremental,
}

/// Pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Cameras around the scene.
    pub views: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Depth hypotheses of the plane sweep.
    pub depth_planes: usize,
    /// Hypotheses processed (and held in memory) at once.
    pub depth_batch: usize,
    /// How buffers are kept between frames.
    pub memory: MemoryMode,
    /// What computes.
    pub device: Device,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            views: 4,
            width: 320,
            height: 240,
            depth_planes: 48,
            depth_batch: 8,
            memory: MemoryMode::Incremental,
            device: Device::Cpu,
        }
    }
}

/// What one frame produced.
#[derive(Clone, Copy, Debug)]
pub struct FrameResult {
    /// Depth error against the known surface, where any depth was found.
    pub error: Option<DepthError>,
    /// Mutual nearest-neighbour matches.
    pub sparse_matches: usize,
    /// Points of the reconstructed surface.
    pub surface_points: usize,
}

/// Names the threads of rayon's global pool (`rayon-0`, ...), so the
/// report's threads read as what they are; a pool already started keeps
/// its names. Call it before the first frame.
pub fn name_worker_threads() {
    let _ = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("rayon-{i}")).build_global();
}

/// Runs the whole pipeline on frame `frame` of the moving scene.
pub fn run_frame(config: &PipelineConfig, rig: &Rig, frame: usize) -> FrameResult {
    let surface = Surface::at_frame(frame);
    let captured = capture(rig, &surface);
    let k = kernels(config.device);
    let images = undistortion(k, rig, &captured);
    drop(captured);
    let (sparse_matches, range) = sparse_matching(rig, &images);
    let pairwise = dense_matching(config, rig, &images, range);
    let depth = depth_estimation(k, config, rig, &images, range);
    let fused = fusion(&depth, &pairwise.depths);
    let surface_points = surface_reconstruction(&rig.cameras[0], &fused);
    // In accumulate mode the pairwise fields and the matcher live until here.
    drop(pairwise);
    let error = check_against(&rig.cameras[0], &surface, &fused);
    FrameResult { error, sparse_matches, surface_points }
}

/// Every camera's image of `surface`.
pub fn capture(rig: &Rig, surface: &Surface) -> Vec<Image> {
    let _s = stageprof::scope!("capture");
    rig.cameras.iter().map(|c| render(c, surface)).collect()
}

/// Lens distortion removed: every view resampled onto its ideal pinhole grid.
pub fn undistortion(k: &dyn Kernels, rig: &Rig, captured: &[Image]) -> Vec<Image> {
    let _s = stageprof::scope!("undistortion");
    rig.cameras
        .iter()
        .zip(captured)
        .map(|(cam, img)| {
            let _v = stageprof::scope!("undistort_view");
            k.undistort(cam, img)
        })
        .collect()
}

/// Depth of the point seen at `(u, v)` in the reference view and at `(us, vs)`
/// in view `cam`: cameras differ only by translation, so the shift lies along the baseline.
fn triangulate(reference: &Camera, cam: &Camera, du: f32, dv: f32) -> Option<f32> {
    let (bx, by) = (reference.center[0] - cam.center[0], reference.center[1] - cam.center[1]);
    let along = du * bx + dv * by;
    (along > 0.0).then(|| reference.fx * (bx * bx + by * by) / along)
}

/// Where a reference pixel lands in `cam` if the point is at depth `z`.
fn shift(reference: &Camera, cam: &Camera, z: f32) -> (f32, f32) {
    (reference.fx * (reference.center[0] - cam.center[0]) / z, reference.fy * (reference.center[1] - cam.center[1]) / z)
}

const PATCH: usize = 7;

/// A keypoint and its descriptor.
type Feature = ((usize, usize), [f32; PATCH * PATCH]);

/// A mean/deviation-normalized patch around (x, y), or `None` near borders or in flat areas.
fn descriptor(img: &Image, x: usize, y: usize) -> Option<[f32; PATCH * PATCH]> {
    let r = PATCH / 2;
    if x < r || y < r || x + r >= img.width || y + r >= img.height {
        return None;
    }
    let mut d = [0.0f32; PATCH * PATCH];
    for (k, slot) in d.iter_mut().enumerate() {
        *slot = img.at(x + k % PATCH - r, y + k / PATCH - r);
    }
    let mean = d.iter().sum::<f32>() / d.len() as f32;
    let std = (d.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / d.len() as f32).sqrt();
    if std.is_nan() || std <= 1e-3 {
        return None;
    }
    d.iter_mut().for_each(|v| *v = (*v - mean) / std);
    Some(d)
}

/// Corners: local maxima of gradient energy, the strongest few hundred.
fn keypoints(img: &Image) -> Vec<(usize, usize)> {
    let (w, h) = (img.width, img.height);
    let energy = |x: usize, y: usize| {
        let gx = img.at(x + 1, y) - img.at(x - 1, y);
        let gy = img.at(x, y + 1) - img.at(x, y - 1);
        gx * gx + gy * gy
    };
    let mut found: Vec<(f32, usize, usize)> = Vec::new();
    for y in 8..h - 8 {
        for x in 8..w - 8 {
            let e = energy(x, y);
            if e.is_nan() || e <= 1e-3 {
                continue;
            }
            let is_max = (y - 2..=y + 2).all(|yy| (x - 2..=x + 2).all(|xx| (xx == x && yy == y) || energy(xx, yy) < e));
            if is_max {
                found.push((e, x, y));
            }
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    found.into_iter().take(400).map(|(_, x, y)| (x, y)).collect()
}

/// Keypoints, descriptors and mutual nearest neighbours between the
/// reference view and each other view; their depths bound the plane sweep.
pub fn sparse_matching(rig: &Rig, images: &[Image]) -> (usize, (f32, f32)) {
    let _s = stageprof::scope!("sparse_matching");
    let described: Vec<Vec<Feature>> = {
        let _d = stageprof::scope!("keypoints_and_descriptors");
        images
            .par_iter()
            .map(|img| keypoints(img).into_iter().filter_map(|p| Some((p, descriptor(img, p.0, p.1)?))).collect())
            .collect()
    };
    let _m = stageprof::scope!("mutual_nearest_neighbours");
    let dist = |a: &[f32; PATCH * PATCH], b: &[f32; PATCH * PATCH]| {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>()
    };
    let nearest = |d: &[f32; PATCH * PATCH], set: &[Feature]| {
        (0..set.len()).min_by(|&i, &j| dist(d, &set[i].1).total_cmp(&dist(d, &set[j].1)))
    };
    let reference = &described[0];
    let depths: Vec<f32> = (1..images.len())
        .into_par_iter()
        .flat_map_iter(|s| {
            let other = &described[s];
            let cams = (&rig.cameras[0], &rig.cameras[s]);
            (0..reference.len()).filter_map(move |i| {
                let j = nearest(&reference[i].1, other)?;
                (nearest(&other[j].1, reference)? == i).then_some(())?;
                let ((u, v), (us, vs)) = (reference[i].0, other[j].0);
                triangulate(cams.0, cams.1, us as f32 - u as f32, vs as f32 - v as f32)
            })
        })
        .filter(|z| (300.0..5000.0).contains(z))
        .collect();
    stageprof::counter!("sparse_matches", depths.len());
    (depths.len(), robust_range(depths))
}

/// The depth range the scene occupies: median and spread from the median
/// absolute deviation, so that a few wrong matches cannot stretch it.
fn robust_range(mut depths: Vec<f32>) -> (f32, f32) {
    if depths.is_empty() {
        return (500.0, 2000.0);
    }
    depths.sort_by(f32::total_cmp);
    let median = depths[depths.len() / 2];
    let mut deviations: Vec<f32> = depths.iter().map(|z| (z - median).abs()).collect();
    deviations.sort_by(f32::total_cmp);
    let mad = deviations[deviations.len() / 2];
    let spread = (4.5 * 1.4826 * mad).max(0.02 * median);
    (median - spread, median + spread)
}

/// Dense matching's results, pair by pair.
pub struct Pairwise {
    /// Per other view: depth of every reference pixel (NaN where unmatched).
    pub depths: Vec<Vec<f32>>,
    /// Accumulate mode only: the correspondence fields and the matcher's patch cache.
    _held: Vec<Vec<f32>>,
}

/// Dense correspondence between the reference view and each other view,
/// turned into depth. See [`MemoryMode`] for what is kept meanwhile.
pub fn dense_matching(config: &PipelineConfig, rig: &Rig, images: &[Image], range: (f32, f32)) -> Pairwise {
    let _s = stageprof::scope!("dense_matching");
    let reference = &images[0];
    let (w, h) = (reference.width, reference.height);
    // The matcher's buffers: every reference pixel's 5x5 patch, precomputed.
    let patches: Vec<f32> = {
        let _p = stageprof::scope!("matcher_setup");
        (0..w * h)
            .into_par_iter()
            .flat_map_iter(|i| {
                let (x, y) = (i % w, i / w);
                (0..25).map(move |k| {
                    let (xx, yy) = ((x + k % 5).saturating_sub(2).min(w - 1), (y + k / 5).saturating_sub(2).min(h - 1));
                    reference.at(xx, yy)
                })
            })
            .collect()
    };
    let steps = 32;
    let match_pair = |s: usize| -> Vec<f32> {
        let _m = stageprof::scope!("match_pair");
        let (cam0, cam) = (&rig.cameras[0], &rig.cameras[s]);
        let src = &images[s];
        // The correspondence field: matched position and cost, per reference pixel.
        let mut field = vec![f32::NAN; w * h * 3];
        field.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
            for x in 2..w.saturating_sub(2) {
                if !(2..h.saturating_sub(2)).contains(&y) {
                    break;
                }
                let patch = &patches[(y * w + x) * 25..(y * w + x + 1) * 25];
                let cost = |z: f32| {
                    let (du, dv) = shift(cam0, cam, z);
                    let mut sad = 0.0;
                    for (k, p) in patch.iter().enumerate() {
                        let q =
                            src.sample(x as f32 + du + (k % 5) as f32 - 2.0, y as f32 + dv + (k / 5) as f32 - 2.0)?;
                        sad += (p - q).abs();
                    }
                    (!sad.is_nan()).then_some(sad)
                };
                let z_at = |i: f32| 1.0 / (1.0 / range.1 + (1.0 / range.0 - 1.0 / range.1) * i / (steps - 1) as f32);
                let costs: Vec<Option<f32>> = (0..steps).map(|i| cost(z_at(i as f32))).collect();
                let Some((best, c)) =
                    costs.iter().enumerate().filter_map(|(i, c)| Some((i, (*c)?))).min_by(|a, b| a.1.total_cmp(&b.1))
                else {
                    continue;
                };
                let offset = match (best.checked_sub(1).and_then(|i| costs[i]), costs.get(best + 1).copied().flatten())
                {
                    (Some(a), Some(b)) if a + b - 2.0 * c > 0.0 => 0.5 * (a - b) / (a + b - 2.0 * c),
                    _ => 0.0,
                };
                let (du, dv) = shift(cam0, cam, z_at(best as f32 + offset));
                row[x * 3] = x as f32 + du;
                row[x * 3 + 1] = y as f32 + dv;
                row[x * 3 + 2] = c;
            }
        });
        field
    };
    let to_depth = |s: usize, field: &[f32]| -> Vec<f32> {
        let _c = stageprof::scope!("correspondence_to_depth");
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                triangulate(&rig.cameras[0], &rig.cameras[s], field[i * 3] - x, field[i * 3 + 1] - y)
                    .unwrap_or(f32::NAN)
            })
            .collect()
    };
    match config.memory {
        MemoryMode::Accumulate => {
            let fields: Vec<Vec<f32>> = (1..images.len()).map(match_pair).collect();
            let depths = fields.iter().enumerate().map(|(i, f)| to_depth(i + 1, f)).collect();
            let mut held = fields;
            held.push(patches);
            Pairwise { depths, _held: held }
        }
        MemoryMode::Incremental => {
            let depths = (1..images.len()).map(|s| to_depth(s, &match_pair(s))).collect();
            drop(patches);
            Pairwise { depths, _held: Vec::new() }
        }
    }
}

/// Plane sweep: costs of every depth hypothesis, in batches, and the best per pixel.
pub fn depth_estimation(
    k: &dyn Kernels,
    config: &PipelineConfig,
    rig: &Rig,
    images: &[Image],
    range: (f32, f32),
) -> Vec<f32> {
    let _s = stageprof::scope!("depth_estimation");
    let reference = &images[0];
    let (w, h) = (reference.width, reference.height);
    let planes = config.depth_planes.max(3);
    let inv = |i: f32| 1.0 / range.1 + (1.0 / range.0 - 1.0 / range.1) * i / (planes - 1) as f32;
    // Per pixel: best plane and cost, and the costs just before and after it (for sub-plane refinement).
    let mut best = vec![(usize::MAX, f32::INFINITY, f32::NAN, f32::NAN, f32::NAN); w * h];
    for batch_start in (0..planes).step_by(config.depth_batch.max(1)) {
        let batch: Vec<usize> = (batch_start..(batch_start + config.depth_batch.max(1)).min(planes)).collect();
        let volume = build_cost_volume(k, rig, images, &batch, &inv);
        let _e = stageprof::scope!("extract_depth");
        best.par_iter_mut().enumerate().for_each(|(i, state)| {
            for (b, &p) in batch.iter().enumerate() {
                let c = volume[b][i];
                if c < state.1 {
                    *state = (p, c, state.4, f32::NAN, c);
                } else if state.0 != usize::MAX && p == state.0 + 1 {
                    state.3 = c;
                }
                state.4 = c;
            }
        });
    }
    let _r = stageprof::scope!("refine_depth");
    best.par_iter()
        .map(|&(p, c, before, after, _)| {
            if p == usize::MAX {
                return f32::NAN;
            }
            let offset = if before.is_finite() && after.is_finite() && before + after - 2.0 * c > 0.0 {
                0.5 * (before - after) / (before + after - 2.0 * c)
            } else {
                0.0
            };
            1.0 / inv(p as f32 + offset)
        })
        .collect()
}

/// Costs of the planes in `batch` at every reference pixel: every source
/// view warped onto each plane (the batch's memory), compared with the
/// reference, aggregated over a 5x5 window.
fn build_cost_volume(
    k: &dyn Kernels,
    rig: &Rig,
    images: &[Image],
    batch: &[usize],
    inv: &(dyn Fn(f32) -> f32 + Sync),
) -> Vec<Vec<f32>> {
    let _b = stageprof::scope!("build_cost_volume");
    let reference = &images[0];
    let (w, h) = (reference.width, reference.height);
    let warped: Vec<Vec<f32>> = {
        let _w = stageprof::scope!("warp");
        batch
            .par_iter()
            .flat_map_iter(|&p| (1..images.len()).map(move |s| (p, s)))
            .map(|(p, s)| {
                let (du, dv) = shift(&rig.cameras[0], &rig.cameras[s], 1.0 / inv(p as f32));
                // A stage on the worker thread: GPU work launched here is attributed to it.
                let _s = stageprof::scope!("shift_view");
                k.shifted(&images[s], du, dv)
            })
            .collect()
    };
    let views = images.len() - 1;
    batch
        .par_iter()
        .enumerate()
        .map(|(b, _)| {
            let raw: Vec<f32> = (0..w * h)
                .map(|i| {
                    (0..views).map(|s| (warped[b * views + s][i] - reference.data[i]).abs()).sum::<f32>() / views as f32
                })
                .collect();
            box_filter(&raw, w, h, 2)
        })
        .collect()
}

/// Mean over a (2r+1)^2 window, NaNs ignored.
fn box_filter(data: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let (mut sum, mut n) = (0.0, 0);
            for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                    let v = data[yy * w + xx];
                    if v.is_finite() {
                        sum += v;
                        n += 1;
                    }
                }
            }
            if n == 0 {
                f32::INFINITY
            } else {
                sum / n as f32
            }
        })
        .collect()
}

/// Cross-view consistency, then median: of the plane sweep's depth and the
/// pairwise depths, those within 1% of their median are kept, and their
/// median is the fused depth; pixels with fewer than two agreeing estimates
/// are dropped.
pub fn fusion(sweep: &[f32], pairwise: &[Vec<f32>]) -> Vec<f32> {
    let _s = stageprof::scope!("fusion");
    (0..sweep.len())
        .into_par_iter()
        .map(|i| {
            let mut c: Vec<f32> =
                std::iter::once(sweep[i]).chain(pairwise.iter().map(|d| d[i])).filter(|z| z.is_finite()).collect();
            if c.len() < 2 {
                return f32::NAN;
            }
            c.sort_by(f32::total_cmp);
            let median = c[c.len() / 2];
            let agree: Vec<f32> = c.into_iter().filter(|z| (z - median).abs() <= 0.01 * median).collect();
            // `agree` is sorted (a filtered sorted list): its middle is its median.
            if agree.len() < 2 {
                f32::NAN
            } else {
                agree[agree.len() / 2]
            }
        })
        .collect()
}

/// Points from the fused depth, and normals from their neighbours; returns the number of points with a normal.
pub fn surface_reconstruction(cam: &Camera, depth: &[f32]) -> usize {
    let _s = stageprof::scope!("surface_reconstruction");
    let (w, h) = (cam.width, cam.height);
    let points: Vec<Option<[f32; 3]>> = (0..w * h)
        .map(|i| depth[i].is_finite().then(|| cam.unproject((i % w) as f32, (i / w) as f32, depth[i])))
        .collect();
    let normals = (1..h - 1)
        .into_par_iter()
        .map(|y| {
            (1..w - 1)
                .filter(|&x| {
                    let p = |xx: usize, yy: usize| points[yy * w + xx];
                    let (Some(l), Some(r), Some(u), Some(d)) = (p(x - 1, y), p(x + 1, y), p(x, y - 1), p(x, y + 1))
                    else {
                        return false;
                    };
                    let a = [r[0] - l[0], r[1] - l[1], r[2] - l[2]];
                    let b = [d[0] - u[0], d[1] - u[1], d[2] - u[2]];
                    let n = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
                    (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt() > 0.0
                })
                .count()
        })
        .sum();
    stageprof::counter!("surface_points", normals);
    normals
}

/// Depth error of the fused reference depth against the known surface,
/// away from the borders (where views do not overlap).
pub fn check_against(cam: &Camera, surface: &Surface, depth: &[f32]) -> Option<DepthError> {
    let (w, h) = (cam.width, cam.height);
    let margin = w / 8;
    let errors = (margin..h - margin)
        .flat_map(|y| (margin..w - margin).map(move |x| (x, y)))
        .filter_map(|(x, y)| {
            let z = depth[y * w + x];
            z.is_finite().then(|| {
                let p = cam.unproject(x as f32, y as f32, z);
                (p[2] - surface.height(p[0], p[1])).abs()
            })
        })
        .collect();
    depth_error(errors)
}
