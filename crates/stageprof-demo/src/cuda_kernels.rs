//! The pipeline's image operations on an NVIDIA GPU: CUDA C compiled at
//! run time with NVRTC (through cudarc), launched on one stream that the
//! driving thread's stages are timed on. Buffers go through
//! `stageprof::cuda`, so stages get their GPU memory too.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::compile_ptx;

use crate::geometry::Camera;
use crate::image::Image;
use crate::kernels::Kernels;

const SOURCE: &str = r#"
__device__ float sample(const float* img, int w, int h, float x, float y) {
    if (!(x >= 0.0f && y >= 0.0f && x <= (float)(w - 1) && y <= (float)(h - 1))) return __int_as_float(0x7fc00000);
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
    float fx = x - (float)x0, fy = y - (float)y0;
    float top = img[y0 * w + x0] * (1.0f - fx) + img[y0 * w + x1] * fx;
    float bottom = img[y1 * w + x0] * (1.0f - fx) + img[y1 * w + x1] * fx;
    return top * (1.0f - fy) + bottom * fy;
}

extern "C" __global__ void undistort(const float* img, int iw, int ih, float* out, int w, int h,
                                     float fx, float fy, float cx, float cy, float k1, float k2) {
    int u = blockIdx.x * blockDim.x + threadIdx.x, v = blockIdx.y * blockDim.y + threadIdx.y;
    if (u >= w || v >= h) return;
    float xn = ((float)u - cx) / fx, yn = ((float)v - cy) / fy;
    float r2 = xn * xn + yn * yn;
    float f = 1.0f + k1 * r2 + k2 * r2 * r2;
    out[v * w + u] = sample(img, iw, ih, fx * xn * f + cx, fy * yn * f + cy);
}

extern "C" __global__ void shifted(const float* img, int w, int h, float du, float dv, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    out[y * w + x] = sample(img, w, h, (float)x + du, (float)y + dv);
}
"#;

/// The compiled kernels and the stream they run on.
pub struct CudaKernels {
    /// The stream every kernel is launched on.
    pub stream: Arc<CudaStream>,
    undistort: CudaFunction,
    shifted: CudaFunction,
}

static KERNELS: OnceLock<Result<CudaKernels, String>> = OnceLock::new();

/// The GPU kernels, compiled on first use; why not, when there is no usable GPU.
pub fn cuda_kernels() -> Result<&'static CudaKernels, String> {
    KERNELS.get_or_init(CudaKernels::new).as_ref().map_err(Clone::clone)
}

impl CudaKernels {
    fn new() -> Result<CudaKernels, String> {
        // SAFETY: only checks that the driver library loads; nothing below runs without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver (libcuda.so) found".into());
        }
        // SAFETY: as above, for NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err("no NVRTC (libnvrtc.so) found to compile the kernels".into());
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device ({e})"))?;
        let ptx = compile_ptx(SOURCE).map_err(|e| format!("NVRTC could not compile the kernels: {e}"))?;
        let module = ctx.load_module(ptx).map_err(|e| format!("cannot load the kernels: {e}"))?;
        let function = |name: &str| module.load_function(name).map_err(|e| format!("kernel {name}: {e}"));
        Ok(CudaKernels {
            stream: ctx.new_stream().map_err(|e| format!("cannot make a stream: {e}"))?,
            undistort: function("undistort")?,
            shifted: function("shifted")?,
        })
    }

    fn grid(w: usize, h: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (w.div_ceil(16) as u32, h.div_ceil(16) as u32, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// A GPU failure inside the pipeline is not recoverable for the demo.
fn ok<T>(r: Result<T, cudarc::driver::DriverError>) -> T {
    r.unwrap_or_else(|e| panic!("CUDA call failed: {e}"))
}

impl Kernels for CudaKernels {
    fn undistort(&self, cam: &Camera, img: &Image) -> Image {
        let s = &self.stream;
        let input = ok(stageprof::cuda::clone_htod(s, &img.data));
        let mut out = ok(stageprof::cuda::alloc_zeros::<f32>(s, cam.width * cam.height));
        let (iw, ih, w, h) = (img.width as i32, img.height as i32, cam.width as i32, cam.height as i32);
        let mut launch = s.launch_builder(&self.undistort);
        launch.arg(&*input).arg(&iw).arg(&ih).arg(&mut *out).arg(&w).arg(&h);
        launch.arg(&cam.fx).arg(&cam.fy).arg(&cam.cx).arg(&cam.cy).arg(&cam.k1).arg(&cam.k2);
        // SAFETY: the arguments match the kernel's parameters, and the buffers hold w*h and iw*ih floats.
        ok(unsafe { launch.launch(Self::grid(cam.width, cam.height)) });
        Image { width: cam.width, height: cam.height, data: ok(s.clone_dtoh(&*out)) }
    }

    fn shifted(&self, img: &Image, du: f32, dv: f32) -> Vec<f32> {
        let s = &self.stream;
        let input = ok(stageprof::cuda::clone_htod(s, &img.data));
        let mut out = ok(stageprof::cuda::alloc_zeros::<f32>(s, img.width * img.height));
        let (w, h) = (img.width as i32, img.height as i32);
        let mut launch = s.launch_builder(&self.shifted);
        launch.arg(&*input).arg(&w).arg(&h).arg(&du).arg(&dv).arg(&mut *out);
        // SAFETY: the arguments match the kernel's parameters; both buffers hold w*h floats.
        ok(unsafe { launch.launch(Self::grid(img.width, img.height)) });
        ok(s.clone_dtoh(&*out))
    }
}
