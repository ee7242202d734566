//! AVX-512 matrix-product kernels for CPU inference: `y = epilogue(x W^T)` with the weight packed
//! once at load time.
//!
//! Both precisions share one blocking: a micro-tile of [`MR`] rows x [`NR`] (64) output columns
//! is held in 24 zmm accumulators; each step loads four vectors of the packed weight panel and
//! broadcasts one 32-bit value per row of `x`:
//! - f32: the value is `x[r, k]`, the operation `_mm512_fmadd_ps` (one k per step);
//! - bf16: the value is the pair `x[r, 2s], x[r, 2s+1]` rounded to bf16, the weight panel holds
//!   each column's pair interleaved the same way, and `_mm512_dpbf16_ps` (AVX512-BF16) adds both
//!   products to f32 accumulators (two k per step, at twice f32's rate on the CPUs that have it).
//!
//! The epilogue adds the bias and, optionally, a residual input, then applies GELU, while the tile
//! is still in registers. Everything here is x86-64 only and used only after runtime detection
//! ([`Precision::available`]); other CPUs keep candle's products.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of `x` per micro-tile.
pub const MR: usize = 6;
/// Output columns per micro-tile and per packed weight panel (four zmm of 16 lanes).
pub const NR: usize = 64;

/// Precision of the packed products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and products (AVX-512F).
    F32,
    /// bf16 weights and activations, f32 accumulation (AVX512-BF16).
    Bf16,
}

impl Precision {
    /// Whether this CPU has the instructions the kernels of this precision use.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let f = is_x86_feature_detected!("avx512f");
            match self {
                Precision::F32 => f,
                Precision::Bf16 => f && is_x86_feature_detected!("avx512bf16"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packed 32-bit elements per k index (f32: one; bf16: a pair holds two k).
    pub fn k_per_step(self) -> usize {
        match self {
            Precision::F32 => 1,
            Precision::Bf16 => 2,
        }
    }
}

/// f32 → bf16 bits, rounding to nearest even (NaN stays NaN), as PyTorch converts.
pub fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        ((bits >> 16) | 0x40) as u16
    } else {
        ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
    }
}

/// Packs a row-major weight `[n, k]` (`w[j * k + i]` is output `j`, input `i`) into panels of
/// [`NR`] columns: panel `p`, step `s`, lane `c` at `(p * steps + s) * NR + c`, as 32-bit words
/// (f32 bits, or two bf16 with the lower k in the low half). Columns past `n` and k past the
/// end are zero. Returns the words and the steps per panel.
pub fn pack_weight(w: &[f32], n: usize, k: usize, precision: Precision) -> (Vec<u32>, usize) {
    pack_weight_strided(w, n, k, (k, 1), precision)
}

/// [`pack_weight`] for a weight with any strides: output `j`, input `i` at `w[j * rs + i * cs]`
/// (attention packs its keys, `(3C, 1)`, and its values as their transpose, `(1, 3C)`).
pub fn pack_weight_strided(
    w: &[f32],
    n: usize,
    k: usize,
    (rs, cs): (usize, usize),
    precision: Precision,
) -> (Vec<u32>, usize) {
    let steps = k.div_ceil(precision.k_per_step());
    let panels = n.div_ceil(NR);
    let mut out = vec![0u32; panels * steps * NR];
    if precision == Precision::F32 {
        // Attention packs a key and a value block per head and sample: plain copies in the
        // order that reads `w` contiguously (keys by output, values by step).
        for (p, panel) in out.chunks_exact_mut(steps * NR).enumerate() {
            let cols = (n - p * NR).min(NR);
            if cs == 1 {
                for c in 0..cols {
                    let row = &w[(p * NR + c) * rs..][..k];
                    for (s, &v) in row.iter().enumerate() {
                        panel[s * NR + c] = v.to_bits();
                    }
                }
            } else {
                for (s, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    for (c, d) in dst[..cols].iter_mut().enumerate() {
                        *d = w[(p * NR + c) * rs + s * cs].to_bits();
                    }
                }
            }
        }
        return (out, steps);
    }
    // bf16: each step holds a pair of inputs, the odd last one paired with zero.
    for j in 0..n {
        let (p, c) = (j / NR, j % NR);
        let at = |i: usize| w[j * rs + i * cs];
        for s in 0..steps {
            let lo = bf16_bits(at(2 * s)) as u32;
            let hi = if 2 * s + 1 < k {
                bf16_bits(at(2 * s + 1)) as u32
            } else {
                0
            };
            out[(p * steps + s) * NR + c] = lo | (hi << 16);
        }
    }
    (out, steps)
}

