//! The pooling kernels. Every window is walked with its kernel offsets
//! clipped to the input once per output row and column (no division or
//! padding test per element), and the common non-overlapping 2×2 window
//! (stride 2, no padding) has its four taps unrolled.
//!
//! Max pooling picks, in each window, the first element in row-major
//! window order that no later one exceeds (a later element replaces the
//! best only when it is not `<=` it), exactly as the interpreter does, so
//! ties route δ to the same place in both.
//!
//! Recorded arg-maxes are offsets into the whole batch's buffer, stored as
//! values of the element type: exact when the buffer has fewer than 2²⁴
//! elements ([`recordable`]); larger batches find them again instead.

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

/// Whether a max pooling of these sizes records its arg-maxes as values
/// (offsets below 2²⁴, exact in f32). The forward and the backward kernel
/// decide alike from the same sizes.
fn recordable(g: &Geom) -> bool {
    g.batch * g.cout * g.input[0] * g.input[1] < 1 << 24
}

/// The 2×2 windows of row pairs `rows` of `x` (rows of width `iw`, row
/// pair `r` at `2·r·iw`, output row `r` at `r·ow`): maxima into `y`, and
/// with `record` the arg-max's offset plus `base` (the offset of `x[0]` in
/// the batch). The tap's offset is chosen among `[0, 1, W, W+1]` by the
/// same selects as the maximum and added to the window's corner, counted
/// in `T` (exact, see [`recordable`]): no branch on which tap won, no
/// integer-to-float conversion per window.
fn pool2_rows<T: Real>(
    (x, y, mut record): (&[T], &mut [T], Option<&mut [T]>),
    (iw, ow): (usize, usize),
    base: usize,
    rows: std::ops::Range<usize>,
) {
    let offsets = [0, 1, iw, iw + 1].map(T::from_index);
    let two = T::from_index(2);
    for r in rows {
        let r0 = 2 * r * iw;
        let (row0, row1) = (&x[r0..][..2 * ow], &x[r0 + iw..][..2 * ow]);
        let mut corner = T::from_index(base + r0);
        let yr = &mut y[r * ow..][..ow];
        let mut ar = record.as_deref_mut().map(|a| &mut a[r * ow..][..ow]);
        for (ox, yv) in yr.iter_mut().enumerate() {
            let x = 2 * ox;
            let taps = [row0[x], row0[x + 1], row1[x], row1[x + 1]];
            let (mut best, mut off) = (taps[0], offsets[0]);
            for j in 1..4 {
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                let take = !(taps[j] <= best);
                best = if take { taps[j] } else { best };
                off = if take { offsets[j] } else { off };
            }
            *yv = best;
            if let Some(ar) = ar.as_deref_mut() {
                ar[ox] = corner + off;
            }
            corner = corner + two;
        }
    }
}

/// The common 2×2 max pooling selecting by its own values. With even
/// sides the planes stack into one tall image of row pairs, which
/// [`Real::pool2_simd`] starts on (eight windows a step, across planes when
/// a row has fewer than eight) and [`pool2_rows`] finishes; otherwise
/// plane by plane.
fn pool2_batch<T: Real>(g: &Geom, x: &[T], y: &mut [T], record: Option<&mut [T]>) {
    let (ih, iw, oh, ow) = (g.input[0], g.input[1], g.out[0], g.out[1]);
    let planes = g.batch * g.cout;
    if ih.is_multiple_of(2) && iw.is_multiple_of(2) {
        let mut record = record;
        let done = T::pool2_simd(x, y, record.as_deref_mut(), iw);
        pool2_rows((x, y, record), (iw, ow), 0, done / ow..planes * oh);
        return;
    }
    let (hw, p) = (ih * iw, oh * ow);
    let mut record = record;
    for plane in 0..planes {
        let io = (
            &x[plane * hw..][..hw],
            &mut y[plane * p..][..p],
            record.as_deref_mut().map(|a| &mut a[plane * p..][..p]),
        );
        pool2_rows(io, (iw, ow), plane * hw, 0..oh);
    }
}

