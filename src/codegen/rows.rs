//! AVX-512 host kernels for the f32 row work of small networks, called
//! from JIT code: the fused softmax/log-sum-exp of the logits and `tanh`
//! applied in place after a fused loop.
//!
//! Cranelift's x86-64 backend has 128-bit vectors only. A classifier's
//! logits rows are short (10 columns: two vectors and a 2-lane tail, each
//! row a long serial chain of max → exp → sum → log), and `tanh` evaluates
//! two polynomials and an exponential per vector; with four lanes both
//! were about a fifth of a 64-32-10 training step each (perf). Here one
//! 16-lane masked vector holds a whole 10-column row, and `tanh` runs 16
//! lanes at a time.
//!
//! The arithmetic mirrors `math.rs` (same Cephes polynomials, the same
//! Cody–Waite reduction, the same clamps and NaN handling), so results
//! agree with the JIT's 4-lane code to rounding. The JIT emits calls to
//! these only when [`super::gemm::has_avx512`] says the host has
//! AVX-512F; otherwise it emits its own 4-lane code.

/// `softmax` and/or `log Σ exp` of each of `rows` rows of `cols` elements
/// at `src`; a null `sm` or `lse` is not written.
///
/// # Safety
/// The host has AVX-512F; `src` and a non-null `sm` address `rows·cols`
/// elements, a non-null `lse` `rows`; `sm` may equal `src` but no other
/// overlap is allowed.
pub(crate) unsafe extern "C" fn softmax_lse_f32(
    src: *const f32,
    sm: *mut f32,
    lse: *mut f32,
    rows: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract.
    unsafe {
        avx512::softmax_lse(src, sm, lse, rows, cols)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, sm, lse, rows, cols);
}

/// `buf[i] = tanh(buf[i])` for `i < len`.
///
/// # Safety
/// The host has AVX-512F; `buf` addresses `len` elements.
pub(crate) unsafe extern "C" fn tanh_f32(buf: *mut f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract.
    unsafe {
        avx512::tanh_in_place(buf, len)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, len);
}

/// `dst[r]` = the index (as a float) of the first largest element of row
/// `r`, as the JIT's scalar loop: NaNs after the first element never win,
/// and a NaN first element gives 0. Branch-free within a row: a vector max,
/// an equality mask, and its lowest set bit.
///
/// # Safety
/// The host has AVX-512F; `src` addresses `rows·cols` elements (`cols` ≥
/// 1) and `dst` `rows`.
pub(crate) unsafe extern "C" fn argmax_f32(
    src: *const f32,
    dst: *mut f32,
    rows: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract.
    unsafe {
        avx512::argmax(src, dst, rows, cols)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, dst, rows, cols);
}

