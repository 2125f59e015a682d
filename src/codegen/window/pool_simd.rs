//! The 2×2 max pooling of f32 with AVX2, eight windows a step: the scalar
//! loop spent 11–16 cycles a window on a digits CNN's 8×8 and 4×4 planes
//! (3.6 and 5.1 ns), a fifth of its epoch. Rows of fewer than eight
//! windows are taken several row pairs at a time, so the small planes of a
//! CNN vectorise too. Same tie rule and arg-max offsets as
//! [`super::pool`]'s scalar loop, which finishes what this leaves.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Pools the tall image `x` (row pairs of width `iw`, `4·y.len()` values)
/// into `y` from the first window on, recording arg-max offsets when
/// given; returns how many windows it did (whole row pairs; 0 without
/// AVX2 or for a row width it does not handle).
pub(super) fn pool2(x: &[f32], y: &mut [f32], record: Option<&mut [f32]>, iw: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let ow = iw / 2;
        let shape_ok = ow == 2 || ow == 4 || ow.is_multiple_of(8);
        if shape_ok && x.len() == 4 * y.len() && std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present; the lengths are checked above and
            // in `run` (record, when given, is as long as y).
            return unsafe { pool2_avx2(x, y, record, iw) };
        }
    }
    let _ = (x, y, record, iw);
    0
}

/// Even and odd lanes of `p` then `q`, in order: `[p0 p2 p4 p6 q0 q2 q4 q6]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn split(p: __m256, q: __m256) -> (__m256, __m256) {
    let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
    (
        order(_mm256_shuffle_ps::<0x88>(p, q)),
        order(_mm256_shuffle_ps::<0xDD>(p, q)),
    )
}

/// Each of a step's eight windows' corner relative to the first's, in
/// window order, for rows of `iw` values (`iw/2` windows: 2, 4 or 8k).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn corners(iw: usize) -> __m256 {
    let w2 = 2 * iw;
    let c = match iw / 2 {
        2 => [0, 2, w2, w2 + 2, 2 * w2, 2 * w2 + 2, 3 * w2, 3 * w2 + 2],
        4 => [0, 2, 4, 6, w2, w2 + 2, w2 + 4, w2 + 6],
        _ => [0, 2, 4, 6, 8, 10, 12, 14],
    };
    let c = c.map(|v| v as f32);
    // SAFETY: eight values.
    unsafe { _mm256_loadu_ps(c.as_ptr()) }
}

/// `[p0 q0 p1 q1 p2 q2 p3 q3]` and `[p4 q4 … p7 q7]`: the inverse of
/// [`split`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn merge(p: __m256, q: __m256) -> (__m256, __m256) {
    let (lo, hi) = (_mm256_unpacklo_ps(p, q), _mm256_unpackhi_ps(p, q));
    (
        _mm256_permute2f128_ps::<0x20>(lo, hi),
        _mm256_permute2f128_ps::<0x31>(lo, hi),
    )
}

