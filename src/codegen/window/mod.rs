//! Host kernels of the window ops (convolution and pooling), called from
//! JIT code like the matrix products: a convolution is im2col feeding
//! the GEMM of [`super::gemm::product`] (one product per image for the
//! forward pass and the input gradient, one over the whole batch for the
//! kernel gradient: [`conv`]), pooling is a direct loop ([`pool`]). The f64 loops of `graph::conv` are the oracle these are
//! tested against.

mod conv;
mod pool;
mod pool_simd;
mod shift_simd;

use super::gemm::Scalar;
use crate::graph::WindowOp;

/// The sizes of one window kernel, as the JIT passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Windows of the batch: `B·N·H'·W'` (one arg-max each when a max
    /// pooling records them).
    pub fn windows(&self) -> usize {
        self.batch * self.cout * self.p()
    }
    /// The row stride of the column matrix and of the regrouped window
    /// side: B·H'·W' rounded up to an odd multiple of 16 elements. A
    /// per-image product reads 16 columns of every row; at a stride that
    /// is a multiple of 1 KiB (32·16 elements for the digits CNN's second
    /// convolution) those rows all fall into two of L1's 64 sets and evict
    /// each other. An odd number of 64-byte lines apart, they use every
    /// set: that product went from 67 to 86 GFLOP/s on one Zen 3 core.
    fn ld(&self) -> usize {
        let lines = (self.batch * self.p()).div_ceil(16);
        (lines | 1) * 16
    }
    /// Elements of a convolution's scratch: the whole batch's im2col
    /// matrix `C·K·K × B·H'·W'` (rows [`Geom::ld`] apart), the window
    /// side transposed to `δᵀ [B·H'·W', N]`, and the kernel gradient's
    /// transpose `C·K·K × N` (see [`conv`]).
    pub fn scratch(&self) -> usize {
        self.ckk() * self.ld() + self.cout * self.batch * self.p() + self.ckk() * self.cout
    }
}

/// The element types of the host kernels.
pub(crate) trait Real:
    Scalar + PartialOrd + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    /// `1/n`.
    fn recip(n: usize) -> Self;
    /// An index (below 2²⁴, so exact in f32) as a value of a buffer.
    fn from_index(i: usize) -> Self;
    /// The index [`Real::from_index`] stored.
    fn to_index(self) -> usize;
    /// [`crate::codegen::gemm::transpose`] for this type.
    fn transpose(src: &[Self], ld: usize, rows: usize, cols: usize, dst: &mut [Self]);
    /// `dst[i·P + j] = x[from + i·chw + j]` masked by `keep` (P long) for
    /// every plane of `dst`, with SIMD; false, having done nothing, when
    /// there is none for this type, P or host (see `shift_simd`).
    fn gather_planes(x: &[Self], from: usize, chw: usize, dst: &mut [Self], keep: &[Self]) -> bool;
    /// `dx[to + i·chw + j] += col[i·P + j]` masked by `keep`, as
    /// [`Real::gather_planes`].
    fn scatter_planes(col: &[Self], dx: &mut [Self], to: usize, chw: usize, keep: &[Self]) -> bool;
    /// A mask for [`Real::masked`]: every bit set when `keep`, else none.
    fn mask(keep: bool) -> Self;
    /// `self` where `mask` is set, +0 where it is clear: a bitwise and,
    /// which vectorises in every loop shape (a select on a compare did
    /// not once the loop had a fixed length), and keeps 0 where the value
    /// is ±inf or NaN, as a product by 0 would not.
    fn masked(self, mask: Self) -> Self;
    /// A vector start on a 2×2 max pooling of the tall image `x` (row
    /// pairs of width `iw`): the windows it did, whole row pairs (0 when
    /// it has none for this type or width).
    fn pool2_simd(x: &[Self], y: &mut [Self], record: Option<&mut [Self]>, iw: usize) -> usize;
    /// Its adjoint from the recorded arg-maxes `at`, writing every element
    /// of the windows it did (as [`Real::pool2_simd`]).
    fn pool2_back_simd(at: &[Self], d: &[Self], dx: &mut [Self], iw: usize) -> usize;
}

