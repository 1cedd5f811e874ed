//! `stageprof demo`: a multi-view-stereo pipeline that really reconstructs a
//! surface, profiled stage by stage.
//!
//! A scene is made in code ([`scene`]): an undulating textured surface with
//! known shape, seen by calibrated cameras with radial lens distortion
//! ([`geometry`]). The pipeline ([`pipeline`]) undistorts the images,
//! matches them sparsely and densely, estimates depth by plane sweep,
//! fuses and reconstructs the surface; [`check`] then measures the depth
//! error against the known surface, so a broken stage cannot hide behind a
//! nice profile.

#![warn(missing_docs, unreachable_pub)]

pub mod check;
#[cfg(feature = "cuda")]
pub mod cuda_kernels;
pub mod geometry;
pub mod image;
pub mod kernels;
pub mod pipeline;
pub mod pipelined;
pub mod scene;
