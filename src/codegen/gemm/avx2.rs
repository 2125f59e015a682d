//! The small-product kernel for CPUs with AVX2 and FMA but no AVX-512 (AMD
//! Zen 1–3, Intel before Skylake-SP): the broadcast kernel of the parent
//! module with 8-lane registers.
//!
//! A block of `C` is up to six rows by 16 columns: twelve accumulators,
//! two registers for the row of B and one broadcast, 15 of the 16 `ymm`
//! registers. Per step of k it issues 12 FMAs against 2 loads of B and 6
//! broadcast loads of A, so the two FMA pipes, not the loads, set the pace.
//! The rows are shared evenly between blocks (`row_blocks`).
//!
//! Measured figures: the parent module's docs.

use std::arch::x86_64::*;

/// The most rows of a block.
const MR: usize = 6;

/// A lane mask of the low `w` (≤ 8) lanes, as `maskload`/`maskstore` take it.
#[target_feature(enable = "avx2")]
fn lanes(w: usize) -> __m256i {
    let w = w.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(w),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// `c = a·b` for b with contiguous rows (row stride `ldb`); a has any
/// strides (its elements are broadcast one at a time).
///
/// # Safety
/// As for the parent's `sgemm`, and the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn broadcast(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    ldb: isize,
    c: *mut f32,
    rsc: isize,
) {
    for (i, rows) in super::row_blocks(m, MR) {
        let ai = a.wrapping_offset(i as isize * rsa);
        let ci = c.wrapping_offset(i as isize * rsc);
        let m = (rsa, csa, ldb, rsc);
        // SAFETY: rows i..i+rows of a and c exist (caller's contract).
        unsafe {
            match rows {
                6 => block::<6>(k, n, ai, b, ci, m),
                5 => block::<5>(k, n, ai, b, ci, m),
                4 => block::<4>(k, n, ai, b, ci, m),
                3 => block::<3>(k, n, ai, b, ci, m),
                2 => block::<2>(k, n, ai, b, ci, m),
                _ => block::<1>(k, n, ai, b, ci, m),
            }
        }
    }
}

/// Rows `0..R` of `c`, all columns: 16 at a time, then a masked tail.
/// `s` holds the strides (rsa, csa, ldb, rsc).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const R: usize>(
    k: usize,
    n: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    s: (isize, isize, isize, isize),
) {
    let whole = n / 16 * 16;
    let mut j = 0;
    while j < whole {
        // SAFETY: columns j..j+16 exist; the rest is the caller's.
        unsafe { strip::<R, false>(k, [lanes(8), lanes(8)], a, b.add(j), c.add(j), s) };
        j += 16;
    }
    if j < n {
        let masks = [lanes(n - j), lanes((n - j).saturating_sub(8))];
        // SAFETY: the masks keep loads and stores in columns j..n.
        unsafe { strip::<R, true>(k, masks, a, b.add(j), c.add(j), s) };
    }
}

/// `c[0..R][0..16] = a[0..R][0..k] · b[0..k][0..16]`, loading and storing
/// through `masks` when `MASKED`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn strip<const R: usize, const MASKED: bool>(
    k: usize,
    masks: [__m256i; 2],
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    (rsa, csa, ldb, rsc): (isize, isize, isize, isize),
) {
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    // SAFETY: rows 0..R of a (k columns) and c, rows 0..k of b, and the
    // columns the masks allow (all 16 unless `MASKED`) exist.
    unsafe {
        for p in 0..k as isize {
            let row = b.offset(p * ldb);
            let (b0, b1) = if MASKED {
                (
                    _mm256_maskload_ps(row, masks[0]),
                    _mm256_maskload_ps(row.add(8), masks[1]),
                )
            } else {
                (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
            };
            let ap = a.offset(p * csa);
            for r in 0..R {
                let x = _mm256_broadcast_ss(&*ap.offset(r as isize * rsa));
                lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
            }
        }
        for r in 0..R {
            let cr = c.offset(r as isize * rsc);
            if MASKED {
                _mm256_maskstore_ps(cr, masks[0], lo[r]);
                _mm256_maskstore_ps(cr.add(8), masks[1], hi[r]);
            } else {
                _mm256_storeu_ps(cr, lo[r]);
                _mm256_storeu_ps(cr.add(8), hi[r]);
            }
        }
    }
}
