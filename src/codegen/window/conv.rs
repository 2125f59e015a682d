//! The convolution kernels: the whole batch is unrolled by im2col into one
//! `[C·K·K, B·H'·W']` matrix, so each of the forward pass and the two
//! adjoints is a single large GEMM (the kernel gradient sums over the
//! batch inside it). The window side `[B, N, H'·W']` is moved to and from
//! the GEMM's `[N, B·H'·W']` layout by contiguous row copies.

use super::{Geom, Real};

/// The output positions `lo..hi` along one axis whose tap at kernel offset
/// `k` lands in the input (of length `n`), for stride `s` and padding `pad`.
#[inline]
fn valid(k: usize, s: usize, pad: usize, n: usize, out: usize) -> (usize, usize) {
    // o·s + k − pad ∈ [0, n)  ⇔  o ≥ ⌈(pad − k)/s⌉ and o·s < n + pad − k.
    let lo = pad.saturating_sub(k).div_ceil(s).min(out);
    let hi = (n + pad).saturating_sub(k).div_ceil(s).clamp(lo, out);
    (lo, hi)
}

/// Calls `f(col row, column offset, input offset, run)` for every run of
/// `im2col`'s column matrix that comes from one image's input row:
/// `col[row][at + j] ↔ x[from + j·stride]` for `j < run`; what no run
/// covers is padding.
#[inline]
fn runs(g: &Geom, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (k, s, [ih, iw], [oh, ow]) = (g.kernel, g.stride, g.input, g.out);
    for c in 0..g.cin {
        for ky in 0..k {
            let (ylo, yhi) = valid(ky, s, g.pad[0], ih, oh);
            for kx in 0..k {
                let (xlo, xhi) = valid(kx, s, g.pad[1], iw, ow);
                if xhi == xlo {
                    continue;
                }
                let row = (c * k + ky) * k + kx;
                for oy in ylo..yhi {
                    let iy = oy * s + ky - g.pad[0];
                    let from = c * ih * iw + iy * iw + xlo * s + kx - g.pad[1];
                    f(row, oy * ow + xlo, from, xhi - xlo);
                }
            }
        }
    }
}

/// Fills the columns `b·P..(b+1)·P` of `col` (rows of length `ld`) with
/// image `x`'s input under each output position (zero in the padding).
fn im2col<T: Real>(g: &Geom, x: &[T], col: &mut [T], b: usize, ld: usize) {
    let p = g.p();
    for row in 0..g.ckk() {
        col[row * ld + b * p..][..p].fill(T::default());
    }
    let s = g.stride;
    runs(g, |row, at, from, run| {
        let dst = &mut col[row * ld + b * p + at..][..run];
        if s == 1 {
            dst.copy_from_slice(&x[from..][..run]);
        } else {
            for (j, v) in dst.iter_mut().enumerate() {
                *v = x[from + j * s];
            }
        }
    });
}

/// Adds the columns `b·P..(b+1)·P` of `col` back into image `b`'s `dx`
/// (the adjoint of [`im2col`]), in the same order as the naive loop.
fn col2im<T: Real>(g: &Geom, col: &[T], dx: &mut [T], b: usize, ld: usize) {
    let (p, s) = (g.p(), g.stride);
    dx.fill(T::default());
    runs(g, |row, at, from, run| {
        let src = &col[row * ld + b * p + at..][..run];
        for (j, v) in src.iter().enumerate() {
            dx[from + j * s] = dx[from + j * s] + *v;
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
pub(super) fn conv<T: Real>(g: &Geom, x: &[T], w: *const T, y: &mut [T], scratch: &mut [T]) {
    let (ld, ckk, chw) = (g.batch * g.p(), g.ckk(), g.cin * g.input[0] * g.input[1]);
    let (col, wide) = split(g, scratch);
    for b in 0..g.batch {
        im2col(g, &x[b * chw..][..chw], col, b, ld);
    }
    // SAFETY: `w` holds N·CKK elements (the caller's contract); the
    // slices hold the sizes the strides describe.
    unsafe {
        let (a, bp, c) = (w, col.as_ptr(), wide.as_mut_ptr());
        T::gemm(
            g.cout,
            ckk,
            ld,
            a,
            ckk as isize,
            1,
            bp,
            ld as isize,
            1,
            T::default(),
            c,
            ld as isize,
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
) {
    let (ld, ckk, chw) = (g.batch * g.p(), g.ckk(), g.cin * g.input[0] * g.input[1]);
    let (col, wide) = split(g, scratch);
    widen(g, d, wide);
    // SAFETY: as in [`conv`].
    unsafe {
        let (a, bp, c) = (w, wide.as_ptr(), col.as_mut_ptr());
        T::gemm(
            ckk,
            g.cout,
            ld,
            a,
            1,
            ckk as isize,
            bp,
            ld as isize,
            1,
            T::default(),
            c,
            ld as isize,
        )
    };
    for b in 0..g.batch {
        col2im(g, col, &mut dx[b * chw..][..chw], b, ld);
    }
}

/// `dW = δ ⋆ x`: `dW [N, CKK] = δ [N, B·P] · colᵀ [B·P, CKK]`.
pub(super) fn conv_back_kernel<T: Real>(
    g: &Geom,
    x: &[T],
    d: &[T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    let (ld, ckk, chw) = (g.batch * g.p(), g.ckk(), g.cin * g.input[0] * g.input[1]);
    let (col, wide) = split(g, scratch);
    for b in 0..g.batch {
        im2col(g, &x[b * chw..][..chw], col, b, ld);
    }
    widen(g, d, wide);
    // SAFETY: as in [`conv`].
    unsafe {
        let (a, bp, c) = (wide.as_ptr(), col.as_ptr(), dw.as_mut_ptr());
        T::gemm(
            g.cout,
            ld,
            ckk,
            a,
            ld as isize,
            1,
            bp,
            1,
            ld as isize,
            T::default(),
            c,
            ckk as isize,
        )
    };
}
