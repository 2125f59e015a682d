//! The pooling kernels. Every window is walked with its kernel offsets
//! clipped to the input once per output row and column (no division or
//! padding test per element), and the common non-overlapping 2×2 window
//! (stride 2, no padding) has its four taps unrolled.
//!
//! Max pooling picks, in each window, the first element in row-major
//! window order that no later one exceeds (a later element replaces the
//! best only when it is not `<=` it), exactly as the interpreter does, so
//! ties route δ to the same place in both.

use super::{Geom, Real};

/// The kernel offsets `lo..hi` of output `o` along one axis that land in
/// the input (of length `n`), and the input index of offset 0 (which may
/// lie in the padding, hence signed).
#[inline]
fn span(o: usize, stride: usize, pad: usize, k: usize, n: usize) -> (usize, usize, isize) {
    let base = (o * stride) as isize - pad as isize;
    let lo = (-base).clamp(0, k as isize) as usize;
    let hi = (n as isize - base).clamp(lo as isize, k as isize) as usize;
    (lo, hi, base)
}

/// Calls `f(output offset, tap offset)` for every tap of every window of
/// one plane, windows in row-major order and taps in row-major window
/// order, the padding skipped.
#[inline]
fn each_tap(g: &Geom, mut f: impl FnMut(usize, usize)) {
    let (k, s, iw) = (g.kernel, g.stride, g.input[1]);
    for oy in 0..g.out[0] {
        let (ylo, yhi, yb) = span(oy, s, g.pad[0], k, g.input[0]);
        for ox in 0..g.out[1] {
            let (xlo, xhi, xb) = span(ox, s, g.pad[1], k, iw);
            let o = oy * g.out[1] + ox;
            for ky in ylo..yhi {
                let row = (yb + ky as isize) as usize * iw;
                for kx in xlo..xhi {
                    f(o, row + (xb + kx as isize) as usize);
                }
            }
        }
    }
}

/// Whether the windows are the common non-overlapping 2×2 ones (stride 2,
/// no padding), all inside the input.
fn pool2(g: &Geom) -> bool {
    g.kernel == 2 && g.stride == 2 && g.pad == [0, 0]
}

/// The arg-max (0..4) and maximum of a 2×2 window's taps in row-major
/// order, by the tie rule above; selects instead of branches, since which
/// tap wins is unpredictable.
#[inline]
fn pick4<T: Real>(taps: [T; 4]) -> (usize, T) {
    let (mut bi, mut bv) = (0, taps[0]);
    for (j, v) in taps.into_iter().enumerate().skip(1) {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let take = !(v <= bv);
        bi = if take { j } else { bi };
        bv = if take { v } else { bv };
    }
    (bi, bv)
}

/// Calls `f(output offset, arg-max offset)` for every window of the plane
/// `s` (offset 0 for a window wholly in the padding).
#[inline]
fn argmaxes<T: Real>(g: &Geom, s: &[T], mut f: impl FnMut(usize, usize)) {
    let (iw, ow) = (g.input[1], g.out[1]);
    if pool2(g) {
        for oy in 0..g.out[0] {
            let r0 = 2 * oy * iw;
            let (row0, row1) = (&s[r0..][..2 * ow], &s[r0 + iw..][..2 * ow]);
            for ox in 0..ow {
                let (bi, _) = pick4([
                    row0[2 * ox],
                    row0[2 * ox + 1],
                    row1[2 * ox],
                    row1[2 * ox + 1],
                ]);
                f(oy * ow + ox, r0 + 2 * ox + (bi >> 1) * iw + (bi & 1));
            }
        }
        return;
    }
    let (k, st) = (g.kernel, g.stride);
    for oy in 0..g.out[0] {
        let (ylo, yhi, yb) = span(oy, st, g.pad[0], k, g.input[0]);
        for ox in 0..ow {
            let (xlo, xhi, xb) = span(ox, st, g.pad[1], k, iw);
            let mut best: Option<usize> = None;
            for ky in ylo..yhi {
                let row = (yb + ky as isize) as usize * iw;
                for kx in xlo..xhi {
                    let t = row + (xb + kx as isize) as usize;
                    match best {
                        #[allow(clippy::neg_cmp_op_on_partial_ord)]
                        Some(b) if s[t] <= s[b] => {}
                        _ => best = Some(t),
                    }
                }
            }
            f(oy * ow + ox, best.unwrap_or(0));
        }
    }
}

