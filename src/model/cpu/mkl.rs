//! Linear layers for CPU inference through Intel MKL's packed GEMM (`mkl` feature).
//!
//! candle hands every product to `sgemm`, which re-packs the weight matrix into MKL's internal
//! panel layout on every call; at batch 1 that copy was 30 % of an image pass (perf). Inference
//! weights never change, so each is packed once:
//! - f32 (`cblas_sgemm_pack`/`cblas_sgemm_compute`): the same products, results within rounding of
//!   candle's;
//! - bf16 (`cblas_gemm_bf16bf16f32_*`, opt-in): weights and activations rounded to bf16, products
//!   accumulated in f32, the rest of the network in f32, as PyTorch's CPU autocast does. MKL runs it
//!   on AMX or AVX512-BF16 where the CPU has them (3-4x f32's throughput on this machine); without
//!   them it still runs, at about f32's speed.
//!
//! The bias is fused: the output starts as the bias rows and the product is accumulated onto it.

use std::ffi::c_void;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::storage::SharedOut;

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;
const PACKED: i32 = 151;
const B_MATRIX: i32 = 162;

#[allow(non_snake_case)]
extern "C" {
    fn cblas_sgemm_pack_get_size(identifier: i32, m: i32, n: i32, k: i32) -> usize;
    fn cblas_sgemm_pack(
        layout: i32,
        identifier: i32,
        trans: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        src: *const f32,
        ld: i32,
        dest: *mut f32,
    );
    fn cblas_sgemm_compute(
        layout: i32,
        transa: i32,
        transb: i32,
        m: i32,
        n: i32,
        k: i32,
        a: *const f32,
        lda: i32,
        b: *const f32,
        ldb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn cblas_gemm_bf16bf16f32_pack_get_size(identifier: i32, m: i32, n: i32, k: i32) -> usize;
    fn cblas_gemm_bf16bf16f32_pack(
        layout: i32,
        identifier: i32,
        trans: i32,
        m: i32,
        n: i32,
        k: i32,
        src: *const u16,
        ld: i32,
        dest: *mut u16,
    );
    fn cblas_gemm_bf16bf16f32_compute(
        layout: i32,
        transa: i32,
        transb: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const u16,
        lda: i32,
        b: *const u16,
        ldb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    // mkl_service.h's `mkl_malloc`/`mkl_free` are macros for these; the lower-case symbols are
    // the Fortran interface (arguments by reference).
    #[link_name = "MKL_malloc"]
    fn mkl_malloc(size: usize, align: i32) -> *mut c_void;
    #[link_name = "MKL_free"]
    fn mkl_free(ptr: *mut c_void);
    #[link_name = "MKL_Set_Num_Threads_Local"]
    fn mkl_set_num_threads_local(n: i32) -> i32;
}

/// A buffer from `mkl_malloc` (MKL's packed layouts want its alignment).
#[derive(Debug)]
struct MklBuffer {
    ptr: *mut c_void,
}

// SAFETY: the buffer is written once while packing and only read afterwards (MKL's compute
// functions take it as const), so sharing it between threads is sound.
unsafe impl Send for MklBuffer {}
unsafe impl Sync for MklBuffer {}

impl MklBuffer {
    fn new(bytes: usize) -> Result<Self> {
        // SAFETY: plain allocation; a null result is checked.
        let ptr = unsafe { mkl_malloc(bytes.max(64), 64) };
        if ptr.is_null() {
            candle_core::bail!("MKL could not allocate {bytes} bytes for packed weights");
        }
        Ok(Self { ptr })
    }
}

impl Drop for MklBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from mkl_malloc and is freed once.
        unsafe { mkl_free(self.ptr) }
    }
}

/// One column block of a packed weight: outputs `start..start + len`.
#[derive(Debug)]
struct Part {
    start: usize,
    len: usize,
    packed: MklBuffer,
}

/// A linear layer's weight `[out, in]` packed for `x W^T + b`, with its bias. The outputs are
/// split into one column block per thread of the pool, each packed on its own, so a product runs
/// as one single-threaded MKL call per block, in parallel, and each thread reads only its share
/// of the weight (at batch 1 a text pass is bound by reading the weights).
#[derive(Debug)]
pub struct PackedLinear {
    parts: Vec<Part>,
    bf16: bool,
    out_features: usize,
    in_features: usize,
    bias: Vec<f32>,
}

fn mkl_int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} {v} exceeds MKL's int")))
}