/// Sums of `src[rows, cols]`: over the columns of each row (`over_rows`
/// false), or over the rows (`over_cols` false), or of everything. Row sums
/// use four independent 16-lane accumulators, so a long row (a weight
/// gradient's finiteness check sums 2,048 elements) is not one chain of
/// dependent adds as in the 4-lane JIT loop. Fixed order: deterministic.
///
/// # Safety
/// The host has AVX-512F; `src` addresses `rows·cols` elements and `dst`
/// the result's (`rows`, `cols` or 1); at least one flag is set.
pub(crate) unsafe extern "C" fn sum_f32(
    src: *const f32,
    dst: *mut f32,
    rows: usize,
    cols: usize,
    over_rows: usize,
    over_cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract.
    unsafe {
        match (over_rows != 0, over_cols != 0) {
            (true, true) => *dst = avx512::row_sum(src, rows * cols),
            (false, true) => {
                for r in 0..rows {
                    *dst.add(r) = avx512::row_sum(src.add(r * cols), cols);
                }
            }
            _ => avx512::column_sums(src, dst, rows, cols),
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, dst, rows, cols, over_rows, over_cols);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// A mask of the low `w` (≤ 16) lanes.
    fn lanes(w: usize) -> __mmask16 {
        if w >= 16 { 0xffff } else { (1u16 << w) - 1 }
    }

    /// `x` where `x` is NaN, else `r` (as `Vx::keep_nan`).
    #[target_feature(enable = "avx512f")]
    fn keep_nan(x: __m512, r: __m512) -> __m512 {
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_mov_ps(r, nan, x)
    }

    /// Horner's scheme with FMA, highest coefficient first.
    #[target_feature(enable = "avx512f")]
    fn poly(x: __m512, c: &[f32]) -> __m512 {
        let mut y = _mm512_set1_ps(c[0]);
        for &ci in &c[1..] {
            y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(ci));
        }
        y
    }

    /// `exp(x)`, as `Vx::exp`: clamp, Cody–Waite reduction, Cephes expf,
    /// then scaling by 2^k in one rounding (`vscalefps`).
    #[target_feature(enable = "avx512f")]
    fn exp(x: __m512) -> __m512 {
        // `max_ps(x, lo)` returns lo for a NaN x; keep_nan restores it.
        let xc = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
            _mm512_set1_ps(88.8),
        );
        let magic = _mm512_set1_ps(12_582_912.0);
        let t = _mm512_fmadd_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E), magic);
        let k = _mm512_sub_ps(t, magic);
        let r = _mm512_fmadd_ps(k, _mm512_set1_ps(-0.693_359_4), xc);
        let r = _mm512_fmadd_ps(k, _mm512_set1_ps(2.121_944_4e-4), r);
        let p = poly(
            r,
            &[
                1.987_569_1e-4,
                1.398_2e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                5e-1,
            ],
        );
        let r2 = _mm512_mul_ps(r, r);
        let s = _mm512_add_ps(r, _mm512_set1_ps(1.0));
        let p = _mm512_fmadd_ps(p, r2, s);
        keep_nan(x, _mm512_scalef_ps(p, k))
    }

    /// `log(x)` for x ≥ 1, +inf or NaN (a row's `Σ exp(x - max)`, whose
    /// largest term is exp(0) = 1), as `Vx::log` without its branches for
    /// zero, negatives and denormals.
    #[target_feature(enable = "avx512f")]
    fn log_ge1(x: __m512) -> __m512 {
        let bits = _mm512_castps_si512(x);
        let ei = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(126));
        let e = _mm512_cvtepi32_ps(ei);
        let mbits = _mm512_or_si512(
            _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
            _mm512_set1_epi32(0x3f00_0000),
        );
        let m = _mm512_castsi512_ps(mbits);
        // Move m into [sqrt(1/2), sqrt(2)) and take f = m - 1 (exact).
        let lt =
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(m, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let one = _mm512_set1_ps(1.0);
        let f = _mm512_sub_ps(m, one);
        let e = _mm512_mask_sub_ps(e, lt, e, one);
        let f = _mm512_mask_add_ps(f, lt, f, m);
        let z = _mm512_mul_ps(f, f);
        let p = poly(
            f,
            &[
                7.037_683_6e-2,
                -1.151_461e-1,
                1.167_699_9e-1,
                -1.242_014_1e-1,
                1.424_932_3e-1,
                -1.666_805_8e-1,
                2.000_071_5e-1,
                -2.499_999_4e-1,
                3.333_333e-1,
            ],
        );
        let y = _mm512_mul_ps(p, _mm512_mul_ps(f, z));
        let y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.121_944_4e-4), y);
        let y = _mm512_fmadd_ps(z, _mm512_set1_ps(-0.5), y);
        let r = _mm512_add_ps(f, y);
        let r = _mm512_fmadd_ps(e, _mm512_set1_ps(0.693_359_4), r);
        let inf = _mm512_set1_ps(f32::INFINITY);
        let is_inf = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, inf);
        keep_nan(x, _mm512_mask_mov_ps(r, is_inf, inf))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn argmax(src: *const f32, dst: *mut f32, rows: usize, cols: usize) {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        for r in 0..rows {
            // SAFETY: row r has `cols` ≥ 1 elements; loads are masked to them.
            unsafe {
                let row = src.add(r * cols);
                let mut best = 0usize;
                if !(*row).is_nan() {
                    // NaNs read as -inf: they never win, as in the scalar loop.
                    let load = |j: usize| {
                        let v = _mm512_mask_loadu_ps(ninf, lanes(cols - j), row.add(j));
                        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                        _mm512_mask_mov_ps(v, nan, ninf)
                    };
                    let mut mv = ninf;
                    let mut j = 0;
                    while j < cols {
                        mv = _mm512_max_ps(mv, load(j));
                        j += 16;
                    }
                    let m = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
                    let mut j = 0;
                    while j < cols {
                        let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(load(j), m) & lanes(cols - j);
                        if eq != 0 {
                            best = j + eq.trailing_zeros() as usize;
                            break;
                        }
                        j += 16;
                    }
                }
                *dst.add(r) = best as f32;
            }
        }
    }

    /// `Σ src[0..len]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_sum(src: *const f32, len: usize) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut j = 0;
        // SAFETY: whole blocks stay below `len`; the tail is masked.
        unsafe {
            while j + 64 <= len {
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_add_ps(*a, _mm512_loadu_ps(src.add(j + 16 * q)));
                }
                j += 64;
            }
            let mut q = 0;
            while j < len {
                let x = _mm512_maskz_loadu_ps(lanes(len - j), src.add(j));
                acc[q] = _mm512_add_ps(acc[q], x);
                q += 1;
                j += 16;
            }
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }

    /// `dst[c] = Σ_r src[r, c]`, 16 columns at a time, rows in order.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn column_sums(src: *const f32, dst: *mut f32, rows: usize, cols: usize) {
        let mut j = 0;
        while j < cols {
            let k = lanes(cols - j);
            let mut acc = _mm512_setzero_ps();
            // SAFETY: masked to columns j..cols of rows that exist.
            unsafe {
                for r in 0..rows {
                    acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(k, src.add(r * cols + j)));
                }
                _mm512_mask_storeu_ps(dst.add(j), k, acc);
            }
            j += 16;
        }
    }

    /// `tanh(x)`, as `Vx::tanh`.
    #[target_feature(enable = "avx512f")]
    fn tanh(x: __m512) -> __m512 {
        let z = _mm512_mul_ps(x, x);
        let p = poly(
            z,
            &[
                -5.704_988_7e-3,
                2.063_909e-2,
                -5.373_971_6e-2,
                1.333_144_2e-1,
                -3.333_328e-1,
            ],
        );
        let small = _mm512_fmadd_ps(p, _mm512_mul_ps(x, z), x);
        let ax = _mm512_abs_ps(x);
        // Clamped where tanh rounds to 1.0f (see `Vx::tanh`: not 9).
        let c = _mm512_min_ps(ax, _mm512_set1_ps(10.0));
        let e = exp(_mm512_add_ps(c, c));
        let one = _mm512_set1_ps(1.0);
        let q = _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, one));
        let l = _mm512_sub_ps(one, q);
        let sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN));
        let large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(l), sign));
        let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, _mm512_set1_ps(0.625));
        keep_nan(x, _mm512_mask_mov_ps(large, is_small, small))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh_in_place(buf: *mut f32, len: usize) {
        let mut i = 0;
        while i < len {
            let m = lanes(len - i);
            // SAFETY: the mask keeps the access inside `len` elements.
            unsafe {
                let p = buf.add(i);
                let x = _mm512_maskz_loadu_ps(m, p);
                _mm512_mask_storeu_ps(p, m, tanh(x));
            }
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn softmax_lse(
        src: *const f32,
        sm: *mut f32,
        lse: *mut f32,
        rows: usize,
        cols: usize,
    ) {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        // Maxima and sums of up to 16 rows, whose logs are taken together.
        let mut ms = [0.0f32; 16];
        let mut ss = [1.0f32; 16];
        for r in 0..rows {
            // SAFETY: row r has `cols` elements in each buffer; every
            // access below is masked to columns 0..cols.
            unsafe {
                let row = src.add(r * cols);
                let out = if sm.is_null() { sm } else { sm.add(r * cols) };
                // Max, with -inf in the lanes past the row's end.
                let mut mv = ninf;
                let mut j = 0;
                while j < cols {
                    let x = _mm512_mask_loadu_ps(ninf, lanes(cols - j), row.add(j));
                    mv = _mm512_max_ps(mv, x);
                    j += 16;
                }
                let m = _mm512_reduce_max_ps(mv);
                let mb = _mm512_set1_ps(m);
                // Σ exp(x - m), the exponentials stored when wanted; lanes
                // past the end are zeroed.
                let mut acc = _mm512_setzero_ps();
                let mut j = 0;
                while j < cols {
                    let k = lanes(cols - j);
                    let x = _mm512_maskz_loadu_ps(k, row.add(j));
                    let y = _mm512_maskz_mov_ps(k, exp(_mm512_sub_ps(x, mb)));
                    if !out.is_null() {
                        _mm512_mask_storeu_ps(out.add(j), k, y);
                    }
                    acc = _mm512_add_ps(acc, y);
                    j += 16;
                }
                let s = _mm512_reduce_add_ps(acc);
                if !lse.is_null() {
                    let q = r % 16;
                    ms[q] = m;
                    ss[q] = s;
                    if q == 15 || r + 1 == rows {
                        let l = log_ge1(_mm512_loadu_ps(ss.as_ptr()));
                        let y = _mm512_add_ps(_mm512_loadu_ps(ms.as_ptr()), l);
                        _mm512_mask_storeu_ps(lse.add(r - q), lanes(q + 1), y);
                    }
                }
                if !out.is_null() {
                    let inv = _mm512_set1_ps(1.0 / s);
                    let mut j = 0;
                    while j < cols {
                        let k = lanes(cols - j);
                        let y = _mm512_maskz_loadu_ps(k, out.add(j));
                        _mm512_mask_storeu_ps(out.add(j), k, _mm512_mul_ps(y, inv));
                        j += 16;
                    }
                }
            }
        }
    }
}