/// Calls `f(output offset, arg-max offset)` for every window of the plane
/// `s` (offset 0 for a window wholly in the padding).
#[inline]
fn argmaxes<T: Real>(g: &Geom, s: &[T], mut f: impl FnMut(usize, usize)) {
    let (iw, ow) = (g.input[1], g.out[1]);
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
/// `record` (and [`recordable`] sizes), each window's arg-max is stored
/// there for [`max_pool_back`].
pub(super) fn max_pool<T: Real>(g: &Geom, s: &[T], v: &[T], y: &mut [T], record: Option<&mut [T]>) {
    let mut record = record.filter(|_| recordable(g));
    // `maxpool(x)` selects by its own values: the maximum is the value.
    if std::ptr::eq(s, v) && pool2(g) {
        return pool2_batch(g, s, y, record);
    }
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    for plane in 0..g.batch * g.cout {
        let (sp, vp) = (&s[plane * hw..][..hw], &v[plane * hw..][..hw]);
        let yp = &mut y[plane * p..][..p];
        let mut ap = record.as_deref_mut().map(|a| &mut a[plane * p..][..p]);
        argmaxes(g, sp, |o, t| {
            yp[o] = vp[t];
            if let Some(ap) = ap.as_deref_mut() {
                ap[o] = T::from_index(plane * hw + t);
            }
        });
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
    let known = known.filter(|_| recordable(g));
    if let Some(at) = known.filter(|_| pool2(g) && g.input.iter().all(|n| n % 2 == 0)) {
        return pool2_back(g, at, d, dx);
    }
    dx.fill(T::default());
    if let Some(at) = known {
        for (&t, &dv) in at.iter().zip(d) {
            let t = t.to_index();
            dx[t] = dx[t] + dv;
        }
        return;
    }
    let (hw, p) = (g.input[0] * g.input[1], g.p());
    for plane in 0..g.batch * g.cout {
        let (dp, dxp) = (&d[plane * p..][..p], &mut dx[plane * hw..][..hw]);
        argmaxes(g, &s[plane * hw..][..hw], |o, t| dxp[t] = dxp[t] + dp[o]);
    }
}

/// [`max_pool_back`] of the 2×2 windows of even sides with recorded
/// arg-maxes: the windows tile the tall image of all planes, so each
/// element of `dx` is written once, δ at its window's arg-max and 0 at the
/// other three taps (no clearing pass, no scatter). [`Real::pool2_back_simd`]
/// starts, [`pool2_back_rows`] finishes.
fn pool2_back<T: Real>(g: &Geom, at: &[T], d: &[T], dx: &mut [T]) {
    let (iw, ow) = (g.input[1], g.out[1]);
    let rows = g.batch * g.cout * g.out[0];
    let done = T::pool2_back_simd(at, d, dx, iw);
    pool2_back_rows((at, d, dx), (iw, ow), done / ow..rows);
}

/// The 2×2 windows of row pairs `rows` of the tall image `dx` (as in
/// [`pool2_rows`]): each tap is δ where the recorded arg-max is that tap,
/// else 0.
fn pool2_back_rows<T: Real>(
    (at, d, dx): (&[T], &[T], &mut [T]),
    (iw, ow): (usize, usize),
    rows: std::ops::Range<usize>,
) {
    let zero = T::default();
    for r in rows {
        let r0 = 2 * r * iw;
        for ox in 0..ow {
            let (w, corner) = (r * ow + ox, r0 + 2 * ox);
            let t = at[w].to_index();
            for o in [0, 1, iw, iw + 1] {
                dx[corner + o] = if t == corner + o { d[w] } else { zero };
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 stride-2 pooling of `planes` planes `ih × iw`.
    fn geom(planes: usize, ih: usize, iw: usize) -> Geom {
        Geom {
            batch: planes,
            cin: 1,
            cout: 1,
            input: [ih, iw],
            kernel: 2,
            stride: 2,
            pad: [0, 0],
            out: [ih / 2, iw / 2],
        }
    }

    /// The naive loop: per window, the first tap in row-major order that
    /// is strictly larger than every earlier one; its batch offset.
    fn naive(g: &Geom, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (ih, iw, oh, ow) = (g.input[0], g.input[1], g.out[0], g.out[1]);
        let (mut y, mut at) = (vec![], vec![]);
        for plane in 0..g.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = plane * ih * iw + 2 * oy * iw + 2 * ox;
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        let t = plane * ih * iw + (2 * oy + dy) * iw + 2 * ox + dx;
                        if x[t] > x[best] {
                            best = t;
                        }
                    }
                    y.push(x[best]);
                    at.push(best as f32);
                }
            }
        }
        (y, at)
    }

    /// Every path (the AVX2 steps with rows of 2, 4 and 8k windows and
    /// their scalar remainders, odd sides plane by plane, widths the vector
    /// code leaves alone) against the naive loop, with many ties.
    #[test]
    fn two_by_two_max_pooling_matches_the_naive_loop() {
        let shapes = [
            (3, 8, 8),
            (7, 4, 4),
            (5, 4, 4),
            (2, 16, 16),
            (3, 2, 32),
            (3, 6, 6),
            (2, 7, 9),
            (1, 2, 2),
            (9, 6, 4),
        ];
        for (planes, ih, iw) in shapes {
            let g = geom(planes, ih, iw);
            let x: Vec<f32> = (0..planes * ih * iw)
                .map(|i| ((i * 7919) % 5) as f32)
                .collect();
            let (want_y, want_at) = naive(&g, &x);
            let mut y = vec![0f32; g.windows()];
            let mut at = vec![0f32; g.windows()];
            max_pool(&g, &x, &x, &mut y, Some(&mut at));
            assert_eq!(y, want_y, "{planes}×{ih}×{iw}");
            assert_eq!(at, want_at, "{planes}×{ih}×{iw}");
            // δ routed by the recorded arg-maxes and by finding them again.
            let d: Vec<f32> = (0..g.windows()).map(|i| i as f32 + 1.0).collect();
            let (mut dx1, mut dx2) = (vec![1f32; x.len()], vec![1f32; x.len()]);
            max_pool_back(&g, &x, &d, &mut dx1, Some(&at));
            max_pool_back(&g, &x, &d, &mut dx2, None);
            assert_eq!(dx1, dx2, "{planes}×{ih}×{iw}");
        }
    }
}
