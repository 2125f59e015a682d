//! Vectorised math in Cranelift IR: the helpers every kernel uses to emit
//! arithmetic on one 128-bit vector (`f32x4` or `f64x2`), and the
//! transcendental functions.
//!
//! For `f32` the functions are branch-free polynomials (Cephes coefficients,
//! algorithms measured in `notes/cranelift.md`); tests/math.rs checks them
//! against f64 on dense grids. For `f64` (gradient checks, where accuracy
//! matters more than speed) every lane calls the host libm.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{FuncRef, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

/// The host functions a kernel may call, one per lane, already imported
/// into the function being built (scalars of the element type).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Libm {
    pub exp: FuncRef,
    pub log: FuncRef,
    pub log1p: FuncRef,
    pub tanh: FuncRef,
    pub sin: FuncRef,
    pub cos: FuncRef,
    pub pow: FuncRef,
}

/// An emitter of vector arithmetic into one function.
pub(crate) struct Vx<'a, 'b> {
    /// The builder, positioned where code goes.
    pub b: &'a mut FunctionBuilder<'b>,
    /// `f32x4` or `f64x2`.
    pub vt: Type,
    /// `f32` or `f64`.
    pub st: Type,
    /// The integer vector type of the same shape.
    pub it: Type,
    /// True when the host has FMA; otherwise multiply then add.
    pub fma: bool,
    /// Imported host functions.
    pub libm: Libm,
}

/// The bits of `1.5 * 2^23`: adding it rounds an f32 to an integer, whose
/// value then sits in the low mantissa bits.
const MAGIC_F32: f32 = 12_582_912.0;

impl Vx<'_, '_> {
    fn is_f32(&self) -> bool {
        self.st == types::F32
    }

    /// Lanes per vector.
    pub fn lanes(&self) -> u8 {
        if self.is_f32() { 4 } else { 2 }
    }

    /// A vector with every lane `v`.
    pub fn splat(&mut self, v: f64) -> Value {
        let s = if self.is_f32() {
            self.b.ins().f32const(v as f32)
        } else {
            self.b.ins().f64const(v)
        };
        self.b.ins().splat(self.vt, s)
    }

    /// `a + b`.
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    /// `a - b`.
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    /// `a * b`.
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    /// `a / b`.
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    /// `a * b + c`, fused when the host has FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `a * k + c` with a constant `k`.
    fn fma_k(&mut self, a: Value, k: f64, c: Value) -> Value {
        let k = self.splat(k);
        self.fma(a, k, c)
    }

    /// Horner's scheme: `c[0]*x^(n-1) + ... + c[n-1]`.
    fn poly(&mut self, x: Value, c: &[f64]) -> Value {
        let mut y = self.splat(c[0]);
        for &ci in &c[1..] {
            let k = self.splat(ci);
            y = self.fma(y, x, k);
        }
        y
    }