/// Packs rows `[n, k]` of a row-major weight (op(B) = W^T, `k x n`).
fn pack(w: &[f32], n: usize, k: usize, bf16: bool) -> Result<MklBuffer> {
    let (ni, ki) = (mkl_int(n, "out_features")?, mkl_int(k, "in_features")?);
    if bf16 {
        let wb = to_bf16_bits(w);
        // SAFETY: size query only.
        let bytes = unsafe { cblas_gemm_bf16bf16f32_pack_get_size(B_MATRIX, 1, ni, ki) };
        let buf = MklBuffer::new(bytes)?;
        // SAFETY: `wb` holds n*k bf16 values row-major (ld = k); `buf` has the size MKL asked
        // for.
        unsafe {
            cblas_gemm_bf16bf16f32_pack(
                ROW_MAJOR,
                B_MATRIX,
                TRANS,
                1,
                ni,
                ki,
                wb.as_ptr(),
                ki,
                buf.ptr.cast(),
            )
        };
        Ok(buf)
    } else {
        // SAFETY: size query only.
        let bytes = unsafe { cblas_sgemm_pack_get_size(B_MATRIX, 1, ni, ki) };
        let buf = MklBuffer::new(bytes)?;
        // SAFETY: `w` holds n*k floats row-major (ld = k); `buf` has the size MKL asked for.
        unsafe {
            cblas_sgemm_pack(
                ROW_MAJOR,
                B_MATRIX,
                TRANS,
                1,
                ni,
                ki,
                1.0,
                w.as_ptr(),
                ki,
                buf.ptr.cast(),
            )
        };
        Ok(buf)
    }
}

impl PackedLinear {
    /// Packs `weight` (`[out, in]`, any float dtype, CPU) for products in `compute` (f32 or bf16).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, compute: DType) -> Result<Self> {
        let (n, k) = weight.dims2()?;
        let bf16 = match compute {
            DType::F32 => false,
            DType::BF16 => true,
            other => candle_core::bail!("packed MKL products run in f32 or bf16, not {other:?}"),
        };
        let w = weight
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = match bias {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; n],
        };
        if bias.len() != n {
            candle_core::bail!("bias has {} entries for {n} outputs", bias.len());
        }
        // Blocks of whole 64-column panels, as many as the pool has threads.
        let threads = rayon::current_num_threads().max(1);
        let block = n.div_ceil(threads).div_ceil(64).max(1) * 64;
        let parts = (0..n)
            .step_by(block)
            .map(|start| {
                let len = block.min(n - start);
                Ok(Part {
                    start,
                    len,
                    packed: pack(&w[start * k..(start + len) * k], len, k, bf16)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            parts,
            bf16,
            out_features: n,
            in_features: k,
            bias,
        })
    }

    /// `x W^T + b` for f32 `x` `[..., in]` on the CPU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }
}

/// f32 → bf16 bit patterns, rounding to nearest even (as PyTorch's conversion; NaN stays NaN).
fn to_bf16_bits(src: &[f32]) -> Vec<u16> {
    src.iter().map(|&v| super::kernels::bf16_bits(v)).collect()
}

/// Activations converted to bf16 per task: large enough to amortise scheduling.
const CONVERT_CHUNK: usize = 64 * 1024;

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "mkl-packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::storage::contiguous_f32(self.name(), storage, layout)?;
        let (n, k) = (self.out_features, self.in_features);
        let dims = layout.dims();
        if dims.last() != Some(&k) {
            candle_core::bail!("mkl-packed-linear: input {dims:?} does not end in {k} features");
        }
        let m = x.len() / k;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        let mut y = Vec::with_capacity(m * n);
        for _ in 0..m {
            y.extend_from_slice(&self.bias);
        }
        if m == 0 {
            return Ok((CpuStorage::F32(y), Shape::from(out_dims)));
        }
        let xb = self.bf16.then(|| {
            let mut xb = vec![0u16; x.len()];
            xb.par_chunks_mut(CONVERT_CHUNK)
                .zip(x.par_chunks(CONVERT_CHUNK))
                .for_each(|(d, s)| d.copy_from_slice(&to_bf16_bits(s)));
            xb
        });
        // Many rows (an image pass): each task takes a block of rows through every column
        // block, so MKL packs only that task's activations. Few rows (a text at batch 1, bound
        // by reading the weights): one task per column block, each reading only its weights.
        let threads = rayon::current_num_threads().max(1);
        let row_blocks = if m >= threads * ROW_SPLIT_MIN {
            threads
        } else {
            1
        };
        let rows = m.div_ceil(row_blocks);
        let out = SharedOut(y.as_mut_ptr());
        let xb = xb.as_deref();
        let tasks = if row_blocks > 1 {
            row_blocks
        } else {
            self.parts.len()
        };
        (0..tasks)
            .into_par_iter()
            .try_for_each(|task| -> Result<()> {
                let (r0, parts) = if row_blocks > 1 {
                    (task * rows, &self.parts[..])
                } else {
                    (0, &self.parts[task..task + 1])
                };
                let r1 = (r0 + rows).min(m);
                if r0 >= r1 {
                    return Ok(());
                }
                let _sequential = Sequential::new();
                for part in parts {
                    self.compute(part, x, xb, r0..r1, out)?;
                }
                Ok(())
            })?;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

