//! Host kernels of the window ops (convolution and pooling), called from
//! JIT code like the matrix products: a convolution is im2col feeding
//! `matrixmultiply`'s GEMM (the forward pass and both adjoints are one
//! product each per image), pooling is a direct loop. The f64 loops of
//! `graph::conv` are the oracle these are tested against.
//!
//! Max pooling picks, in each window, the first element in row-major
//! window order that no later one exceeds (a later element replaces the
//! best only when it is not `<=` it), exactly as the interpreter does, so
//! ties route δ to the same place in both.

use crate::graph::WindowOp;

/// The sizes of one window kernel, as the JIT passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the image side (`C` of `[B, C, H, W]`).
    pub cin: usize,
    /// Channels of the window side (`N` filters; `C` for pooling).
    pub cout: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Window side and stride.
    pub kernel: usize,
    pub stride: usize,
    /// Zeros before the input (top, left).
    pub pad: [usize; 2],
    /// Output height and width.
    pub out: [usize; 2],
}

impl Geom {
    fn hw(&self) -> usize {
        self.input[0] * self.input[1]
    }
    fn p(&self) -> usize {
        self.out[0] * self.out[1]
    }
    fn ckk(&self) -> usize {
        self.cin * self.kernel * self.kernel
    }
    /// Elements of the im2col scratch of one image: `C·K·K × H'·W'`.
    pub fn scratch(&self) -> usize {
        self.ckk() * self.p()
    }
    /// The input offset (within one channel) under output `(oy, ox)` at
    /// kernel offset `(ky, kx)`, or `None` in the padding.
    #[inline]
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * self.stride + ky).checked_sub(self.pad[0])?;
        let ix = (ox * self.stride + kx).checked_sub(self.pad[1])?;
        (iy < self.input[0] && ix < self.input[1]).then_some(iy * self.input[1] + ix)
    }
}

/// The element types of the host kernels.
pub(crate) trait Real:
    Copy + Default + PartialOrd + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    /// `c = alpha·a·b + beta·c` with element strides.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
    );
    /// `1/n`.
    fn recip(n: usize) -> Self;
}

impl Real for f32 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
    ) {
        // SAFETY: the caller's sizes and strides describe its buffers.
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, 1) }
    }
    fn recip(n: usize) -> f32 {
        1.0 / n as f32
    }
}

impl Real for f64 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
    ) {
        // SAFETY: the caller's sizes and strides describe its buffers.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, 1) }
    }
    fn recip(n: usize) -> f64 {
        1.0 / n as f64
    }
}

/// Fills `col[(c·K + ky)·K + kx][p]` with one image's input under output
/// position `p` (zero in the padding).
fn im2col<T: Real>(g: &Geom, x: &[T], col: &mut [T]) {
    let (k, p, hw) = (g.kernel, g.p(), g.hw());
    for c in 0..g.cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((c * k + ky) * k + kx) * p..][..p];
                for oy in 0..g.out[0] {
                    for ox in 0..g.out[1] {
                        row[oy * g.out[1] + ox] = match g.source(oy, ox, ky, kx) {
                            Some(i) => x[c * hw + i],
                            None => T::default(),
                        };
                    }
                }
            }
        }
    }
}

/// Adds `col` back into one image's `dx` (the adjoint of [`im2col`]).
fn col2im<T: Real>(g: &Geom, col: &[T], dx: &mut [T]) {
    let (k, p, hw) = (g.kernel, g.p(), g.hw());
    dx.fill(T::default());
    for c in 0..g.cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &col[((c * k + ky) * k + kx) * p..][..p];
                for oy in 0..g.out[0] {
                    for ox in 0..g.out[1] {
                        if let Some(i) = g.source(oy, ox, ky, kx) {
                            dx[c * hw + i] = dx[c * hw + i] + row[oy * g.out[1] + ox];
                        }
                    }
                }
            }
        }
    }
}