/// `y = v at the arg-max of s`, window by window, plane by plane; with
/// `record`, each window's arg-max (its offset in the plane) is stored
/// there for [`max_pool_back`].
pub(super) fn max_pool<T: Real>(
    g: &Geom,
    s: &[T],
    v: &[T],
    y: &mut [T],
    mut record: Option<&mut [T]>,
) {
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    // `maxpool(x)` selects by its own values: the maximum is the value.
    let own = std::ptr::eq(s, v);
    for plane in 0..g.batch * g.cout {
        let (sp, vp) = (&s[plane * hw..][..hw], &v[plane * hw..][..hw]);
        let yp = &mut y[plane * p..][..p];
        let mut ap = record.as_deref_mut().map(|a| &mut a[plane * p..][..p]);
        if own && pool2(g) {
            let (iw, ow) = (g.input[1], g.out[1]);
            for (oy, yr) in yp.chunks_exact_mut(ow).enumerate() {
                let r0 = 2 * oy * iw;
                let (row0, row1) = (&sp[r0..][..2 * ow], &sp[r0 + iw..][..2 * ow]);
                for (ox, yv) in yr.iter_mut().enumerate() {
                    let x = 2 * ox;
                    let (bi, bv) = pick4([row0[x], row0[x + 1], row1[x], row1[x + 1]]);
                    *yv = bv;
                    if let Some(ap) = ap.as_deref_mut() {
                        ap[oy * ow + ox] = T::from_index(r0 + x + (bi >> 1) * iw + (bi & 1));
                    }
                }
            }
        } else {
            argmaxes(g, sp, |o, t| {
                yp[o] = vp[t];
                if let Some(ap) = ap.as_deref_mut() {
                    ap[o] = T::from_index(t);
                }
            });
        }
    }
}

/// `dx = δ routed to the arg-max of s` (summed where windows overlap),
/// the arg-maxes read from `known` (as [`max_pool`] recorded them) when
/// given, else found again.
pub(super) fn max_pool_back<T: Real>(
    g: &Geom,
    s: &[T],
    d: &[T],
    dx: &mut [T],
    known: Option<&[T]>,
) {
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    dx.fill(T::default());
    for plane in 0..g.batch * g.cout {
        let (dp, dxp) = (&d[plane * p..][..p], &mut dx[plane * hw..][..hw]);
        match known {
            Some(at) => {
                for (&t, &dv) in at[plane * p..][..p].iter().zip(dp) {
                    let t = t.to_index();
                    dxp[t] = dxp[t] + dv;
                }
            }
            None => argmaxes(g, &s[plane * hw..][..hw], |o, t| dxp[t] = dxp[t] + dp[o]),
        }
    }
}

/// `y = the mean of each window` (padding counted as zeros).
pub(super) fn avg_pool<T: Real>(g: &Geom, x: &[T], y: &mut [T]) {
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    let scale = T::recip(g.kernel * g.kernel);
    for plane in 0..g.batch * g.cout {
        let (xp, yp) = (&x[plane * hw..][..hw], &mut y[plane * p..][..p]);
        yp.fill(T::default());
        each_tap(g, |o, t| yp[o] = yp[o] + xp[t]);
        for v in yp.iter_mut() {
            *v = *v * scale;
        }
    }
}

/// `dx = each window's δ/K² spread over its taps` (the adjoint of
/// [`avg_pool`]).
pub(super) fn avg_pool_back<T: Real>(g: &Geom, d: &[T], dx: &mut [T]) {
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    let scale = T::recip(g.kernel * g.kernel);
    dx.fill(T::default());
    for plane in 0..g.batch * g.cout {
        let (dp, dxp) = (&d[plane * p..][..p], &mut dx[plane * hw..][..hw]);
        each_tap(g, |o, t| dxp[t] = dxp[t] + dp[o] * scale);
    }
}
