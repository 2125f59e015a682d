//! Every matrix product of generated code: small f32 products in the
//! unpacked AVX-512 or AVX2 kernels below, everything else in the `gemm` crate.
//!
//! **Large products: the `gemm` crate.** It packs both operands and runs
//! register-blocked micro-kernels picked at run time for the CPU (AVX2+FMA,
//! AVX-512 with the `x86-v4` feature, NEON, or portable code), and splits
//! the output over threads with rayon. It replaced `matrixmultiply` 0.3.11,
//! measured in one run on an AMD EPYC (Zen 3, AVX2, two 256-bit FMA pipes),
//! one pinned core, on the products of the 784-512-512-10 step at batch
//! 256: 89–91 GFLOP/s against 80–86 for the large shapes, 56–66 against
//! 30–41 for the thin ones (n or m = 10), 9.15 against 10.04 ms per step's
//! products; on the digits CNN's im2col products 58–92 against 37–71. The
//! thread split is over blocks of the output, never over k, so a given
//! thread count always gives the same bits.
//!
//! **Small products: unpacked AVX-512 kernels.** A packing GEMM packs both
//! operands into panels on every call; for the products of a 64-32-10
//! network at batch 32 (at most 65,536 multiply-adds) packing takes about as
//! long as the arithmetic. The two layouts a dense layer produces need no
//! packing at all:
//!
//! * `B` with contiguous rows (`dz·W`, `dzᵀ·a`): each 4×32 block of `C`
//!   is eight 16-lane accumulators; per step of k one element of A per row
//!   is broadcast against 32 consecutive elements of B. Column tails use
//!   masked loads and stores.
//! * `B` transposed (the forward `a·Wᵀ`): with fewer than
//!   [`PACK_MIN_ROWS`] rows and `A` row-major, each element of `C` is a dot
//!   product of two contiguous rows; a 2×4 block keeps eight 16-lane
//!   accumulators and reduces them at the end (the k tail uses masked,
//!   zeroing loads), summed by a shuffle tree four at a time. With more
//!   rows, `B` is transposed once (4×4 SSE blocks) into a row-major panel
//!   for the broadcast kernel, which needs no horizontal sums.
//!
//! On a CPU with AVX2 and FMA but no AVX-512F (AMD Zen 1–3), the broadcast
//! kernel runs with 8-lane registers ([`avx2`], 6×16 blocks); the panel
//! copy is used for sums shorter than [`AVX2_PANEL_MAX_K`], and the dot
//! layout goes to the `gemm` crate. Measured on the digits CNN's per-image
//! products (one pinned Zen 3 core, same run): the second convolution's
//! forward 32·144·16 at 86 GFLOP/s against 67 in the `gemm` crate, its
//! input gradient 144·32·16 at 88 against 70, the first convolution's
//! 16·9·64 at 66 against 34; a 64-32-10 epoch 0.83 → 0.68–0.75 ms.
//!
//! Anything else, or a CPU without AVX2, goes to the `gemm` crate (f64
//! products always do). The kernels accumulate over k in order, so
//! results are deterministic.

/// The element types of products: f32 and f64.
pub trait Scalar: Copy + Default + 'static {
    /// The multiplicative identity, the product's coefficient in `gemm`.
    const ONE: Self;
    /// Runs `c = a·b` in a small-product kernel when one fits the host and
    /// layout (see [`sgemm`]); false, having done nothing, otherwise.
    ///
    /// # Safety
    /// As for [`product`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn small(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        sa: (isize, isize),
        b: *const Self,
        sb: (isize, isize),
        c: *mut Self,
        rsc: isize,
    ) -> bool;
}

impl Scalar for f32 {
    const ONE: f32 = 1.0;
    unsafe fn small(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        (rsa, csa): (isize, isize),
        b: *const f32,
        (rsb, csb): (isize, isize),
        c: *mut f32,
        rsc: isize,
    ) -> bool {
        // SAFETY: the caller's contract.
        unsafe { sgemm(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc) }
    }
}

impl Scalar for f64 {
    const ONE: f64 = 1.0;
    unsafe fn small(
        _: usize,
        _: usize,
        _: usize,
        _: *const f64,
        _: (isize, isize),
        _: *const f64,
        _: (isize, isize),
        _: *mut f64,
        _: isize,
    ) -> bool {
        false
    }
}

