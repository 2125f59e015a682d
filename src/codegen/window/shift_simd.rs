//! The inner loops of the shifted-plane im2col and col2im
//! (`conv::im2col_shifted`) for f32 with AVX2: one masked copy (or masked
//! add) of a P-element plane per image, for a run of images whose planes
//! lie wholly inside the buffer. The generic loop spent most of its time
//! per plane setting up (bounds, clipping, a vector loop of two steps at
//! P = 16): im2col and col2im were a fifth of a digits CNN step. The mask
//! is [`super::Real::mask`]'s all-ones or zero bits, applied by `and`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `dst[i·p + j] = x[from + i·chw + j] & keep[j]` for every image `i` of
/// `dst` (`dst.len() / p` of them); false, having done nothing, without
/// AVX2, when `p` is not a multiple of 8, or when a plane would leave `x`.
pub(super) fn gather(x: &[f32], from: usize, chw: usize, dst: &mut [f32], keep: &[f32]) -> bool {
    let p = keep.len();
    let count = dst.len().checked_div(p).unwrap_or(0);
    let fits = count == 0 || from + (count - 1) * chw + p <= x.len();
    #[cfg(target_arch = "x86_64")]
    if p.is_multiple_of(8) && dst.len() == count * p && fits && avx2() {
        // SAFETY: AVX2 is present; every plane is inside `x` (checked
        // above) and `dst` holds `count` planes.
        unsafe { gather_avx2(x.as_ptr().add(from), chw, dst, keep) };
        return true;
    }
    let _ = (x, from, chw, dst, keep, fits);
    false
}

/// `dx[to + i·chw + j] += col[i·p + j] & keep[j]` for every image `i` of
/// `col`; false, having done nothing, as for [`gather`]. The planes of two
/// images never overlap (`chw ≥ p`), so the order of the adds is that of
/// the scalar loop.
pub(super) fn scatter_add(
    col: &[f32],
    dx: &mut [f32],
    to: usize,
    chw: usize,
    keep: &[f32],
) -> bool {
    let p = keep.len();
    let count = col.len().checked_div(p).unwrap_or(0);
    let fits = count == 0 || to + (count - 1) * chw + p <= dx.len();
    #[cfg(target_arch = "x86_64")]
    if p.is_multiple_of(8) && col.len() == count * p && chw >= p && fits && avx2() {
        // SAFETY: AVX2 is present; every plane is inside `dx` (checked
        // above) and `col` holds `count` planes.
        unsafe { scatter_avx2(col, dx.as_mut_ptr().add(to), chw, keep) };
        return true;
    }
    let _ = (col, dx, to, chw, keep, fits);
    false
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// [`gather`]'s loop, eight lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_avx2(x: *const f32, chw: usize, dst: &mut [f32], keep: &[f32]) {
    let p = keep.len();
    for (i, plane) in dst.chunks_exact_mut(p).enumerate() {
        // SAFETY: the caller checked that plane i of `x` is in bounds.
        let src = unsafe { x.add(i * chw) };
        for j in (0..p).step_by(8) {
            // SAFETY: j + 8 ≤ p, so every access is inside its plane.
            unsafe {
                let k = _mm256_loadu_ps(keep.as_ptr().add(j));
                let v = _mm256_loadu_ps(src.add(j));
                _mm256_storeu_ps(plane.as_mut_ptr().add(j), _mm256_and_ps(v, k));
            }
        }
    }
}

/// [`scatter_add`]'s loop, eight lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_avx2(col: &[f32], dx: *mut f32, chw: usize, keep: &[f32]) {
    let p = keep.len();
    for (i, plane) in col.chunks_exact(p).enumerate() {
        // SAFETY: the caller checked that plane i of `dx` is in bounds.
        let dst = unsafe { dx.add(i * chw) };
        for j in (0..p).step_by(8) {
            // SAFETY: j + 8 ≤ p, so every access is inside its plane.
            unsafe {
                let k = _mm256_loadu_ps(keep.as_ptr().add(j));
                let v = _mm256_and_ps(_mm256_loadu_ps(plane.as_ptr().add(j)), k);
                let d = _mm256_loadu_ps(dst.add(j));
                _mm256_storeu_ps(dst.add(j), _mm256_add_ps(d, v));
            }
        }
    }
}