/// `c[m x n] = a[m x k] w^T` on the calling thread, for the small products of one attention
/// head: `a` f32 rows of row stride `lda`, `w` `[n, k]` with strides `w_strides` (packed here,
/// per call), `c` row stride `ldc`. In bf16 both operands are rounded to bf16 and the products
/// accumulate in f32, as in the linear layers.
///
/// # Safety
/// The CPU must have `precision`'s instructions ([`Precision::available`]); `c` must be valid
/// for writes of `m` rows of `n` elements (row stride `ldc`) that nothing else touches meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn small_product(
    precision: Precision,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    w: &[f32],
    w_strides: (usize, usize),
    c: *mut f32,
    ldc: usize,
) {
    static ZEROS: [f32; NR] = [0.0; NR];
    if m == 0 || n == 0 {
        return;
    }
    assert!(k > 0 && (m - 1) * lda + k <= a.len());
    assert!((n - 1) * w_strides.0 + (k - 1) * w_strides.1 < w.len());
    let (words, steps) = pack_weight_strided(w, n, k, w_strides, precision);
    let rounded;
    let (a, lda): (&[u32], usize) = match precision {
        Precision::F32 => (bytemuck::cast_slice(a), lda),
        Precision::Bf16 => {
            let mut rows = vec![0u32; m * steps];
            for (r, out) in rows.chunks_exact_mut(steps).enumerate() {
                pack_rows_bf16(&a[r * lda..r * lda + k], k, out);
            }
            rounded = rows;
            (&rounded, steps)
        }
    };
    let epi = Epilogue {
        bias: ZEROS.as_ptr(),
        residual: std::ptr::null(),
        gelu: false,
    };
    for r in (0..m).step_by(MR) {
        for p in 0..n.div_ceil(NR) {
            let col = p * NR;
            // SAFETY: rows r.. of `a` hold `steps` words (asserted above, or packed so);
            // panel p holds `steps` steps; the caller vouches for `c` and the CPU.
            unsafe {
                micro_tile(
                    precision,
                    MR.min(m - r),
                    steps,
                    a.as_ptr().add(r * lda),
                    lda,
                    words.as_ptr().add(p * steps * NR),
                    c.add(r * ldc + col),
                    ldc,
                    (n - col).min(NR),
                    true,
                    true,
                    epi,
                )
            };
        }
    }
}