/// One window op over raw buffers of the sizes `g` implies.
///
/// # Safety
/// `a`, `b` (when the op reads it), `dst` and `scratch` must hold the
/// elements the op's operand, result and [`Geom::scratch`] sizes say, and
/// `dst` and `scratch` must not overlap each other or the operands.
pub(crate) unsafe fn run<T: Real>(
    op: WindowOp,
    g: &Geom,
    a: *const T,
    b: *const T,
    dst: *mut T,
    scratch: *mut T,
) {
    let (nb, cin, cout, hw, p) = (g.batch, g.cin, g.cout, g.hw(), g.p());
    let ckk = g.ckk();
    let image = nb * cin * hw;
    let window = nb * cout * p;
    let kernel = cout * ckk;
    // SAFETY: the lengths are those the caller guarantees (see above).
    let slice = |ptr: *const T, len: usize| unsafe { std::slice::from_raw_parts(ptr, len) };
    let slice_mut = |ptr: *mut T, len: usize| unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    match op {
        WindowOp::Conv => {
            let (x, w, y) = (slice(a, image), b, slice_mut(dst, window));
            let col = slice_mut(scratch, g.scratch());
            for i in 0..nb {
                im2col(g, &x[i * cin * hw..][..cin * hw], col);
                let yi = y[i * cout * p..].as_mut_ptr();
                // y_i [N, P] = W [N, CKK] · col [CKK, P]
                // SAFETY: sizes as above.
                unsafe {
                    T::gemm(
                        cout,
                        ckk,
                        p,
                        w,
                        ckk as isize,
                        1,
                        col.as_ptr(),
                        p as isize,
                        1,
                        T::default(),
                        yi,
                        p as isize,
                    )
                };
            }
        }
        WindowOp::ConvBackInput => {
            let (d, w, dx) = (slice(a, window), b, slice_mut(dst, image));
            let col = slice_mut(scratch, g.scratch());
            for i in 0..nb {
                let di = d[i * cout * p..].as_ptr();
                // col [CKK, P] = Wᵀ [CKK, N] · δ_i [N, P]
                // SAFETY: sizes as above.
                unsafe {
                    T::gemm(
                        ckk,
                        cout,
                        p,
                        w,
                        1,
                        ckk as isize,
                        di,
                        p as isize,
                        1,
                        T::default(),
                        col.as_mut_ptr(),
                        p as isize,
                    )
                };
                col2im(g, col, &mut dx[i * cin * hw..][..cin * hw]);
            }
        }
        WindowOp::ConvBackKernel => {
            let (x, d, dw) = (slice(a, image), slice(b, window), slice_mut(dst, kernel));
            let col = slice_mut(scratch, g.scratch());
            // The first image's product overwrites dW (β = 0), the rest add (β = 1).
            dw.fill(T::default());
            for i in 0..nb {
                im2col(g, &x[i * cin * hw..][..cin * hw], col);
                let di = d[i * cout * p..].as_ptr();
                // dW [N, CKK] += δ_i [N, P] · colᵀ [P, CKK]
                // SAFETY: sizes as above.
                unsafe {
                    T::gemm(
                        cout,
                        p,
                        ckk,
                        di,
                        p as isize,
                        1,
                        col.as_ptr(),
                        1,
                        p as isize,
                        if i == 0 { T::default() } else { T::recip(1) },
                        dw.as_mut_ptr(),
                        ckk as isize,
                    )
                };
            }
        }
        WindowOp::MaxPool => {
            let (s, v, y) = (slice(a, image), slice(b, image), slice_mut(dst, window));
            each_window(g, |plane, o, oy, ox| {
                y[plane * p + o] = v[plane * hw + argmax(s, plane * hw, taps(g, oy, ox))];
            });
        }
        WindowOp::MaxPoolBack => {
            let (s, d, dx) = (slice(a, image), slice(b, window), slice_mut(dst, image));
            dx.fill(T::default());
            each_window(g, |plane, o, oy, ox| {
                let at = plane * hw + argmax(s, plane * hw, taps(g, oy, ox));
                dx[at] = dx[at] + d[plane * p + o];
            });
        }
        WindowOp::AvgPool => {
            let (x, y) = (slice(a, image), slice_mut(dst, window));
            let scale = T::recip(g.kernel * g.kernel);
            each_window(g, |plane, o, oy, ox| {
                let sum = taps(g, oy, ox).fold(T::default(), |acc, t| acc + x[plane * hw + t]);
                y[plane * p + o] = sum * scale;
            });
        }
        WindowOp::AvgPoolBack => {
            let (d, dx) = (slice(a, window), slice_mut(dst, image));
            let scale = T::recip(g.kernel * g.kernel);
            dx.fill(T::default());
            each_window(g, |plane, o, oy, ox| {
                let share = d[plane * p + o] * scale;
                for t in taps(g, oy, ox) {
                    dx[plane * hw + t] = dx[plane * hw + t] + share;
                }
            });
        }
    }
}

/// Calls `f(plane, output offset, oy, ox)` for every window of every
/// `(image, channel)` plane.
fn each_window(g: &Geom, mut f: impl FnMut(usize, usize, usize, usize)) {
    for plane in 0..g.batch * g.cout {
        for oy in 0..g.out[0] {
            for ox in 0..g.out[1] {
                f(plane, oy * g.out[1] + ox, oy, ox);
            }
        }
    }
}

/// The input offsets (within a plane) of the window at `(oy, ox)`, in
/// row-major window order, padding skipped.
fn taps(g: &Geom, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
    (0..g.kernel * g.kernel).filter_map(move |t| g.source(oy, ox, t / g.kernel, t % g.kernel))
}

/// The offset (within the plane at `base`) of the window's largest
/// element: a later one replaces the best unless it is `<=` it.
fn argmax<T: Real>(s: &[T], base: usize, mut taps: impl Iterator<Item = usize>) -> usize {
    let Some(mut best) = taps.next() else {
        return 0;
    };
    for t in taps {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(s[base + t] <= s[base + best]) {
            best = t;
        }
    }
    best
}

macro_rules! window_shim {
    ($name:ident, $t:ty) => {
        /// A window op called from JIT code: the op's index in
        /// [`OPS`], its buffers, and the sizes of [`Geom`].
        ///
        /// # Safety
        /// As for [`run`]: the JIT passes buffers of the planned lengths.
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe extern "C" fn $name(
            op: usize,
            a: *const $t,
            b: *const $t,
            dst: *mut $t,
            scratch: *mut $t,
            batch: usize,
            cin: usize,
            cout: usize,
            ih: usize,
            iw: usize,
            kernel: usize,
            stride: usize,
            pt: usize,
            pl: usize,
            oh: usize,
            ow: usize,
        ) {
            let g = Geom {
                batch,
                cin,
                cout,
                input: [ih, iw],
                kernel,
                stride,
                pad: [pt, pl],
                out: [oh, ow],
            };
            // SAFETY: the JIT passes buffers of the lengths the plan checked.
            unsafe { run(OPS[op], &g, a, b, dst, scratch) }
        }
    };
}

window_shim!(window_f32, f32);
window_shim!(window_f64, f64);

/// The window ops by the index JIT code passes.
pub(crate) const OPS: [WindowOp; 7] = [
    WindowOp::Conv,
    WindowOp::ConvBackInput,
    WindowOp::ConvBackKernel,
    WindowOp::MaxPool,
    WindowOp::MaxPoolBack,
    WindowOp::AvgPool,
    WindowOp::AvgPoolBack,
];
