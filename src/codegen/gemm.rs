//! Every matrix product of generated code: small f32 products in the
//! unpacked AVX-512 kernels below, everything else in the `gemm` crate.
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
//! Anything else, or a CPU without AVX-512F, goes to the `gemm` crate (f64
//! products always do). Both kernels accumulate over k in order, so
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
        preferred(m, k, n) && unsafe { sgemm(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc) }
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
    if m > 0 && n > 0 && k > 0 && has_avx512() {
        if csb == 1 {
            // SAFETY: the caller's contract; AVX-512F is present.
            unsafe { avx512::broadcast(m, k, n, a, rsa, csa, b, rsb, c, rsc) };
            return true;
        }
        if rsb == 1 && m >= PACK_MIN_ROWS {
            // Copy bᵀ's rows into the columns of a row-major panel, then use
            // the broadcast kernel: k·n copies buy a kernel without
            // horizontal sums.
            PANEL.with(|panel| {
                let mut panel = panel.borrow_mut();
                if panel.len() < k * n {
                    panel.resize(k * n, 0.0);
                }
                // SAFETY: b's columns (bᵀ's rows) are k long, n of them,
                // `csb` apart; the panel holds k·n elements; AVX-512F (so
                // SSE) is present.
                unsafe { avx512::transpose_into(b, csb, n, k, panel.as_mut_ptr()) };
                // SAFETY: the panel is k×n row-major; the rest is the
                // caller's contract; AVX-512F is present.
                unsafe {
                    avx512::broadcast(m, k, n, a, rsa, csa, panel.as_ptr(), n as isize, c, rsc)
                };
            });
            return true;
        }
        if rsb == 1 && csa == 1 {
            // SAFETY: as above; b's columns are a's rows' partners.
            unsafe { avx512::dot(m, k, n, a, rsa, b, csb, c, rsc) };
            return true;
        }
    }
    let _ = (m, k, n, a, rsa, csa, b, rsb, csb, c, rsc);
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// A mask of the low `w` (≤ 16) lanes.
    fn lanes(w: usize) -> __mmask16 {
        if w >= 16 { 0xffff } else { (1u16 << w) - 1 }
    }

    /// `c = a·b` for b with contiguous rows (row stride `ldb`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn broadcast(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        ldb: isize,
        c: *mut f32,
        rsc: isize,
    ) {
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let ai = a.wrapping_offset(i as isize * rsa);
            let ci = c.wrapping_offset(i as isize * rsc);
            // SAFETY: rows i..i+rows of a and c exist (caller's contract).
            unsafe {
                match rows {
                    4 => bblock::<4>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                    3 => bblock::<3>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                    2 => bblock::<2>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                    _ => bblock::<1>(k, n, ai, rsa, csa, b, ldb, ci, rsc),
                }
            }
            i += rows;
        }
    }

    /// Rows `0..MR` of `c`, all columns, in blocks of 32.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn bblock<const MR: usize>(
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        ldb: isize,
        c: *mut f32,
        rsc: isize,
    ) {
        let mut j = 0;
        while j < n {
            let (m0, m1) = (lanes(n - j), lanes((n - j).saturating_sub(16)));
            let mut lo = [_mm512_setzero_ps(); MR];
            let mut hi = [_mm512_setzero_ps(); MR];
            // SAFETY: the masks keep every load and store inside columns
            // j..n of rows that exist; a's rows 0..MR, columns 0..k exist.
            unsafe {
                for p in 0..k {
                    let row = b.offset(p as isize * ldb).add(j);
                    let b0 = _mm512_maskz_loadu_ps(m0, row);
                    let b1 = _mm512_maskz_loadu_ps(m1, row.add(16));
                    let ap = a.offset(p as isize * csa);
                    for r in 0..MR {
                        let x = _mm512_set1_ps(*ap.offset(r as isize * rsa));
                        lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
                        hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
                    }
                }
                for r in 0..MR {
                    let cr = c.offset(r as isize * rsc).add(j);
                    _mm512_mask_storeu_ps(cr, m0, lo[r]);
                    _mm512_mask_storeu_ps(cr.add(16), m1, hi[r]);
                }
            }
            j += 32;
        }
    }

    /// `panel[p·n + j] = bt[j·ldbt + p]` for `j < n`, `p < k`: 4×4 blocks
    /// transposed in SSE registers (eight shuffles per 16 elements, where an
    /// element-by-element copy of a 32×64 weight took about 1.3 µs), edges
    /// element by element.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_into(
        bt: *const f32,
        ldbt: isize,
        n: usize,
        k: usize,
        panel: *mut f32,
    ) {
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

    /// The lane sums of four vectors, as one 4-lane vector, by a shuffle
    /// tree: 14 instructions where four `_mm512_reduce_add_ps` take about
    /// 32 (at 32×64×32 the reductions outnumbered the FMAs). Fixed order,
    /// so deterministic.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn hsum4(v: &[__m512; 4]) -> __m128 {
        // 128-bit chunks: [a0+a2, a1+a3, b0+b2, b1+b3] and the same for c, d.
        let ab = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(v[0], v[1]),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(v[0], v[1]),
        );
        let cd = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(v[2], v[3]),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(v[2], v[3]),
        );
        // Chunk q now holds four partial sums of vector q.
        let t = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd),
        );
        let u = _mm512_add_ps(t, _mm512_permute_ps::<0b10_11_00_01>(t));
        let w = _mm512_add_ps(u, _mm512_permute_ps::<0b01_00_11_10>(u));
        let idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, w))
    }

    /// `c[i,j] = Σ_p a[i,p]·bt[j,p]` with a's and bt's rows contiguous
    /// (row strides `rsa` and `ldbt`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn dot(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        bt: *const f32,
        ldbt: isize,
        c: *mut f32,
        rsc: isize,
    ) {
        let tail = lanes(k % 16);
        let whole = k / 16 * 16;
        let mut i = 0;
        while i < m {
            // A second row past the end repeats the last one; its results
            // are not stored.
            let i1 = (i + 1).min(m - 1);
            let a0 = a.wrapping_offset(i as isize * rsa);
            let a1 = a.wrapping_offset(i1 as isize * rsa);
            let mut j = 0;
            while j < n {
                let bj = |q: usize| bt.wrapping_offset((j + q).min(n - 1) as isize * ldbt);
                let bs = [bj(0), bj(1), bj(2), bj(3)];
                let mut acc = [[_mm512_setzero_ps(); 4]; 2];
                // SAFETY: rows i, i1 of a and j.., clamped, of bt exist;
                // loads stay in columns 0..k (the tail is masked).
                unsafe {
                    let mut p = 0;
                    while p < whole {
                        let x0 = _mm512_loadu_ps(a0.add(p));
                        let x1 = _mm512_loadu_ps(a1.add(p));
                        for q in 0..4 {
                            let y = _mm512_loadu_ps(bs[q].add(p));
                            acc[0][q] = _mm512_fmadd_ps(x0, y, acc[0][q]);
                            acc[1][q] = _mm512_fmadd_ps(x1, y, acc[1][q]);
                        }
                        p += 16;
                    }
                    if whole < k {
                        let x0 = _mm512_maskz_loadu_ps(tail, a0.add(p));
                        let x1 = _mm512_maskz_loadu_ps(tail, a1.add(p));
                        for q in 0..4 {
                            let y = _mm512_maskz_loadu_ps(tail, bs[q].add(p));
                            acc[0][q] = _mm512_fmadd_ps(x0, y, acc[0][q]);
                            acc[1][q] = _mm512_fmadd_ps(x1, y, acc[1][q]);
                        }
                    }
                    for (r, row) in acc.iter().enumerate() {
                        if i + r >= m {
                            break;
                        }
                        let cr = c.offset((i + r) as isize * rsc).add(j);
                        let sums = hsum4(row);
                        if j + 4 <= n {
                            _mm_storeu_ps(cr, sums);
                        } else {
                            let mut lanes = [0.0f32; 4];
                            _mm_storeu_ps(lanes.as_mut_ptr(), sums);
                            for (q, &v) in lanes.iter().enumerate().take(n - j) {
                                *cr.add(q) = v;
                            }
                        }
                    }
                }
                j += 4;
            }
            i += 2;
        }
    }
}
