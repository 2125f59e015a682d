//! The small-product kernels for AVX-512F (see the parent module).
use std::arch::x86_64::*;

/// A mask of the low `w` (≤ 16) lanes.
fn lanes(w: usize) -> __mmask16 {
    if w >= 16 { 0xffff } else { (1u16 << w) - 1 }
}

/// `c = a·b` for b with contiguous rows (row stride `ldb`).
#[target_feature(enable = "avx512f")]
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
    for (i, rows) in super::row_blocks(m, 4) {
        let ai = a.wrapping_offset(i as isize * rsa);
        let ci = c.wrapping_offset(i as isize * rsc);
        // SAFETY: rows i..i+rows of a and c exist (caller's contract).
        unsafe {
            match rows {
                4 => bblock::<4>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                3 => bblock::<3>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                2 => bblock::<2>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                _ => bblock::<1>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
            }
        }
    }
}

/// Rows `0..MR` of `c`, all columns, in blocks of 32.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn bblock<const MR: usize>(
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
    let mut j = 0;
    while j < n {
        let (m0, m1) = (lanes(n - j), lanes((n - j).saturating_sub(16)));
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        // SAFETY: the masks keep every load and store inside columns
        // j..n of rows that exist; a's rows 0..MR, columns 0..k exist.
        unsafe {
            for p in 0..k {
                let row = b.offset(p as isize * ldb).add(j);
                let b0 = _mm512_maskz_loadu_ps(m0, row);
                let b1 = _mm512_maskz_loadu_ps(m1, row.add(16));
                let ap = a.offset(p as isize * csa);
                for r in 0..MR {
                    let x = _mm512_set1_ps(*ap.offset(r as isize * rsa));
                    lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
                    hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
                }
            }
            for r in 0..MR {
                let cr = c.offset(r as isize * rsc).add(j);
                _mm512_mask_storeu_ps(cr, m0, lo[r]);
                _mm512_mask_storeu_ps(cr.add(16), m1, hi[r]);
            }
        }
        j += 32;
    }
}

/// The lane sums of four vectors, as one 4-lane vector, by a shuffle
/// tree: 14 instructions where four `_mm512_reduce_add_ps` take about
/// 32 (at 32×64×32 the reductions outnumbered the FMAs). Fixed order,
/// so deterministic.
#[target_feature(enable = "avx512f")]
#[inline]
fn hsum4(v: &[__m512; 4]) -> __m128 {
    // 128-bit chunks: [a0+a2, a1+a3, b0+b2, b1+b3] and the same for c, d.
    let ab = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[0], v[1]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[0], v[1]),
    );
    let cd = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[2], v[3]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[2], v[3]),
    );
    // Chunk q now holds four partial sums of vector q.
    let t = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd),
    );
    let u = _mm512_add_ps(t, _mm512_permute_ps::<0b10_11_00_01>(t));
    let w = _mm512_add_ps(u, _mm512_permute_ps::<0b01_00_11_10>(u));
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, w))
}

/// `c[i,j] = Σ_p a[i,p]·bt[j,p]` with a's and bt's rows contiguous
/// (row strides `rsa` and `ldbt`).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dot(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    bt: *const f32,
    ldbt: isize,
    c: *mut f32,
    rsc: isize,
) {
    let tail = lanes(k % 16);
    let whole = k / 16 * 16;
    let mut i = 0;
    while i < m {
        // A second row past the end repeats the last one; its results
        // are not stored.
        let i1 = (i + 1).min(m - 1);
        let a0 = a.wrapping_offset(i as isize * rsa);
        let a1 = a.wrapping_offset(i1 as isize * rsa);
        let mut j = 0;
        while j < n {
            let bj = |q: usize| bt.wrapping_offset((j + q).min(n - 1) as isize * ldbt);
            let bs = [bj(0), bj(1), bj(2), bj(3)];
            let mut acc = [[_mm512_setzero_ps(); 4]; 2];
            // SAFETY: rows i, i1 of a and j.., clamped, of bt exist;
            // loads stay in columns 0..k (the tail is masked).
            unsafe {
                let mut p = 0;
                while p < whole {
                    let x0 = _mm512_loadu_ps(a0.add(p));
                    let x1 = _mm512_loadu_ps(a1.add(p));
                    for q in 0..4 {
                        let y = _mm512_loadu_ps(bs[q].add(p));
                        acc[0][q] = _mm512_fmadd_ps(x0, y, acc[0][q]);
                        acc[1][q] = _mm512_fmadd_ps(x1, y, acc[1][q]);
                    }
                    p += 16;
                }
                if whole < k {
                    let x0 = _mm512_maskz_loadu_ps(tail, a0.add(p));
                    let x1 = _mm512_maskz_loadu_ps(tail, a1.add(p));
                    for q in 0..4 {
                        let y = _mm512_maskz_loadu_ps(tail, bs[q].add(p));
                        acc[0][q] = _mm512_fmadd_ps(x0, y, acc[0][q]);
                        acc[1][q] = _mm512_fmadd_ps(x1, y, acc[1][q]);
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    if i + r >= m {
                        break;
                    }
                    let cr = c.offset((i + r) as isize * rsc).add(j);
                    let sums = hsum4(row);
                    if j + 4 <= n {
                        _mm_storeu_ps(cr, sums);
                    } else {
                        let mut lanes = [0.0f32; 4];
                        _mm_storeu_ps(lanes.as_mut_ptr(), sums);
                        for (q, &v) in lanes.iter().enumerate().take(n - j) {
                            *cr.add(q) = v;
                        }
                    }
                }
            }
            j += 4;
        }
        i += 2;
    }
}