/// Rows of `x` `[m, k]` as bf16 pairs (`[m, ceil(k / 2)]` words, a zero pads odd `k`).
pub fn pack_rows_bf16(x: &[f32], k: usize, dst: &mut [u32]) {
    let steps = k.div_ceil(2);
    for (row, out) in x.chunks_exact(k).zip(dst.chunks_exact_mut(steps)) {
        #[cfg(target_arch = "x86_64")]
        if Precision::Bf16.available() {
            // SAFETY: the CPU has AVX512-BF16 (checked above); `out` holds ceil(k/2) words.
            unsafe { pack_row_bf16_avx512(row, out) };
            continue;
        }
        for (s, o) in out.iter_mut().enumerate() {
            let lo = bf16_bits(row[2 * s]) as u32;
            let hi = row.get(2 * s + 1).map_or(0, |&v| bf16_bits(v) as u32);
            *o = lo | (hi << 16);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512bw")]
unsafe fn pack_row_bf16_avx512(row: &[f32], out: &mut [u32]) {
    let full = row.len() / 32;
    for i in 0..full {
        let lo = _mm512_loadu_ps(row.as_ptr().add(32 * i));
        let hi = _mm512_loadu_ps(row.as_ptr().add(32 * i + 16));
        // The result's low half converts the second argument.
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(out.as_mut_ptr().add(16 * i).cast(), v);
    }
    for s in 16 * full..out.len() {
        let lo = bf16_bits(row[2 * s]) as u32;
        let hi = row.get(2 * s + 1).map_or(0, |&v| bf16_bits(v) as u32);
        out[s] = lo | (hi << 16);
    }
}

/// What the micro-tile adds to the products and does after them.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct Epilogue {
    /// `NR` bias values of this panel (zero past `n`).
    pub bias: *const f32,
    /// The residual's element at this tile's first row and column, row stride `ldc`; or null.
    pub residual: *const f32,
    /// Apply exact (erf) GELU to the result.
    pub gelu: bool,
}

/// One micro-tile: `c[0..mr, 0..cols] (+)= a[0..mr, steps] * panel[steps, 0..NR]`.
///
/// `a` holds `mr` rows of `lda` 32-bit words (f32 or bf16 pairs per `precision`), of which
/// `steps` are read; `b` points at the panel's first step to read; `c` at the tile's first
/// element, row stride `ldc`. With `first`, `c` is not read: the result is the product plus the
/// epilogue's bias and residual; otherwise the product is added to `c`. With `last` and the
/// epilogue's `gelu`, GELU is applied before storing.
///
/// # Safety
/// The CPU must have the precision's instructions ([`Precision::available`]); every pointer must
/// be valid for the rows, steps and columns described (`cols <= NR`, `1 <= mr <= MR`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn micro_tile(
    precision: Precision,
    mr: usize,
    steps: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    first: bool,
    last: bool,
    epi: Epilogue,
) {
    macro_rules! dispatch {
        ($f:ident) => {
            match mr {
                6 => $f::<6>(steps, a, lda, b, c, ldc, cols, first, last, epi),
                5 => $f::<5>(steps, a, lda, b, c, ldc, cols, first, last, epi),
                4 => $f::<4>(steps, a, lda, b, c, ldc, cols, first, last, epi),
                3 => $f::<3>(steps, a, lda, b, c, ldc, cols, first, last, epi),
                2 => $f::<2>(steps, a, lda, b, c, ldc, cols, first, last, epi),
                _ => $f::<1>(steps, a, lda, b, c, ldc, cols, first, last, epi),
            }
        };
    }
    match precision {
        Precision::F32 => dispatch!(tile_f32),
        Precision::Bf16 => dispatch!(tile_bf16),
    }
}

/// The two kernels differ only in the multiply-add of a broadcast word and a panel vector.
macro_rules! tile_kernel {
    ($name:ident, $features:literal, $madd:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const R: usize>(
            steps: usize,
            a: *const u32,
            lda: usize,
            b: *const u32,
            c: *mut f32,
            ldc: usize,
            cols: usize,
            first: bool,
            last: bool,
            epi: Epilogue,
        ) {
            let madd = $madd;
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            for s in 0..steps {
                let p = b.add(s * NR).cast::<f32>();
                let w = [
                    _mm512_loadu_ps(p),
                    _mm512_loadu_ps(p.add(16)),
                    _mm512_loadu_ps(p.add(32)),
                    _mm512_loadu_ps(p.add(48)),
                ];
                for r in 0..R {
                    let x = _mm512_set1_epi32(*a.add(r * lda + s) as i32);
                    for v in 0..4 {
                        acc[r][v] = madd(acc[r][v], x, w[v]);
                    }
                }
            }
            store_tile::<R>(&acc, c, ldc, cols, first, last, epi);
        }
    };
}

tile_kernel!(tile_f32, "avx512f", |acc: __m512, x: __m512i, w: __m512| {
    _mm512_fmadd_ps(_mm512_castsi512_ps(x), w, acc)
});

tile_kernel!(
    tile_bf16,
    "avx512f,avx512bf16",
    |acc: __m512, x: __m512i, w: __m512| {
        // SAFETY: bit casts between 512-bit vector types.
        _mm512_dpbf16_ps(
            acc,
            std::mem::transmute::<__m512i, __m512bh>(x),
            std::mem::transmute::<__m512, __m512bh>(w),
        )
    }
);

/// Adds the bias and residual (first k block) or the partial sums in `c`, applies GELU (last
/// block), and stores the valid columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store_tile<const R: usize>(
    acc: &[[__m512; 4]; R],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    first: bool,
    last: bool,
    epi: Epilogue,
) {
    let masks: [__mmask16; 4] = std::array::from_fn(|v| {
        let valid = cols.saturating_sub(16 * v).min(16);
        ((1u32 << valid) - 1) as __mmask16
    });
    for (r, acc) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        for v in 0..4 {
            let m = masks[v];
            if m == 0 {
                continue;
            }
            let mut y = acc[v];
            if first {
                y = _mm512_add_ps(y, _mm512_loadu_ps(epi.bias.add(16 * v)));
                if !epi.residual.is_null() {
                    let res = epi.residual.add(r * ldc + 16 * v);
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res));
                }
            } else {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, row.add(16 * v)));
            }
            if last && epi.gelu {
                y = gelu(y);
            }
            _mm512_mask_storeu_ps(row.add(16 * v), m, y);
        }
    }
}

/// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` with the rational erf of `ops::erf` (Eigen's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::excessive_precision)]
unsafe fn gelu(x: __m512) -> __m512 {
    let set = _mm512_set1_ps;
    let t = _mm512_mul_ps(x, set(std::f32::consts::FRAC_1_SQRT_2));
    let t = _mm512_min_ps(_mm512_max_ps(t, set(-4.0)), set(4.0));
    let t2 = _mm512_mul_ps(t, t);
    let mut p = _mm512_fmadd_ps(t2, set(-2.72614225801306e-10), set(2.77068142495902e-08));
    for coef in [
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    ] {
        p = _mm512_fmadd_ps(t2, p, set(coef));
    }
    let mut q = _mm512_fmadd_ps(t2, set(-1.45660718464996e-05), set(-2.13374055278905e-04));
    for coef in [
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    ] {
        q = _mm512_fmadd_ps(t2, q, set(coef));
    }
    let erf = _mm512_div_ps(_mm512_mul_ps(t, p), q);
    _mm512_mul_ps(_mm512_mul_ps(_mm512_add_ps(erf, set(1.0)), set(0.5)), x)
}
