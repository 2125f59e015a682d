//! The convolution kernels: the whole batch is unrolled by im2col into one
//! `[C·K·K, B·H'·W']` matrix (once per step: the kernel gradient reuses
//! the forward pass's, see `schedule`). The forward pass and the input
//! gradient are one product per image, reading and writing the window side
//! `[B, N, H'·W']` in place; the kernel gradient is one product over the
//! whole batch (summing over it inside), its δ first transposed to
//! `[B·H'·W', N]`.

use super::{Geom, Real};
use crate::codegen::gemm::product;

/// Calls `f(col row, column offset, input row)` for every output row of
/// every image of every row of `im2col`'s column matrix (images inside
/// rows, so the matrix is written in order): `col[row][at + ox]` is the
/// input row's element `ox·stride + kx − pad` (zero where that is outside,
/// found by one unsigned compare); `None` is a row wholly in the padding.
#[inline]
fn rows(g: &Geom, mut f: impl FnMut(usize, usize, usize, Option<usize>)) {
    let (k, s, [ih, iw], [oh, ow]) = (g.kernel, g.stride, g.input, g.out);
    let (chw, p) = (g.cin * ih * iw, g.p());
    for c in 0..g.cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = (c * k + ky) * k + kx;
                for b in 0..g.batch {
                    for oy in 0..oh {
                        let iy = (oy * s + ky).wrapping_sub(g.pad[0]);
                        let line = (iy < ih).then(|| b * chw + c * ih * iw + iy * iw);
                        f(row, b * p + oy * ow, kx, line);
                    }
                }
            }
        }
    }
}

/// The outputs `lo..hi` along one axis whose input `o·stride + tap − pad`
/// lies inside an input of length `n`.
#[inline]
fn inside(out: usize, stride: usize, tap: usize, pad: usize, n: usize) -> [usize; 2] {
    let lo = pad.saturating_sub(tap).div_ceil(stride).min(out);
    let hi = (n + pad)
        .saturating_sub(tap)
        .div_ceil(stride)
        .clamp(lo, out);
    [lo, hi]
}

/// True when every plane of the column matrix is its input plane shifted
/// (stride 1 and output size = input size, as `padding=same` gives): then
/// im2col and col2im work on whole planes instead of output rows.
fn shifted_planes(g: &Geom) -> bool {
    g.stride == 1 && g.out == g.input
}

/// Calls `f(col row, input plane, (ylo, yhi), (xlo, xhi), shift)` for
/// every row of the column matrix of a [`shifted_planes`] convolution,
/// with the offsets of image 0 (image b's are `b·P` and `b·C·H·W` on):
/// the plane's outputs inside the input are the rectangle
/// `ylo..yhi × xlo..xhi`, and output `j` reads input `j + shift` there.
#[inline]
fn planes(g: &Geom, mut f: impl FnMut(usize, usize, [usize; 2], [usize; 2], isize)) {
    let (k, [ih, iw]) = (g.kernel, g.input);
    for c in 0..g.cin {
        for ky in 0..k {
            let ys = inside(ih, 1, ky, g.pad[0], ih);
            for kx in 0..k {
                let xs = inside(iw, 1, kx, g.pad[1], iw);
                let row = (c * k + ky) * k + kx;
                let shift = (ky as isize - g.pad[0] as isize) * iw as isize + kx as isize
                    - g.pad[1] as isize;
                f(row * g.ld(), c * ih * iw, ys, xs, shift);
            }
        }
    }
}

/// Which of a plane's P outputs lie inside the input rectangle
/// `ylo..yhi × xlo..xhi`, rebuilt only when the rectangle changes (once
/// per kernel tap, not per image).
/// The mask is of `T` ([`Real::mask`]) because a select on a float
/// compare vectorises where one on a `bool` load did not.
struct Inside<T> {
    at: Option<([usize; 2], [usize; 2])>,
    keep: Vec<T>,
}

impl<T: Real> Inside<T> {
    fn new() -> Self {
        Inside {
            at: None,
            keep: Vec::new(),
        }
    }

    fn mask(&mut self, ys: [usize; 2], xs: [usize; 2], [oh, ow]: [usize; 2]) -> &[T] {
        if self.at != Some((ys, xs)) {
            self.at = Some((ys, xs));
            self.keep.clear();
            for y in 0..oh {
                let row = (ys[0]..ys[1]).contains(&y);
                self.keep
                    .extend((0..ow).map(|x| T::mask(row && (xs[0]..xs[1]).contains(&x))));
            }
        }
        &self.keep
    }
}

/// The outputs `lo..hi` of a plane of P whose input `from + j` lies in a
/// buffer of `len`, and the input of `lo`. Only the batch's first and
/// last planes lose any, and only outputs outside the input rectangle.
fn in_buffer(from: isize, p: usize, len: usize) -> ([usize; 2], usize) {
    let lo = usize::try_from(-from).unwrap_or(0).min(p);
    let hi = usize::try_from(len as isize - from)
        .unwrap_or(0)
        .clamp(lo, p);
    ([lo, hi], (from + lo as isize) as usize)
}