impl Real for f32 {
    fn recip(n: usize) -> f32 {
        1.0 / n as f32
    }
    fn from_index(i: usize) -> f32 {
        i as f32
    }
    fn to_index(self) -> usize {
        self as usize
    }
    fn transpose(src: &[f32], ld: usize, rows: usize, cols: usize, dst: &mut [f32]) {
        crate::codegen::gemm::transpose(src, ld, rows, cols, dst);
    }
    fn gather_planes(x: &[f32], from: usize, chw: usize, dst: &mut [f32], keep: &[f32]) -> bool {
        shift_simd::gather(x, from, chw, dst, keep)
    }
    fn scatter_planes(col: &[f32], dx: &mut [f32], to: usize, chw: usize, keep: &[f32]) -> bool {
        shift_simd::scatter_add(col, dx, to, chw, keep)
    }
    fn mask(keep: bool) -> f32 {
        f32::from_bits(if keep { !0 } else { 0 })
    }
    fn masked(self, mask: f32) -> f32 {
        f32::from_bits(self.to_bits() & mask.to_bits())
    }
    fn pool2_simd(x: &[f32], y: &mut [f32], record: Option<&mut [f32]>, iw: usize) -> usize {
        pool_simd::pool2(x, y, record, iw)
    }
    fn pool2_back_simd(at: &[f32], d: &[f32], dx: &mut [f32], iw: usize) -> usize {
        pool_simd::pool2_back(at, d, dx, iw)
    }
}

impl Real for f64 {
    fn recip(n: usize) -> f64 {
        1.0 / n as f64
    }
    fn from_index(i: usize) -> f64 {
        i as f64
    }
    fn to_index(self) -> usize {
        self as usize
    }
    fn gather_planes(_: &[f64], _: usize, _: usize, _: &mut [f64], _: &[f64]) -> bool {
        false
    }
    fn scatter_planes(_: &[f64], _: &mut [f64], _: usize, _: usize, _: &[f64]) -> bool {
        false
    }
    /// Element by element: the f64 build serves `gradcheck`, not speed.
    fn transpose(src: &[f64], ld: usize, rows: usize, cols: usize, dst: &mut [f64]) {
        for j in 0..rows {
            for p in 0..cols {
                dst[p * rows + j] = src[j * ld + p];
            }
        }
    }
    fn mask(keep: bool) -> f64 {
        f64::from_bits(if keep { !0 } else { 0 })
    }
    fn masked(self, mask: f64) -> f64 {
        f64::from_bits(self.to_bits() & mask.to_bits())
    }
    /// None: the f64 build serves `gradcheck`, not speed.
    fn pool2_simd(_: &[f64], _: &mut [f64], _: Option<&mut [f64]>, _: usize) -> usize {
        0
    }
    fn pool2_back_simd(_: &[f64], _: &[f64], _: &mut [f64], _: usize) -> usize {
        0
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
    (threads, cols_ready): (usize, bool),
) {
    let (nb, cin, cout, hw, p) = (g.batch, g.cin, g.cout, g.hw(), g.p());
    let image = nb * cin * hw;
    let window = nb * cout * p;
    let kernel = cout * g.ckk();
    // SAFETY: the lengths are those the caller guarantees (see above).
    let slice = |ptr: *const T, len: usize| unsafe { std::slice::from_raw_parts(ptr, len) };
    let slice_mut = |ptr: *mut T, len: usize| unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    match op {
        WindowOp::Conv => {
            let (x, y, s) = (
                slice(a, image),
                slice_mut(dst, window),
                slice_mut(scratch, g.scratch()),
            );
            conv::conv(g, x, b, y, s, threads);
        }
        WindowOp::ConvBackInput => {
            let (d, dx, s) = (
                slice(a, window),
                slice_mut(dst, image),
                slice_mut(scratch, g.scratch()),
            );
            conv::conv_back_input(g, d, b, dx, s, threads);
        }
        WindowOp::ConvBackKernel => {
            let (x, d, dw) = (slice(a, image), slice(b, window), slice_mut(dst, kernel));
            let s = slice_mut(scratch, g.scratch());
            conv::conv_back_kernel(g, x, d, dw, s, (threads, cols_ready));
        }
        WindowOp::MaxPool => {
            let (s, v, y) = (slice(a, image), slice(b, image), slice_mut(dst, window));
            // A scratch, when given, receives the arg-maxes.
            let record = (!scratch.is_null()).then(|| slice_mut(scratch, window));
            pool::max_pool(g, s, v, y, record);
        }
        WindowOp::MaxPoolBack => {
            let (s, d, dx) = (slice(a, image), slice(b, window), slice_mut(dst, image));
            // The forward pooling's arg-maxes, when the scratch holds them.
            let known = cols_ready.then(|| slice(scratch, window));
            pool::max_pool_back(g, s, d, dx, known);
        }
        WindowOp::AvgPool => pool::avg_pool(g, slice(a, image), slice_mut(dst, window)),
        WindowOp::AvgPoolBack => pool::avg_pool_back(g, slice(a, window), slice_mut(dst, image)),
    }
}

macro_rules! window_shim {
    ($name:ident, $t:ty) => {
        /// A window op called from JIT code: the op's index in
        /// [`OPS`], its buffers, the sizes of [`Geom`], the thread count
        /// of its products, and whether the scratch already holds the
        /// first operand's im2col (nonzero).
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
            threads: usize,
            cols_ready: usize,
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
            unsafe { run(OPS[op], &g, a, b, dst, scratch, (threads, cols_ready != 0)) }
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
