//! Linear layers for CPU inference through Intel MKL's packed GEMM (`mkl` feature).
//!
//! candle hands every product to `sgemm`, which re-packs the weight matrix into MKL's internal
//! panel layout on every call; at batch 1 that copy was 30 % of an image pass (perf). Inference
//! weights never change, so each is packed once:
//! - f32 (`cblas_sgemm_pack`/`cblas_sgemm_compute`): the same products, results within rounding of
//!   candle's (bit-identical from 64 rows up, measured);
//! - bf16 (`cblas_gemm_bf16bf16f32_*`, opt-in): weights and activations rounded to bf16, products
//!   accumulated in f32, the rest of the network in f32, as PyTorch's CPU autocast does. MKL runs it
//!   on AMX or AVX512-BF16 where the CPU has them (3-4x f32's throughput on this machine) and
//!   emulates it elsewhere.
//!
//! The bias is fused: the output starts as the bias rows and the product is accumulated onto it.

use std::ffi::c_void;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

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

/// A linear layer's weight `[out, in]` packed for `x W^T + b`, with its bias.
#[derive(Debug)]
pub struct PackedLinear {
    packed: MklBuffer,
    bf16: bool,
    out_features: usize,
    in_features: usize,
    bias: Vec<f32>,
}

fn mkl_int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} {v} exceeds MKL's int")))
}

impl PackedLinear {
    /// Packs `weight` (`[out, in]`, any float dtype, CPU) for products in `compute` (f32 or bf16).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, compute: DType) -> Result<Self> {
        let (n, k) = weight.dims2()?;
        let (ni, ki) = (mkl_int(n, "out_features")?, mkl_int(k, "in_features")?);
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
        let packed = match compute {
            DType::F32 => {
                // SAFETY: size query only.
                let bytes = unsafe { cblas_sgemm_pack_get_size(B_MATRIX, 1, ni, ki) };
                let buf = MklBuffer::new(bytes)?;
                // SAFETY: `w` holds n*k floats in row-major [n, k] (ld = k); op(B) = W^T is
                // k x n; `buf` has the size MKL asked for.
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
                buf
            }
            DType::BF16 => {
                let wb = to_bf16_bits(&w);
                // SAFETY: as above, for the bf16 variant.
                let bytes = unsafe { cblas_gemm_bf16bf16f32_pack_get_size(B_MATRIX, 1, ni, ki) };
                let buf = MklBuffer::new(bytes)?;
                // SAFETY: as above; `wb` holds n*k bf16 values.
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
                buf
            }
            other => candle_core::bail!("packed MKL products run in f32 or bf16, not {other:?}"),
        };
        Ok(Self {
            packed,
            bf16: compute == DType::BF16,
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
    src.iter()
        .map(|&v| {
            let bits = v.to_bits();
            if v.is_nan() {
                ((bits >> 16) | 0x40) as u16
            } else {
                ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
            }
        })
        .collect()
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "mkl-packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("mkl-packed-linear: expected f32 input");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("mkl-packed-linear: expected a contiguous input");
        };
        let (n, k) = (self.out_features, self.in_features);
        let dims = layout.dims();
        if dims.last() != Some(&k) {
            candle_core::bail!("mkl-packed-linear: input {dims:?} does not end in {k} features");
        }
        let x = &data[start..end];
        let m = x.len() / k;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        let mut y = Vec::with_capacity(m * n);
        for _ in 0..m {
            y.extend_from_slice(&self.bias);
        }
        if m > 0 {
            let (mi, ni, ki) = (mkl_int(m, "rows")?, n as i32, k as i32);
            if self.bf16 {
                let xb = to_bf16_bits(x);
                // SAFETY: `xb` is m x k row-major, `y` m x n, the packed B matches (n, k).
                unsafe {
                    cblas_gemm_bf16bf16f32_compute(
                        ROW_MAJOR,
                        NO_TRANS,
                        PACKED,
                        mi,
                        ni,
                        ki,
                        1.0,
                        xb.as_ptr(),
                        ki,
                        self.packed.ptr.cast(),
                        ki,
                        1.0,
                        y.as_mut_ptr(),
                        ni,
                    )
                };
            } else {
                // SAFETY: as above with f32 `x`.
                unsafe {
                    cblas_sgemm_compute(
                        ROW_MAJOR,
                        NO_TRANS,
                        PACKED,
                        mi,
                        ni,
                        ki,
                        x.as_ptr(),
                        ki,
                        self.packed.ptr.cast(),
                        ki,
                        1.0,
                        y.as_mut_ptr(),
                        ni,
                    )
                };
            }
        }
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module, Tensor};

    use super::PackedLinear;

    fn reference(rows: usize) -> (candle_nn::Linear, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (96, 80), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 96, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, rows, 80), &dev).unwrap();
        (candle_nn::Linear::new(w, Some(b)), x)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
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