/// The images `lo..hi` whose plane `base + b·chw ..+ p` lies wholly inside
/// a buffer of `len` (all but the batch's first or last, at most).
fn middle(base: isize, chw: usize, p: usize, len: usize, batch: usize) -> [usize; 2] {
    let step = chw.max(1) as isize;
    let lo = if base >= 0 {
        0
    } else {
        (-base + step - 1) / step
    } as usize;
    let room = len as isize - p as isize - base;
    let hi = if room < 0 {
        0
    } else {
        (room / step) as usize + 1
    }
    .min(batch);
    [lo.min(hi), hi]
}

/// [`im2col`] of a [`shifted_planes`] convolution: each plane of each
/// image is one masked pass over P elements (vectorised; the per-row
/// copies of 4 and 8 elements they replace were a quarter of a digits CNN
/// step). Images whose planes lie wholly inside `x` go to
/// [`Real::gather_planes`] (AVX2) when it has a kernel.
fn im2col_shifted<T: Real>(g: &Geom, x: &[T], col: &mut [T]) {
    let (p, chw, zero) = (g.p(), g.cin * g.hw(), T::default());
    let mut inside = Inside::<T>::new();
    planes(g, |at, src, ys, xs, shift| {
        let keep = inside.mask(ys, xs, g.out);
        let base = src as isize + shift;
        let [lo, hi] = middle(base, chw, p, x.len(), g.batch);
        let from = (base + (lo * chw) as isize) as usize;
        let simd =
            lo < hi && T::gather_planes(x, from, chw, &mut col[at + lo * p..at + hi * p], keep);
        for b in (0..g.batch).filter(|b| !simd || !(lo..hi).contains(b)) {
            let dst = &mut col[at + b * p..][..p];
            let ([lo, hi], from) = in_buffer((src + b * chw) as isize + shift, p, x.len());
            dst[..lo].fill(zero);
            dst[hi..].fill(zero);
            let (dst, keep) = (&mut dst[lo..hi], &keep[lo..hi]);
            for ((d, &v), &k) in dst.iter_mut().zip(&x[from..][..hi - lo]).zip(keep) {
                *d = v.masked(k);
            }
        }
    });
}

/// [`col2im`] of a [`shifted_planes`] convolution, one masked pass per
/// plane as in [`im2col_shifted`]; adding zeros outside the rectangle
/// leaves those sums as they are.
fn col2im_shifted<T: Real>(g: &Geom, col: &[T], dx: &mut [T]) {
    let (p, chw, len) = (g.p(), g.cin * g.hw(), dx.len());
    let mut inside = Inside::<T>::new();
    planes(g, |at, dst, ys, xs, shift| {
        let keep = inside.mask(ys, xs, g.out);
        let base = dst as isize + shift;
        let [lo, hi] = middle(base, chw, p, len, g.batch);
        let to = (base + (lo * chw) as isize) as usize;
        let simd = lo < hi && T::scatter_planes(&col[at + lo * p..at + hi * p], dx, to, chw, keep);
        for b in (0..g.batch).filter(|b| !simd || !(lo..hi).contains(b)) {
            let ([lo, hi], to) = in_buffer((dst + b * chw) as isize + shift, p, len);
            let from = &col[at + b * p + lo..][..hi - lo];
            for ((d, &v), &k) in dx[to..][..hi - lo].iter_mut().zip(from).zip(&keep[lo..hi]) {
                *d = *d + v.masked(k);
            }
        }
    });
}

/// Fills `col` (rows of length `ld` = B·P) with the batch `x`'s input
/// under each output position (zero in the padding), writing each element
/// once: per output row the inside run is one copy, or per plane when the
/// planes are shifted copies of the input's.
fn im2col<T: Real>(g: &Geom, x: &[T], col: &mut [T], ld: usize) {
    let (s, iw, ow, pad) = (g.stride, g.input[1], g.out[1], g.pad[1]);
    let zero = T::default();
    if shifted_planes(g) {
        return im2col_shifted(g, x, col);
    }
    rows(g, |row, at, kx, line| {
        let dst = &mut col[row * ld + at..][..ow];
        let Some(line) = line else {
            dst.fill(zero);
            return;
        };
        let [lo, hi] = inside(ow, s, kx, pad, iw);
        dst[..lo].fill(zero);
        dst[hi..].fill(zero);
        if lo == hi {
            return;
        }
        let src = &x[line + lo * s + kx - pad..];
        for (v, &e) in dst[lo..hi].iter_mut().zip(src.iter().step_by(s)) {
            *v = e;
        }
    });
}

/// Adds `col` back into the batch's `dx` (the adjoint of [`im2col`]), each
/// element's sums in the order of the column matrix's rows, as the naive
/// loop does.
fn col2im<T: Real>(g: &Geom, col: &[T], dx: &mut [T], ld: usize) {
    let (s, iw, ow, pad) = (g.stride, g.input[1], g.out[1], g.pad[1]);
    dx.fill(T::default());
    if shifted_planes(g) {
        return col2im_shifted(g, col, dx);
    }
    rows(g, |row, at, kx, line| {
        let Some(line) = line else { return };
        let [lo, hi] = inside(ow, s, kx, pad, iw);
        if lo == hi {
            return;
        }
        let src = &col[row * ld + at + lo..][..hi - lo];
        let dst = dx[line + lo * s + kx - pad..].iter_mut().step_by(s);
        for (d, &v) in dst.zip(src) {
            *d = *d + v;
        }
    });
}