/// Rows per thread from which a product is split by rows rather than by column blocks.
const ROW_SPLIT_MIN: usize = 128;

impl PackedLinear {
    /// `y[rows, part's columns] += x[rows] W[part]^T` on the calling thread.
    fn compute(
        &self,
        part: &Part,
        x: &[f32],
        xb: Option<&[u16]>,
        rows: std::ops::Range<usize>,
        out: SharedOut,
    ) -> Result<()> {
        let (n, k) = (self.out_features, self.in_features);
        let m = mkl_int(rows.len(), "rows")?;
        let (ni, ki, ldc) = (part.len as i32, k as i32, n as i32);
        // SAFETY: `x`/`xb` hold (rows.end) x k values row-major, checked below; `out` points at
        // m x n values of which this call writes rows `rows`, columns `start..start + len`
        // (ldc = n), a block no other task writes; the packed block matches (len, k).
        let c = out.at(rows.start * n + part.start);
        match xb {
            Some(xb) => {
                let a = &xb[rows.start * k..rows.end * k];
                unsafe {
                    cblas_gemm_bf16bf16f32_compute(
                        ROW_MAJOR,
                        NO_TRANS,
                        PACKED,
                        m,
                        ni,
                        ki,
                        1.0,
                        a.as_ptr(),
                        ki,
                        part.packed.ptr.cast(),
                        ki,
                        1.0,
                        c,
                        ldc,
                    )
                }
            }
            None => {
                let a = &x[rows.start * k..rows.end * k];
                unsafe {
                    cblas_sgemm_compute(
                        ROW_MAJOR,
                        NO_TRANS,
                        PACKED,
                        m,
                        ni,
                        ki,
                        a.as_ptr(),
                        ki,
                        part.packed.ptr.cast(),
                        ki,
                        1.0,
                        c,
                        ldc,
                    )
                }
            }
        }
        Ok(())
    }
}

/// Makes MKL run single-threaded on the current thread until dropped (`mkl_set_num_threads_local`).
/// The encoder's parallelism comes from the rayon pool alone: MKL's OpenMP threads spin for a
/// while after each call, and on a small machine they and rayon's workers took turns stealing
/// each other's cores (a fifth of an image pass went to `sched_yield` and OpenMP's wait loop).
pub struct Sequential {
    previous: i32,
}

impl Sequential {
    /// Switches the current thread's MKL calls to one thread.
    pub fn new() -> Self {
        // SAFETY: sets a thread-local MKL setting; returns the previous one.
        let previous = unsafe { mkl_set_num_threads_local(1) };
        Self { previous }
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sequential {
    fn drop(&mut self) {
        // SAFETY: restores the thread-local setting (0 = the global default).
        unsafe { mkl_set_num_threads_local(self.previous) };
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module, Tensor};

    use super::PackedLinear;
    use crate::model::cpu::testing::max_diff;

    fn reference(rows: usize) -> (candle_nn::Linear, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (96, 80), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 96, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, rows, 80), &dev).unwrap();
        (candle_nn::Linear::new(w, Some(b)), x)
    }

    #[test]
    fn packed_f32_matches_candle() {
        for rows in [1, 7, 70] {
            let (lin, x) = reference(rows);
            let packed = PackedLinear::new(lin.weight(), lin.bias(), DType::F32).unwrap();
            let got = packed.forward(&x).unwrap();
            assert_eq!(got.dims(), &[2, rows, 96]);
            assert!(max_diff(&got, &lin.forward(&x).unwrap()) < 1e-5);
        }
    }

    #[test]
    fn packed_bf16_is_close_to_f32() {
        let (lin, x) = reference(33);
        let packed = PackedLinear::new(lin.weight(), lin.bias(), DType::BF16).unwrap();
        let got = packed.forward(&x).unwrap();
        let want = lin.forward(&x).unwrap();
        let d = max_diff(&got, &want);
        assert!(d > 0.0 && d < 3e-2, "bf16 differs from f32 by {d}");
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        let bits = super::to_bf16_bits(&[1.0, f32::from_bits(0x3f80_8000), -2.5]);
        assert_eq!(bits, vec![0x3f80, 0x3f80, 0xc020]);
    }
}