/// `c[m,n] = a[m,k] · b[k,n]` with element strides (row, column) for each
/// matrix, on up to `threads` threads (products too small to split run on
/// the caller's thread; the `gemm` crate decides by size alone).
///
/// # Safety
/// `a`, `b` and `c` must address `m×k`, `k×n` and `m×n` matrices with the
/// given strides, all in bounds; `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    sa: (isize, isize),
    b: *const T,
    sb: (isize, isize),
    c: *mut T,
    (rsc, csc): (isize, isize),
    threads: usize,
) {
    // SAFETY: the caller's contract.
    if csc == 1 && unsafe { T::small(m, k, n, a, sa, b, sb, c, rsc) } {
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract; `read_dst` is false, so `c` is only
    // written. (`gemm` names the row count m, the column count n, and takes
    // column stride before row stride.)
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            csc,
            rsc,
            false,
            a,
            sa.1,
            sa.0,
            b,
            sb.1,
            sb.0,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Products with at most this many multiply-adds (`m·k·n`) use the kernels
/// here; larger ones go to the `gemm` crate, whose cache blocking pays once
/// the operands leave L1. Measured with `cargo bench --bench jit` against
/// `matrixmultiply` 0.3.11 (which the `gemm` crate has since replaced; it
/// is as fast or faster on every shape measured) on an AVX-512 core (one
/// thread, both in the same run; time here / time there, over three runs
/// on a shared machine):
///
/// | product | layout | MACs | ratio |
/// |---|---|---|---|
/// | 1·64·32 | a·bᵀ (dot) | 2,048 | 0.05–0.08 |
/// | 32·10·32, 10·32·32 | a·b, aᵀ·b | 10,240 | 0.23–0.37 |
/// | 32·32·10 | a·bᵀ (dot) | 10,240 | 0.42–0.51 |
/// | 32·64·32 | a·bᵀ (dot) | 65,536 | 0.67–0.91 |
/// | 32·32·64 | aᵀ·b | 65,536 | 0.81–0.89 |
/// | 64·64·64 | a·b | 262,144 | 0.70–0.78 |
/// | 256·64·32 | a·bᵀ (panel) | 524,288 | 0.66 |
/// | 32·256·64 | aᵀ·b | 524,288 | 0.88–1.04 |
/// | 128·128·128 | aᵀ·b | 2,097,152 | 1.12–1.45 |
/// | 128·128·128 | a·bᵀ (panel) | 2,097,152 | 2.14 |
pub const SMALL_MAX_MACS: usize = 1 << 19;

/// True when `c[m,n] = a·b` is faster here than in a packing GEMM (by
/// the measured crossover above).
pub fn preferred(m: usize, k: usize, n: usize) -> bool {
    m.saturating_mul(k).saturating_mul(n) <= SMALL_MAX_MACS
}

/// True when an AVX2 host runs `c = a·b` (b with contiguous rows) in the
/// broadcast kernel whatever its size: a long sum (k ≥ 256) over a B of at
/// most 256 KiB, which stays in L2 while each block of six rows of A
/// streams past it. A convolution's kernel gradient has this shape when
/// computed as `dWᵀ = col · δᵀ`: on one pinned Zen 3 core the digits CNN's
/// 144·512·32 ran at 94 GFLOP/s here against 62 for `δ · colᵀ` in the
/// `gemm` crate, and 9·2048·16 at 100 against 44.
pub fn avx2_long_sum(k: usize, n: usize) -> bool {
    k >= 256 && k.saturating_mul(n) <= 1 << 16
}

/// On AVX2 hosts a transposed B is copied into a panel only for sums
/// shorter than this. The kernel gradient of the digits CNN's first
/// convolution (16·2048·9, `δ·colᵀ` over the whole batch) took 21 µs that
/// way and 13.8 µs in the `gemm` crate (one pinned Zen 3 core), while the
/// dense products of the 64-32-10 network (k of 64 and 32) gained: an
/// epoch went from 0.83 to 0.75 ms.
pub const AVX2_PANEL_MAX_K: usize = 1024;

/// From this many rows of A on, a transposed B is copied into a panel for
/// the broadcast kernel; below, the dot-product kernel reads it in place.
/// With the copy done by 4×4 SSE transposes the dot kernel's horizontal
/// sums lose already at batch 32: the 64-32-10 training step (W1 of the
/// peer comparison) went from 0.230 to 0.196 ms per 57-step epoch
/// (median of 100 epochs each). An element-by-element copy of a 32×64
/// weight had cost about 1.3 µs, which set this at 64 before. A single
/// row (prediction) keeps the dot kernel: 1·64·32 runs at 0.05–0.08 of
/// matrixmultiply's time.
pub const PACK_MIN_ROWS: usize = 8;

thread_local! {
    /// Scratch panel for a transposed B, reused across calls (grows only).
    static PANEL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The environment variable that, when set (to anything), makes slope use
/// its portable kernels (4-lane Cranelift code and the `gemm` crate) even on
/// a CPU with AVX-512, as on one without. The tests use it so that both
/// paths are checked on whatever machine runs them.
pub const PORTABLE_KERNELS_VAR: &str = "SLOPE_PORTABLE_KERNELS";

/// True when the host has AVX-512F and [`PORTABLE_KERNELS_VAR`] is unset.
/// Read once per process, so every kernel of a run makes the same choice.
pub fn has_avx512() -> bool {
    static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        if std::env::var_os(PORTABLE_KERNELS_VAR).is_some() {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The vector instructions the small-product kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// 16-lane kernels (`avx512f`).
    Avx512,
    /// 8-lane kernels (`avx2` and `fma`), for CPUs without AVX-512 such as
    /// AMD Zen 1–3.
    Avx2,
}

/// Which small-product kernels the host runs: `None` without AVX2+FMA or
/// when [`PORTABLE_KERNELS_VAR`] is set (then every product goes to the
/// `gemm` crate). Read once per process.
pub fn small_kernels() -> Option<Simd> {
    static CHOICE: std::sync::OnceLock<Option<Simd>> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        if has_avx512() {
            return Some(Simd::Avx512);
        }
        if std::env::var_os(PORTABLE_KERNELS_VAR).is_some() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Some(Simd::Avx2);
        }
        None
    })
}

/// `c[m,n] = a[m,k] · b[k,n]` (strides in elements; `c` has contiguous
/// columns and row stride `rsc`). Returns false, having done nothing, when
/// no kernel here fits the layout or the host; [`product`] then uses the
/// `gemm` crate.
///
/// # Safety
/// `a`, `b` and `c` must address `m×k`, `k×n` and `m×n` matrices with the
/// given strides, all in bounds; `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = small_kernels().filter(|_| m > 0 && n > 0 && k > 0) {
        // SAFETY (both): the caller's contract; `simd` says the CPU has
        // the instructions, and `ldb` is the row stride of a row-major b.
        let broadcast = |b: *const f32, ldb: isize| match simd {
            Simd::Avx512 => unsafe { avx512::broadcast(m, k, n, a, rsa, csa, b, ldb, c, rsc) },
            Simd::Avx2 => unsafe { avx2::broadcast(m, k, n, a, rsa, csa, b, ldb, c, rsc) },
        };
        let long = simd == Simd::Avx2 && csb == 1 && avx2_long_sum(k, n);
        if !preferred(m, k, n) && !long {
            return false;
        }
        if csb == 1 {
            broadcast(b, rsb);
            return true;
        }
        let short = simd == Simd::Avx512 || k < AVX2_PANEL_MAX_K;
        if rsb == 1 && m >= PACK_MIN_ROWS && short {
            // Copy bᵀ's rows into the columns of a row-major panel, then use
            // the broadcast kernel: k·n copies buy a kernel without
            // horizontal sums.
            PANEL.with(|panel| {
                let mut panel = panel.borrow_mut();
                if panel.len() < k * n {
                    panel.resize(k * n, 0.0);
                }
                // SAFETY: b's columns (bᵀ's rows) are k long, n of them,
                // `csb` apart; the panel holds k·n elements.
                unsafe { transpose_into(b, csb, n, k, panel.as_mut_ptr()) };
                broadcast(panel.as_ptr(), n as isize);
            });
            return true;
        }
        if rsb == 1 && csa == 1 && simd == Simd::Avx512 {
            // SAFETY: as above; b's columns are a's rows' partners.
            unsafe { avx512::dot(m, k, n, a, rsa, b, csb, c, rsc) };
            return true;
        }
    }
    let _ = (m, k, n, a, rsa, csa, b, rsb, csb, c, rsc);
    false
}