    /// A lane mask (all ones where `a cc b`) as a float vector, for `select`.
    pub fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        self.b.ins().bitcast(self.vt, MemFlagsData::new(), m)
    }

    /// `mask ? a : b` per lane.
    pub fn select(&mut self, mask: Value, a: Value, b: Value) -> Value {
        self.b.ins().bitselect(mask, a, b)
    }

    /// 1.0 where `mask`, else 0.0.
    pub fn mask_to_one(&mut self, mask: Value) -> Value {
        let one = self.splat(1.0);
        self.b.ins().band(mask, one)
    }

    /// `a < b ? a : b`; the backend turns this pattern into one `minps`.
    pub fn min(&mut self, a: Value, b: Value) -> Value {
        let m = self.cmp(FloatCC::LessThan, a, b);
        self.select(m, a, b)
    }

    /// `a > b ? a : b`; the backend turns this pattern into one `maxps`.
    pub fn max(&mut self, a: Value, b: Value) -> Value {
        let m = self.cmp(FloatCC::GreaterThan, a, b);
        self.select(m, a, b)
    }

    /// `x` where `x` is NaN, else `r`: keeps NaN flowing through clamped
    /// polynomials so the trainer's NaN guard still sees it.
    fn keep_nan(&mut self, x: Value, r: Value) -> Value {
        let m = self.cmp(FloatCC::Unordered, x, x);
        self.select(m, x, r)
    }

    /// Calls the scalar host function `f` on every lane.
    pub fn per_lane(&mut self, f: FuncRef, args: &[Value]) -> Value {
        let mut out = None;
        for lane in 0..self.lanes() {
            let xs: Vec<Value> = args
                .iter()
                .map(|&a| self.b.ins().extractlane(a, lane))
                .collect();
            let call = self.b.ins().call(f, &xs);
            let r = self.b.inst_results(call)[0];
            out = Some(match out {
                None => self.b.ins().scalar_to_vector(self.vt, r),
                Some(v) => self.b.ins().insertlane(v, r, lane),
            });
        }
        out.expect("a vector has at least one lane")
    }

    /// `exp(x)`.
    pub fn exp(&mut self, x: Value) -> Value {
        if !self.is_f32() {
            return self.per_lane(self.libm.exp, &[x]);
        }
        // Clamp so that k = round(x·log2 e) stays in [-150, 128]: below -104
        // the result rounds to 0, above 88.8 to +inf, both still correctly.
        let lo = self.splat(-104.0);
        let hi = self.splat(88.8);
        let xc = self.max(x, lo);
        let xc = self.min(xc, hi);
        // t = x·log2 e + 1.5·2^23 rounds k into the low mantissa bits of t.
        let magic = self.splat(f64::from(MAGIC_F32));
        let t = self.fma_k(xc, std::f64::consts::LOG2_E, magic);
        let k = self.sub(t, magic);
        // r = x - k·ln2 with ln2 split in two (Cody–Waite) so r is exact.
        let r = self.fma_k(k, -0.693_359_375, xc);
        let r = self.fma_k(k, 2.121_944_4e-4, r);
        // exp(r) = 1 + r + r²·P(r) on |r| ≤ ln2/2 (Cephes expf).
        let p = self.poly(
            r,
            &[
                1.987_569_15e-4,
                1.398_199_950_7e-3,
                8.333_451_907_3e-3,
                4.166_579_589_4e-2,
                1.666_666_545_9e-1,
                5.000_000_120_1e-1,
            ],
        );
        let r2 = self.mul(r, r);
        let one = self.splat(1.0);
        let s = self.add(r, one);
        let p = self.fma(p, r2, s);
        // 2^k as two normal factors 2^(k/2)·2^(k-k/2), so k up to 128 and
        // denormal results (k down to -150) both come out right.
        let flags = MemFlagsData::new();
        let ti = self.b.ins().bitcast(self.it, flags, t);
        let mi = self.b.ins().bitcast(self.it, flags, magic);
        let ki = self.b.ins().isub(ti, mi);
        let k1 = self.b.ins().sshr_imm_u(ki, 1);
        let k2 = self.b.ins().isub(ki, k1);
        let bias = self.b.ins().iconst(types::I32, 127);
        let bias = self.b.ins().splat(self.it, bias);
        let e1 = self.b.ins().iadd(k1, bias);
        let e1 = self.b.ins().ishl_imm_u(e1, 23);
        let e2 = self.b.ins().iadd(k2, bias);
        let e2 = self.b.ins().ishl_imm_u(e2, 23);
        let s1 = self.b.ins().bitcast(self.vt, flags, e1);
        let s2 = self.b.ins().bitcast(self.vt, flags, e2);
        let y = self.mul(p, s1);
        let y = self.mul(y, s2);
        self.keep_nan(x, y)
    }

    /// `log(x)` (natural): NaN below 0, -inf at 0, exact at 1.
    pub fn log(&mut self, x: Value) -> Value {
        if !self.is_f32() {
            return self.per_lane(self.libm.log, &[x]);
        }
        let flags = MemFlagsData::new();
        // Denormals are scaled into the normal range first.
        let min_norm = self.splat(f64::from(f32::MIN_POSITIVE));
        let small = self.cmp(FloatCC::LessThan, x, min_norm);
        let scale = self.splat(8_388_608.0);
        let xs = self.mul(x, scale);
        let xs = self.select(small, xs, x);
        let adj = self.splat(23.0);
        let adj = self.b.ins().band(small, adj);
        // x = m·2^e with m in [0.5, 1).
        let bits = self.b.ins().bitcast(self.it, flags, xs);
        let ebits = self.b.ins().ushr_imm_u(bits, 23);
        let bias = self.b.ins().iconst(types::I32, 126);
        let bias = self.b.ins().splat(self.it, bias);
        let ei = self.b.ins().isub(ebits, bias);
        let e = self.b.ins().fcvt_from_sint(self.vt, ei);
        let e = self.sub(e, adj);
        let mant = self.b.ins().iconst(types::I32, 0x007f_ffff);
        let mant = self.b.ins().splat(self.it, mant);
        let half = self.b.ins().iconst(types::I32, 0x3f00_0000);
        let half = self.b.ins().splat(self.it, half);
        let mbits = self.b.ins().band(bits, mant);
        let mbits = self.b.ins().bor(mbits, half);
        let m = self.b.ins().bitcast(self.vt, flags, mbits);
        // Move m into [sqrt(1/2), sqrt(2)) and take f = m - 1 (exact).
        let sqrthf = self.splat(std::f64::consts::FRAC_1_SQRT_2);
        let lt = self.cmp(FloatCC::LessThan, m, sqrthf);
        let tmp = self.b.ins().band(m, lt);
        let one = self.splat(1.0);
        let f = self.sub(m, one);
        let one_lt = self.b.ins().band(one, lt);
        let e = self.sub(e, one_lt);
        let f = self.add(f, tmp);
        // log(1+f) = f - f²/2 + f³·P(f) (Cephes logf), plus e·ln2 in two parts.
        let z = self.mul(f, f);
        let p = self.poly(
            f,
            &[
                7.037_683_629_2e-2,
                -1.151_461_031_0e-1,
                1.167_699_874_0e-1,
                -1.242_014_084_6e-1,
                1.424_932_278_7e-1,
                -1.666_805_766_5e-1,
                2.000_071_476_5e-1,
                -2.499_999_399_3e-1,
                3.333_333_117_4e-1,
            ],
        );
        let fz = self.mul(f, z);
        let y = self.mul(p, fz);
        let y = self.fma_k(e, -2.121_944_4e-4, y);
        let y = self.fma_k(z, -0.5, y);
        let r = self.add(f, y);
        let r = self.fma_k(e, 0.693_359_375, r);
        // Special values: +inf stays, 0 gives -inf, negatives give NaN.
        let inf = self.splat(f64::INFINITY);
        let is_inf = self.cmp(FloatCC::Equal, x, inf);
        let r = self.select(is_inf, inf, r);
        let zero = self.splat(0.0);
        let ninf = self.splat(f64::NEG_INFINITY);
        let is_zero = self.cmp(FloatCC::Equal, x, zero);
        let r = self.select(is_zero, ninf, r);
        let nan = self.splat(f64::NAN);
        let neg = self.cmp(FloatCC::LessThan, x, zero);
        let r = self.select(neg, nan, r);
        self.keep_nan(x, r)
    }

    /// `tanh(x)`.
    pub fn tanh(&mut self, x: Value) -> Value {
        if !self.is_f32() {
            return self.per_lane(self.libm.tanh, &[x]);
        }
        // Small |x|: x + x·x²·P(x²) (Cephes tanhf), no cancellation.
        let z = self.mul(x, x);
        let p = self.poly(
            z,
            &[
                -5.704_988_727_45e-3,
                2.063_908_879_54e-2,
                -5.373_971_555_31e-2,
                1.333_144_220_36e-1,
                -3.333_328_194_22e-1,
            ],
        );
        let xz = self.mul(x, z);
        let small = self.fma(p, xz, x);
        // Large |x|: 1 - 2/(exp(2|x|) + 1) with the sign of x. The clamp
        // keeps exp finite and must lie where tanh rounds to 1.0f: tanh(9)
        // is 1 - 3.05e-8, which rounds to 0.99999994 (it was the clamp, and
        // then 1 - t² never reached 0: a saturated tanh times a huge
        // derivative gave gradients of 1e16 where f64 gives 0); from 9.02
        // on, 1 - 2e^(-2x) rounds to 1.0f, and tanh(10) computes exactly 1.
        let ax = self.b.ins().fabs(x);
        let ten = self.splat(10.0);
        let c = self.min(ax, ten);
        let c2 = self.add(c, c);
        let e = self.exp(c2);
        let one = self.splat(1.0);
        let two = self.splat(2.0);
        let d = self.add(e, one);
        let q = self.div(two, d);
        let l = self.sub(one, q);
        let sign = self.splat(-0.0);
        let sign = self.b.ins().band(x, sign);
        let large = self.b.ins().bor(l, sign);
        let cut = self.splat(0.625);
        let is_small = self.cmp(FloatCC::LessThan, ax, cut);
        let r = self.select(is_small, small, large);
        self.keep_nan(x, r)
    }

    /// `1/(1 + exp(-x))`.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let nx = self.b.ins().fneg(x);
        let e = self.exp(nx);
        let one = self.splat(1.0);
        let d = self.add(one, e);
        self.div(one, d)
    }

    /// `log(1 + exp(x))` as `max(x, 0) + log1p(exp(-|x|))`, finite for
    /// every finite x.
    pub fn softplus(&mut self, x: Value) -> Value {
        let ax = self.b.ins().fabs(x);
        let nax = self.b.ins().fneg(ax);
        let e = self.exp(nax);
        let l = if self.is_f32() {
            // log1p(e) = log(w) + lo/w where w + lo = 1 + e exactly (Fast2Sum,
            // valid as e ≤ 1): accurate even when 1 + e rounds to 1.
            let one = self.splat(1.0);
            let w = self.add(one, e);
            let wm1 = self.sub(w, one);
            let lo = self.sub(e, wm1);
            let lw = self.log(w);
            let corr = self.div(lo, w);
            self.add(lw, corr)
        } else {
            self.per_lane(self.libm.log1p, &[e])
        };
        let zero = self.splat(0.0);
        let pos = self.max(x, zero);
        let r = self.add(pos, l);
        self.keep_nan(x, r)
    }

    /// `sin(x)`, one libm call per lane.
    pub fn sin(&mut self, x: Value) -> Value {
        self.per_lane(self.libm.sin, &[x])
    }

    /// `cos(x)`, one libm call per lane.
    pub fn cos(&mut self, x: Value) -> Value {
        self.per_lane(self.libm.cos, &[x])
    }

    /// `a ^ b`: multiplications for a small integer constant `b`, else libm.
    pub fn pow(&mut self, a: Value, b: Value, constant_b: Option<f64>) -> Value {
        if let Some(n) = constant_b
            && n.fract() == 0.0
            && n.abs() <= 64.0
        {
            return self.powi(a, n as i32);
        }
        self.per_lane(self.libm.pow, &[a, b])
    }

    /// `a ^ n` by repeated squaring (`a^0` is 1, like `powf`).
    fn powi(&mut self, a: Value, n: i32) -> Value {
        let mut acc: Option<Value> = None;
        let mut base = a;
        let mut k = n.unsigned_abs();
        while k > 0 {
            if k & 1 == 1 {
                acc = Some(match acc {
                    None => base,
                    Some(v) => self.mul(v, base),
                });
            }
            k >>= 1;
            if k > 0 {
                base = self.mul(base, base);
            }
        }
        let r = match acc {
            Some(v) => v,
            None => self.splat(1.0),
        };
        if n < 0 {
            let one = self.splat(1.0);
            self.div(one, r)
        } else {
            r
        }
    }
}
