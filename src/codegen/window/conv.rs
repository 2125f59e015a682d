//! The convolution kernels: the whole batch is unrolled by im2col into one
//! `[C·K·K, B·H'·W']` matrix, so each of the forward pass and the two
//! adjoints is a single large GEMM (the kernel gradient sums over the
//! batch inside it). The window side `[B, N, H'·W']` is moved to and from
//! the GEMM's `[N, B·H'·W']` layout by contiguous row copies.

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

/// Fills `col` (rows of length `ld` = B·P) with the batch `x`'s input
/// under each output position (zero in the padding), writing each element
/// once and without calls for the short runs.
fn im2col<T: Real>(g: &Geom, x: &[T], col: &mut [T], ld: usize) {
    let (s, iw, ow, pad) = (g.stride, g.input[1], g.out[1], g.pad[1]);
    rows(g, |row, at, kx, line| {
        let dst = &mut col[row * ld + at..][..ow];
        match line {
            None => dst.iter_mut().for_each(|v| *v = T::default()),
            Some(line) => {
                let src = &x[line..][..iw];
                for (ox, v) in dst.iter_mut().enumerate() {
                    let ix = (ox * s + kx).wrapping_sub(pad);
                    *v = if ix < iw { src[ix] } else { T::default() };
                }
            }
        }
    });
}

/// Adds `col` back into the batch's `dx` (the adjoint of [`im2col`]), each
/// image's sums in the same order as the naive loop.
fn col2im<T: Real>(g: &Geom, col: &[T], dx: &mut [T], ld: usize) {
    let (s, iw, ow, pad) = (g.stride, g.input[1], g.out[1], g.pad[1]);
    dx.fill(T::default());
    rows(g, |row, at, kx, line| {
        let Some(line) = line else { return };
        let (src, dst) = (&col[row * ld + at..][..ow], &mut dx[line..][..iw]);
        for (ox, v) in src.iter().enumerate() {
            let ix = (ox * s + kx).wrapping_sub(pad);
            if ix < iw {
                dst[ix] = dst[ix] + *v;
            }
        }
    });
}

/// Copies the window side `[B, N, P]` into the GEMM's `[N, B·P]`.
fn widen<T: Real>(g: &Geom, batched: &[T], wide: &mut [T]) {
    let (nb, n, p) = (g.batch, g.cout, g.p());
    for b in 0..nb {
        for c in 0..n {
            wide[(c * nb + b) * p..][..p].copy_from_slice(&batched[(b * n + c) * p..][..p]);
        }
    }
}

/// Copies the GEMM's `[N, B·P]` back into the window side `[B, N, P]`.
fn narrow<T: Real>(g: &Geom, wide: &[T], batched: &mut [T]) {
    let (nb, n, p) = (g.batch, g.cout, g.p());
    for b in 0..nb {
        for c in 0..n {
            batched[(b * n + c) * p..][..p].copy_from_slice(&wide[(c * nb + b) * p..][..p]);
        }
    }
}

/// The scratch of a convolution: the column matrix, then the `[N, B·P]`
/// window side.
fn split<'a, T>(g: &Geom, scratch: &'a mut [T]) -> (&'a mut [T], &'a mut [T]) {
    let (col, wide) = scratch.split_at_mut(g.ckk() * g.batch * g.p());
    (col, &mut wide[..g.cout * g.batch * g.p()])
}

/// `y = W ⋆ x`: `y [N, B·P] = W [N, CKK] · col [CKK, B·P]`.
pub(super) fn conv<T: Real>(
    g: &Geom,
    x: &[T],
    w: *const T,
    y: &mut [T],
    scratch: &mut [T],
    threads: usize,
) {
    let (ld, ckk) = (g.batch * g.p(), g.ckk());
    let (col, wide) = split(g, scratch);
    im2col(g, x, col, ld);
    // SAFETY: `w` holds N·CKK elements (the caller's contract); the
    // slices hold the sizes the strides describe.
    unsafe {
        let (a, bp, c) = (w, col.as_ptr(), wide.as_mut_ptr());
        product(
            g.cout,
            ckk,
            ld,
            a,
            (ckk as isize, 1),
            bp,
            (ld as isize, 1),
            c,
            (ld as isize, 1),
            threads,
        )
    };
    narrow(g, wide, y);
}

/// `dx = Wᵀ ⋆ δ`: `col [CKK, B·P] = Wᵀ [CKK, N] · δ [N, B·P]`, then col2im.
pub(super) fn conv_back_input<T: Real>(
    g: &Geom,
    d: &[T],
    w: *const T,
    dx: &mut [T],
    scratch: &mut [T],
    threads: usize,
) {
    let (ld, ckk) = (g.batch * g.p(), g.ckk());
    let (col, wide) = split(g, scratch);
    widen(g, d, wide);
    // SAFETY: as in [`conv`].
    unsafe {
        let (a, bp, c) = (w, wide.as_ptr(), col.as_mut_ptr());
        product(
            ckk,
            g.cout,
            ld,
            a,
            (1, ckk as isize),
            bp,
            (ld as isize, 1),
            c,
            (ld as isize, 1),
            threads,
        )
    };
    col2im(g, col, dx, ld);
}

/// `dW = δ ⋆ x`: `dW [N, CKK] = δ [N, B·P] · colᵀ [B·P, CKK]`.
pub(super) fn conv_back_kernel<T: Real>(
    g: &Geom,
    x: &[T],
    d: &[T],
    dw: &mut [T],
    scratch: &mut [T],
    threads: usize,
) {
    let (ld, ckk) = (g.batch * g.p(), g.ckk());
    let (col, wide) = split(g, scratch);
    im2col(g, x, col, ld);
    widen(g, d, wide);
    // SAFETY: as in [`conv`].
    unsafe {
        let (a, bp, c) = (wide.as_ptr(), col.as_ptr(), dw.as_mut_ptr());
        product(
            g.cout,
            ld,
            ckk,
            a,
            (ld as isize, 1),
            bp,
            (1, ld as isize),
            c,
            (ckk as isize, 1),
            threads,
        )
    };
}