/// `dst[p·rows + j] = src[j·ld + p]` for `j < rows`, `p < cols`: the
/// transpose of a `rows × cols` matrix with row stride `ld` into a
/// row-major `cols × rows` one, by 4×4 SSE blocks on x86-64. The digits
/// CNN's kernel gradients transpose δ and dWᵀ every step: with a strided
/// scalar loop a step took 360 µs, with this 330 (one pinned Zen 3 core).
///
/// # Panics
/// When the slices are shorter than those sizes (a bug in the caller).
pub fn transpose(src: &[f32], ld: usize, rows: usize, cols: usize, dst: &mut [f32]) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= (rows - 1) * ld + cols && dst.len() >= rows * cols && cols <= ld);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the assertion above bounds every index of `transpose_into`.
    unsafe {
        transpose_into(src.as_ptr(), ld as isize, rows, cols, dst.as_mut_ptr())
    };
    #[cfg(not(target_arch = "x86_64"))]
    for j in 0..rows {
        for p in 0..cols {
            dst[p * rows + j] = src[j * ld + p];
        }
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `panel[p·n + j] = bt[j·ldbt + p]` for `j < n`, `p < k`: 4×4 blocks
/// transposed in SSE registers (eight shuffles per 16 elements, where an
/// element-by-element copy of a 32×64 weight took about 1.3 µs), edges
/// element by element. SSE only, which every x86-64 CPU has.
#[cfg(target_arch = "x86_64")]
unsafe fn transpose_into(bt: *const f32, ldbt: isize, n: usize, k: usize, panel: *mut f32) {
    let (n4, k4) = (n / 4 * 4, k / 4 * 4);
    // SAFETY: every index below is < n in j and < k in p.
    unsafe {
        let row = |j: usize| bt.offset(j as isize * ldbt);
        for j in (0..n4).step_by(4) {
            for p in (0..k4).step_by(4) {
                let r0 = _mm_loadu_ps(row(j).add(p));
                let r1 = _mm_loadu_ps(row(j + 1).add(p));
                let r2 = _mm_loadu_ps(row(j + 2).add(p));
                let r3 = _mm_loadu_ps(row(j + 3).add(p));
                let t0 = _mm_unpacklo_ps(r0, r1);
                let t1 = _mm_unpacklo_ps(r2, r3);
                let t2 = _mm_unpackhi_ps(r0, r1);
                let t3 = _mm_unpackhi_ps(r2, r3);
                let dst = panel.add(p * n + j);
                _mm_storeu_ps(dst, _mm_movelh_ps(t0, t1));
                _mm_storeu_ps(dst.add(n), _mm_movehl_ps(t1, t0));
                _mm_storeu_ps(dst.add(2 * n), _mm_movelh_ps(t2, t3));
                _mm_storeu_ps(dst.add(3 * n), _mm_movehl_ps(t3, t2));
            }
            for p in k4..k {
                for q in 0..4 {
                    *panel.add(p * n + j + q) = *row(j + q).add(p);
                }
            }
        }
        for j in n4..n {
            for p in 0..k {
                *panel.add(p * n + j) = *row(j).add(p);
            }
        }
    }
}

/// The blocks of at most `most` rows that the broadcast kernels split `m`
/// rows into, as `(first row, rows)`, as even as possible: 32 rows in
/// sixes are 6+6+5+5+5+5, not 6·5+2, whose last block would reuse each
/// load of B only twice.
#[cfg(target_arch = "x86_64")]
fn row_blocks(m: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
    let blocks = m.div_ceil(most.max(1));
    (0..blocks).scan(0, move |start, i| {
        let rows = (m - *start).div_ceil(blocks - i);
        let block = (*start, rows);
        *start += rows;
        Some(block)
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
