//! Access to candle's CPU storage for the custom operations of this folder.

use candle_core::{CpuStorage, Layout, Result};

/// The f32 elements a CPU custom op `op` reads: its storage must be f32 and `layout` contiguous.
pub fn contiguous_f32<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32 input");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input");
    };
    Ok(&data[start..end])
}

/// An output buffer shared by the tasks of one product, each writing its own block of it.
#[derive(Clone, Copy)]
pub struct SharedOut(pub *mut f32);

// SAFETY: the tasks that share it write disjoint blocks (each user says which).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element at `offset`, through a method so closures capture the whole (Send) wrapper.
    pub fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}