/// Transposes the window side `[B, N, P]` into `δᵀ [B·P, N]`, the row
/// of each output position holding its N channels.
fn transpose_windows<T: Real>(g: &Geom, batched: &[T], dt: &mut [T]) {
    let (n, p) = (g.cout, g.p());
    for (img, out) in batched.chunks_exact(n * p).zip(dt.chunks_exact_mut(p * n)) {
        T::transpose(img, p, n, p, out);
    }
}

/// The scratch of a convolution ([`Geom::scratch`]): the column matrix,
/// `δᵀ [B·P, N]` and `dWᵀ [CKK, N]`.
fn split<'a, T>(g: &Geom, scratch: &'a mut [T]) -> [&'a mut [T]; 3] {
    let (col, rest) = scratch.split_at_mut(g.ckk() * g.ld());
    let (dt, rest) = rest.split_at_mut(g.cout * g.batch * g.p());
    [col, dt, &mut rest[..g.ckk() * g.cout]]
}

/// `y = W ⋆ x`: per image b, `y_b [N, P] = W [N, CKK] · col_b [CKK, P]`,
/// where `col_b` is the image's P columns of the batch's column matrix.
/// One product per image writes the `[B, N, P]` layout directly; measured
/// as fast as one product over all B·P columns followed by a copy into that
/// layout, without the copy.
pub(super) fn conv<T: Real>(
    g: &Geom,
    x: &[T],
    w: *const T,
    y: &mut [T],
    scratch: &mut [T],
    threads: usize,
) {
    let (ld, ckk, p) = (g.ld(), g.ckk(), g.p());
    let [col, ..] = split(g, scratch);
    im2col(g, x, col, ld);
    for (b, yb) in y.chunks_exact_mut(g.cout * p).enumerate() {
        // SAFETY: `w` holds N·CKK elements (the caller's contract); image
        // b's columns start at b·P in rows of `ld`; `yb` holds N·P.
        unsafe {
            let (bp, c) = (col.as_ptr().add(b * p), yb.as_mut_ptr());
            product(
                g.cout,
                ckk,
                p,
                w,
                (ckk as isize, 1),
                bp,
                (ld as isize, 1),
                c,
                (p as isize, 1),
                threads,
            )
        };
    }
}

/// `dx = Wᵀ ⋆ δ`: per image, `col_b [CKK, P] = Wᵀ [CKK, N] · δ_b [N, P]`
/// (as in [`conv`], no copy of δ), then col2im.
pub(super) fn conv_back_input<T: Real>(
    g: &Geom,
    d: &[T],
    w: *const T,
    dx: &mut [T],
    scratch: &mut [T],
    threads: usize,
) {
    let (ld, ckk, p) = (g.ld(), g.ckk(), g.p());
    let [col, ..] = split(g, scratch);
    for (b, db) in d.chunks_exact(g.cout * p).enumerate() {
        // SAFETY: as in [`conv`]; `db` holds N·P elements.
        unsafe {
            let (bp, c) = (db.as_ptr(), col.as_mut_ptr().add(b * p));
            product(
                ckk,
                g.cout,
                p,
                w,
                (1, ckk as isize),
                bp,
                (p as isize, 1),
                c,
                (ld as isize, 1),
                threads,
            )
        };
    }
    col2im(g, col, dx, ld);
}

/// `dW = δ ⋆ x`, as its transpose `dWᵀ [CKK, N] = col [CKK, B·P] ·
/// δᵀ [B·P, N]` (the column matrix unrolled here unless `cols_ready` says
/// the scratch holds it): δᵀ is narrow and contiguous, so on AVX2 the
/// product runs in the broadcast kernel (`gemm::avx2_long_sum`) with no
/// packing; `δ · colᵀ` needed the `gemm` crate to pack a transposed
/// operand, at two thirds of the speed.
pub(super) fn conv_back_kernel<T: Real>(
    g: &Geom,
    x: &[T],
    d: &[T],
    dw: &mut [T],
    scratch: &mut [T],
    (threads, cols_ready): (usize, bool),
) {
    let (ld, ckk, n, bp) = (g.ld(), g.ckk(), g.cout, g.batch * g.p());
    let [col, dt, dwt] = split(g, scratch);
    if !cols_ready {
        im2col(g, x, col, ld);
    }
    transpose_windows(g, d, dt);
    // SAFETY: `col` holds CKK rows of `ld` ≥ B·P; `dt` holds B·P rows of
    // N; `dwt` holds CKK·N.
    unsafe {
        let (a, b, c) = (col.as_ptr(), dt.as_ptr(), dwt.as_mut_ptr());
        product(
            ckk,
            bp,
            n,
            a,
            (ld as isize, 1),
            b,
            (n as isize, 1),
            c,
            (n as isize, 1),
            threads,
        )
    };
    T::transpose(dwt, n, ckk, n, dw);
}
