//! The image operations the heavy stages are made of, behind one seam: the
//! CPU implementation here, the CUDA one in `cuda_kernels` (feature `cuda`),
//! chosen by `pipeline::kernels`;
//! the stages do not change.

use rayon::prelude::*;

use crate::geometry::Camera;
use crate::image::Image;

/// What the pipeline computes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU, on a thread pool.
    Cpu,
    /// An NVIDIA GPU, through CUDA (feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda,
}

/// Image operations of the pipeline's heavy stages.
pub trait Kernels: Sync {
    /// A distorted image resampled onto the camera's ideal pinhole grid (NaN outside).
    fn undistort(&self, cam: &Camera, img: &Image) -> Image;
    /// `img` sampled at every pixel shifted by `(du, dv)`, bilinearly (NaN outside):
    /// a source view warped onto a fronto-parallel plane of the reference view.
    fn shifted(&self, img: &Image, du: f32, dv: f32) -> Vec<f32>;
}

/// Rayon over rows.
pub struct CpuKernels;

impl Kernels for CpuKernels {
    fn undistort(&self, cam: &Camera, img: &Image) -> Image {
        let mut out = Image::new(cam.width, cam.height);
        out.data.par_chunks_mut(cam.width).enumerate().for_each(|(v, row)| {
            for (u, px) in row.iter_mut().enumerate() {
                let (xn, yn) = ((u as f32 - cam.cx) / cam.fx, (v as f32 - cam.cy) / cam.fy);
                let (ud, vd) = cam.distort(xn, yn);
                *px = img.sample(ud, vd).unwrap_or(f32::NAN);
            }
        });
        out
    }

    fn shifted(&self, img: &Image, du: f32, dv: f32) -> Vec<f32> {
        let w = img.width;
        let mut out = vec![f32::NAN; w * img.height];
        out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            for (x, px) in row.iter_mut().enumerate() {
                *px = img.sample(x as f32 + du, y as f32 + dv).unwrap_or(f32::NAN);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_pixel_shift_moves_values() {
        let img = Image { width: 3, height: 1, data: vec![1.0, 2.0, 3.0] };
        let s = CpuKernels.shifted(&img, 1.0, 0.0);
        assert_eq!(&s[..2], &[2.0, 3.0]);
        assert!(s[2].is_nan());
    }
}
