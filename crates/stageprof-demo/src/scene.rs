//! The synthetic scene: a textured surface of known shape, the cameras
//! looking at it, and the images they see.

use rayon::prelude::*;

use crate::geometry::Camera;
use crate::image::Image;

/// An undulating surface in front of the cameras: z = base + a sin(kx + phase) cos(ky), in mm.
#[derive(Clone, Copy, Debug)]
pub struct Surface {
    /// Mean depth (mm).
    pub base_z: f32,
    /// Height of the undulation (mm).
    pub amplitude: f32,
    /// Length of one undulation (mm).
    pub wavelength: f32,
    /// Moves the undulation from frame to frame.
    pub phase: f32,
}

impl Surface {
    /// The surface of frame `frame`.
    pub fn at_frame(frame: usize) -> Surface {
        Surface { base_z: 1000.0, amplitude: 20.0, wavelength: 150.0, phase: frame as f32 * 0.35 }
    }

    /// The surface's depth at `(x, y)`.
    pub fn height(&self, x: f32, y: f32) -> f32 {
        let k = std::f32::consts::TAU / self.wavelength;
        self.base_z + self.amplitude * (k * x + self.phase).sin() * (k * y).cos()
    }

    /// Brightness of the surface's texture at (x, y): incommensurate waves
    /// and smooth noise, so that every patch looks different.
    pub fn texture(&self, x: f32, y: f32) -> f32 {
        let waves = 0.16 * (0.31 * x + 0.17 * y).sin()
            + 0.12 * (-0.23 * x + 0.41 * y + 1.3).sin()
            + 0.08 * (0.57 * x - 0.11 * y + 0.7).sin();
        (0.5 + waves + 0.35 * (value_noise(x / 9.0, y / 9.0) - 0.5)).clamp(0.0, 1.0)
    }

    /// Where the ray from `origin` along `(dx, dy, 1)` meets the surface.
    pub fn intersect(&self, origin: [f32; 3], dx: f32, dy: f32) -> [f32; 3] {
        let mut z = self.base_z;
        for _ in 0..40 {
            let t = z - origin[2];
            z = self.height(origin[0] + dx * t, origin[1] + dy * t);
        }
        let t = z - origin[2];
        [origin[0] + dx * t, origin[1] + dy * t, z]
    }
}

fn hash(ix: i32, iy: i32) -> f32 {
    let mut h = (ix as u32).wrapping_mul(0x8da6_b343) ^ (iy as u32).wrapping_mul(0xd816_3841);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    (h & 0xffff) as f32 / 65535.0
}

/// Smoothly interpolated lattice noise in [0, 1].
fn value_noise(x: f32, y: f32) -> f32 {
    let (ix, iy) = (x.floor() as i32, y.floor() as i32);
    let (fx, fy) = (x - x.floor(), y - y.floor());
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = hash(ix, iy) * (1.0 - sx) + hash(ix + 1, iy) * sx;
    let bottom = hash(ix, iy + 1) * (1.0 - sx) + hash(ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Distance of the other cameras from the reference camera.
pub const BASELINE_MM: f32 = 100.0;

/// Cameras and their layout.
#[derive(Clone, Debug)]
pub struct Rig {
    /// The cameras, in order.
    pub cameras: Vec<Camera>,
}

impl Rig {
    /// `views` cameras of `width` x `height` pixels: a reference camera and
    /// the others around it at [`BASELINE_MM`], all with barrel distortion.
    pub fn new(views: usize, width: usize, height: usize) -> Rig {
        let f = 1.25 * width as f32;
        let cameras = (0..views)
            .map(|i| {
                let center = if i == 0 {
                    [0.0, 0.0, 0.0]
                } else {
                    let a = (i - 1) as f32 * std::f32::consts::TAU / (views - 1).max(1) as f32;
                    [BASELINE_MM * a.cos(), BASELINE_MM * a.sin(), 0.0]
                };
                Camera {
                    fx: f,
                    fy: f,
                    cx: (width as f32 - 1.0) / 2.0,
                    cy: (height as f32 - 1.0) / 2.0,
                    k1: -0.10,
                    k2: 0.02,
                    center,
                    width,
                    height,
                }
            })
            .collect();
        Rig { cameras }
    }
}

/// What `camera` sees of `surface`: each distorted pixel's ray, cast onto the surface.
pub fn render(camera: &Camera, surface: &Surface) -> Image {
    let mut img = Image::new(camera.width, camera.height);
    img.data.par_chunks_mut(camera.width).enumerate().for_each(|(v, row)| {
        for (u, px) in row.iter_mut().enumerate() {
            let (xn, yn) = camera.undistort(u as f32, v as f32);
            let p = surface.intersect(camera.center, xn, yn);
            *px = surface.texture(p[0], p[1]);
        }
    });
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rays_land_on_the_surface() {
        let s = Surface::at_frame(3);
        let p = s.intersect([20.0, -10.0, 0.0], 0.2, -0.15);
        assert!((p[2] - s.height(p[0], p[1])).abs() < 1e-3);
        assert!((p[0] - (20.0 + 0.2 * p[2])).abs() < 1e-2);
    }

    #[test]
    fn texture_varies_and_stays_in_range() {
        let s = Surface::at_frame(0);
        let values: Vec<f32> = (0..200).map(|i| s.texture(i as f32 * 3.7, i as f32 * 1.3)).collect();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(var.sqrt() > 0.08, "texture contrast {}", var.sqrt());
    }
}
