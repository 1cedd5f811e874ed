//! GPU memory allocated through stageprof, so stages get its peak and net.
//!
//! A [`GpuBuffer`] is a cudarc `CudaSlice` that adds its bytes to the
//! session's GPU level when made and takes them off when dropped; stages
//! read the level at begin and end the same way they read the host heap.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, DriverError, ValidAsZeroBits};

use crate::alloc::GPU_LEVEL;

/// Device memory whose bytes stageprof counts. Use it wherever a
/// `CudaSlice` goes (it dereferences to one).
pub struct GpuBuffer<T> {
    slice: CudaSlice<T>,
    bytes: i64,
}

impl<T> GpuBuffer<T> {
    fn track(slice: CudaSlice<T>) -> GpuBuffer<T> {
        let bytes = (slice.len() * std::mem::size_of::<T>()) as i64;
        GPU_LEVEL.add(bytes);
        GpuBuffer { slice, bytes }
    }

    /// The buffer, no longer counted (as if freed now).
    pub fn into_inner(self) -> CudaSlice<T> {
        GPU_LEVEL.add(-self.bytes);
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the slice is moved out exactly once.
        unsafe { std::ptr::read(&this.slice) }
    }
}

/// `len` zeroed elements on `stream`, counted.
pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<GpuBuffer<T>, DriverError> {
    stream.alloc_zeros(len).map(GpuBuffer::track)
}

/// A device copy of `host` made on `stream`, counted.
pub fn clone_htod<T: DeviceRepr>(stream: &Arc<CudaStream>, host: &[T]) -> Result<GpuBuffer<T>, DriverError> {
    stream.clone_htod(host).map(GpuBuffer::track)
}

impl<T> Deref for GpuBuffer<T> {
    type Target = CudaSlice<T>;
    fn deref(&self) -> &CudaSlice<T> {
        &self.slice
    }
}

impl<T> DerefMut for GpuBuffer<T> {
    fn deref_mut(&mut self) -> &mut CudaSlice<T> {
        &mut self.slice
    }
}

impl<T> Drop for GpuBuffer<T> {
    fn drop(&mut self) {
        GPU_LEVEL.add(-self.bytes);
    }
}