/// The adjoint of [`pool2`] from its recorded arg-maxes `at` (batch
/// offsets): writes all four taps of every window it does, δ at the
/// arg-max and 0 elsewhere; returns how many windows (whole row pairs).
pub(super) fn pool2_back(at: &[f32], d: &[f32], dx: &mut [f32], iw: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let ow = iw / 2;
        let shape_ok = ow == 2 || ow == 4 || ow.is_multiple_of(8);
        let lengths = at.len() == d.len() && dx.len() == 4 * d.len();
        if shape_ok && lengths && std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present; the lengths are checked above.
            return unsafe { pool2_back_avx2(at, d, dx, iw) };
        }
    }
    let _ = (at, d, dx, iw);
    0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool2_back_avx2(at: &[f32], d: &[f32], dx: &mut [f32], iw: usize) -> usize {
    let ow = iw / 2;
    let pattern = corners(iw);
    let taps = [0, 1, iw, iw + 1].map(|v| _mm256_set1_ps(v as f32));
    let steps = d.len() / 8;
    let out = dx.as_mut_ptr();
    // SAFETY (stores): every step writes exactly the 32 values its
    // forward step read, inside dx (4·d.len() values).
    let store = |i: usize, v: __m256| unsafe { _mm256_storeu_ps(out.add(i), v) };
    for step in 0..steps {
        let w = 8 * step;
        let (r, ox) = (w / ow, w % ow);
        let corner = 2 * r * iw + 2 * ox;
        // SAFETY: w + 8 <= d.len() = at.len().
        let (a, dv) = unsafe {
            (
                _mm256_loadu_ps(at.as_ptr().add(w)),
                _mm256_loadu_ps(d.as_ptr().add(w)),
            )
        };
        let rel = _mm256_sub_ps(a, _mm256_add_ps(_mm256_set1_ps(corner as f32), pattern));
        let [ta, tb, tc, td] = taps.map(|t| _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(rel, t), dv));
        let (t0, t1) = merge(ta, tb);
        let (b0, b1) = merge(tc, td);
        match ow {
            2 => {
                store(corner, _mm256_permute2f128_ps::<0x20>(t0, b0));
                store(corner + 8, _mm256_permute2f128_ps::<0x31>(t0, b0));
                store(corner + 16, _mm256_permute2f128_ps::<0x20>(t1, b1));
                store(corner + 24, _mm256_permute2f128_ps::<0x31>(t1, b1));
            }
            4 => {
                store(corner, t0);
                store(corner + 8, b0);
                store(corner + 16, t1);
                store(corner + 24, b1);
            }
            _ => {
                store(corner, t0);
                store(corner + 8, t1);
                store(corner + iw, b0);
                store(corner + iw + 8, b1);
            }
        }
    }
    8 * steps / ow * ow
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool2_avx2(x: &[f32], y: &mut [f32], mut record: Option<&mut [f32]>, iw: usize) -> usize {
    let ow = iw / 2;
    let pattern = corners(iw);
    let offs = [1, iw, iw + 1].map(|v| _mm256_set1_ps(v as f32));
    let steps = y.len() / 8;
    let load = |i: usize| {
        debug_assert!(i + 8 <= x.len());
        // SAFETY: every step's reads end within its 32 values (see below).
        unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) }
    };
    for step in 0..steps {
        let w = 8 * step;
        let (r, ox) = (w / ow, w % ow);
        let corner = 2 * r * iw + 2 * ox;
        // Top and bottom rows of the step's eight windows, two vectors each.
        let (t0, t1, b0, b1) = match ow {
            // Four row pairs of [row0 | row1], 8 values each.
            2 => {
                let v = [0, 8, 16, 24].map(|k| load(corner + k));
                (
                    _mm256_permute2f128_ps::<0x20>(v[0], v[1]),
                    _mm256_permute2f128_ps::<0x20>(v[2], v[3]),
                    _mm256_permute2f128_ps::<0x31>(v[0], v[1]),
                    _mm256_permute2f128_ps::<0x31>(v[2], v[3]),
                )
            }
            // Two row pairs of [row0 | row1], 16 values each.
            4 => (
                load(corner),
                load(corner + 16),
                load(corner + 8),
                load(corner + 24),
            ),
            // Sixteen values of each row of one row pair.
            _ => (
                load(corner),
                load(corner + 8),
                load(corner + iw),
                load(corner + iw + 8),
            ),
        };
        let (a, b) = split(t0, t1);
        let (c, d) = split(b0, b1);
        let (mut best, mut off) = (a, _mm256_setzero_ps());
        for (tap, o) in [b, c, d].into_iter().zip(offs) {
            // `!(tap <= best)`: a later tap wins only when strictly larger
            // (or NaN), as in the scalar loop.
            let take = _mm256_cmp_ps::<_CMP_NLE_UQ>(tap, best);
            best = _mm256_blendv_ps(best, tap, take);
            off = _mm256_blendv_ps(off, o, take);
        }
        // SAFETY: w + 8 <= y.len() (and record's length).
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(w), best) };
        if let Some(rec) = record.as_deref_mut() {
            let at = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(corner as f32), pattern), off);
            unsafe { _mm256_storeu_ps(rec.as_mut_ptr().add(w), at) };
        }
    }
    // Whole row pairs only: the scalar loop resumes at a row's start.
    8 * steps / ow * ow
}
