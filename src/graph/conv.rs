//! The op table, continued for window ops: convolution and pooling over
//! images `[B, C, H, W]`, their derivatives (which are window ops again),
//! and the f64 reference loops the interpreter runs. [`Op::Window`] holds a
//! [`WindowOp`] and its [`Window`]; every fact below is an exhaustive
//! `match` on [`WindowOp`], so a new window op does not compile until each
//! is written.
//!
//! The derivative rules close over the set: the adjoint of a convolution
//! with respect to its input is a transposed convolution
//! ([`WindowOp::ConvBackInput`]), with respect to its kernel a correlation
//! of the input with δ ([`WindowOp::ConvBackKernel`]); each of those is
//! linear in both operands, and its adjoints are the other two ops. Max
//! pooling picks the values of its second operand at the arg-max of each
//! window of its first (`maxpool(x, x)` is the usual max pooling), so its
//! adjoint routes δ back to the arg-max and the adjoint of that picks again.

use super::op::{Adjoints, Rule};
use super::{Dim, Graph, NodeId, Op, Shape, ShapeError};

/// The window ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowOp {
    /// `x [B,C,H,W] ⋆ w [N,C,K,K] → [B,N,H',W']`: cross-correlation (PyTorch's `Conv2d`).
    Conv,
    /// `δ [B,N,H',W'], w [N,C,K,K] → [B,C,H,W]`: the transposed convolution,
    /// ∂(x ⋆ w)/∂x applied to δ.
    ConvBackInput,
    /// `x [B,C,H,W], δ [B,N,H',W'] → [N,C,K,K]`: the correlation of the input
    /// with δ, ∂(x ⋆ w)/∂w applied to δ.
    ConvBackKernel,
    /// `s, v [B,C,H,W] → [B,C,H',W']`: `v` at the arg-max of each window of
    /// `s` (the first in row-major window order on ties).
    MaxPool,
    /// `s [B,C,H,W], δ [B,C,H',W'] → [B,C,H,W]`: δ routed to the arg-max of
    /// each window of `s`.
    MaxPoolBack,
    /// `x [B,C,H,W] → [B,C,H',W']`: the mean of each window.
    AvgPool,
    /// `δ [B,C,H',W'] → [B,C,H,W]`: δ spread evenly over each window.
    AvgPoolBack,
}

/// Where a square window goes over an image: sizes fixed at lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Input height and width.
    pub input: [u32; 2],
    /// The window's side K.
    pub kernel: u32,
    /// The stride along both axes (≥ 1).
    pub stride: u32,
    /// Zeros before the input: top, left.
    pub pad_before: [u32; 2],
    /// Zeros after the input: bottom, right.
    pub pad_after: [u32; 2],
}

impl Window {
    /// Output height and width: `(H + pads − K)/S + 1` (0 when none fits).
    pub fn output(&self) -> [usize; 2] {
        let axis = |i: usize| {
            let n = (self.input[i] + self.pad_before[i] + self.pad_after[i]) as usize;
            let k = self.kernel as usize;
            if n < k || self.stride == 0 {
                0
            } else {
                (n - k) / self.stride as usize + 1
            }
        };
        [axis(0), axis(1)]
    }
}

impl WindowOp {
    /// The op's name as printed in graphs and DOT output.
    pub fn name(self) -> &'static str {
        match self {
            WindowOp::Conv => "conv",
            WindowOp::ConvBackInput => "conv_back_input",
            WindowOp::ConvBackKernel => "conv_back_kernel",
            WindowOp::MaxPool => "maxpool",
            WindowOp::MaxPoolBack => "maxpool_back",
            WindowOp::AvgPool => "avgpool",
            WindowOp::AvgPoolBack => "avgpool_back",
        }
    }

    /// How many operands it takes.
    pub fn arity(self) -> usize {
        match self {
            WindowOp::Conv
            | WindowOp::ConvBackInput
            | WindowOp::ConvBackKernel
            | WindowOp::MaxPool
            | WindowOp::MaxPoolBack => 2,
            WindowOp::AvgPool | WindowOp::AvgPoolBack => 1,
        }
    }
}

/// `[B, C, H, W]` as its four dimensions, or the error.
fn image(s: &Shape, what: &str) -> Result<[Dim; 4], ShapeError> {
    match &s.0[..] {
        &[b, c, h, w] => Ok([b, c, h, w]),
        _ => Err(ShapeError(format!("{what} must be [B, C, H, W], got {s}"))),
    }
}

fn fixed(n: usize) -> Dim {
    Dim::Fixed(n)
}

/// The result shape of a window op (arity is checked by the caller).
pub(super) fn shape(op: WindowOp, w: Window, args: &[&Shape]) -> Result<Shape, ShapeError> {
    let [oh, ow] = w.output();
    if oh == 0 || ow == 0 {
        return Err(ShapeError(format!(
            "{}: a {}x{} window does not fit a {}x{} input",
            op.name(),
            w.kernel,
            w.kernel,
            w.input[0],
            w.input[1]
        )));
    }
    let (ih, iw, k) = (w.input[0] as usize, w.input[1] as usize, w.kernel as usize);
    let spatial = |s: [Dim; 4], h: usize, wd: usize, what: &str| {
        if s[2] == fixed(h) && s[3] == fixed(wd) {
            Ok(())
        } else {
            Err(ShapeError(format!(
                "{}: {what} must be {h}x{wd} images, got {}",
                op.name(),
                Shape(s.to_vec())
            )))
        }
    };
    let kernel_of = |s: &Shape| match &s.0[..] {
        &[n, c, a, b] if a == fixed(k) && b == fixed(k) => Ok((n, c)),
        _ => Err(ShapeError(format!(
            "{}: the kernel must be [N, C, {k}, {k}], got {s}",
            op.name()
        ))),
    };
    let mismatch = |a: &Shape, b: &Shape| {
        ShapeError(format!("{}: operands {a} and {b} do not agree", op.name()))
    };
    match op {
        WindowOp::Conv => {
            let x = image(args[0], "the input")?;
            spatial(x, ih, iw, "the input")?;
            let (n, c) = kernel_of(args[1])?;
            if c != x[1] {
                return Err(mismatch(args[0], args[1]));
            }
            Ok(Shape(vec![x[0], n, fixed(oh), fixed(ow)]))
        }
        WindowOp::ConvBackInput => {
            let d = image(args[0], "δ")?;
            spatial(d, oh, ow, "δ")?;
            let (n, c) = kernel_of(args[1])?;
            if n != d[1] {
                return Err(mismatch(args[0], args[1]));
            }
            Ok(Shape(vec![d[0], c, fixed(ih), fixed(iw)]))
        }
        WindowOp::ConvBackKernel => {
            let (x, d) = (image(args[0], "the input")?, image(args[1], "δ")?);
            spatial(x, ih, iw, "the input")?;
            spatial(d, oh, ow, "δ")?;
            if x[0] != d[0] {
                return Err(mismatch(args[0], args[1]));
            }
            Ok(Shape(vec![d[1], x[1], fixed(k), fixed(k)]))
        }
        WindowOp::MaxPool | WindowOp::AvgPool => {
            let x = image(args[0], "the input")?;
            spatial(x, ih, iw, "the input")?;
            if args.len() == 2 && args[1] != args[0] {
                return Err(mismatch(args[0], args[1]));
            }
            Ok(Shape(vec![x[0], x[1], fixed(oh), fixed(ow)]))
        }
        WindowOp::MaxPoolBack => {
            let (x, d) = (image(args[0], "the input")?, image(args[1], "δ")?);
            spatial(x, ih, iw, "the input")?;
            spatial(d, oh, ow, "δ")?;
            if x[..2] != d[..2] {
                return Err(mismatch(args[0], args[1]));
            }
            Ok(args[0].clone())
        }
        WindowOp::AvgPoolBack => {
            let d = image(args[0], "δ")?;
            spatial(d, oh, ow, "δ")?;
            Ok(Shape(vec![d[0], d[1], fixed(ih), fixed(iw)]))
        }
    }
}

/// The derivative rules of the window ops (see the module docs).
pub(super) fn derivative(d: &mut Adjoints, op: WindowOp, w: Window, args: &[NodeId], up: NodeId) {
    let win = |o: WindowOp| Op::Window(o, w);
    match op {
        WindowOp::Conv => {
            let (x, k) = (args[0], args[1]);
            d.slot(0, Rule::Convolution, |g| {
                g.make(win(WindowOp::ConvBackInput), &[up, k])
            });
            d.slot(1, Rule::Convolution, |g| {
                g.make(win(WindowOp::ConvBackKernel), &[x, up])
            });
        }
        WindowOp::ConvBackInput => {
            let (delta, k) = (args[0], args[1]);
            d.slot(0, Rule::Convolution, |g| {
                g.make(win(WindowOp::Conv), &[up, k])
            });
            d.slot(1, Rule::Convolution, |g| {
                g.make(win(WindowOp::ConvBackKernel), &[up, delta])
            });
        }
        WindowOp::ConvBackKernel => {
            let (x, delta) = (args[0], args[1]);
            d.slot(0, Rule::Convolution, |g| {
                g.make(win(WindowOp::ConvBackInput), &[delta, up])
            });
            d.slot(1, Rule::Convolution, |g| {
                g.make(win(WindowOp::Conv), &[x, up])
            });
        }
        WindowOp::MaxPool | WindowOp::MaxPoolBack => {
            let (s, adjoint) = if op == WindowOp::MaxPool {
                (args[0], WindowOp::MaxPoolBack)
            } else {
                (args[0], WindowOp::MaxPool)
            };
            // The arg-max is piecewise constant in the selector.
            d.slot(0, Rule::Constant, |g| {
                let from = g.node(s).shape.clone();
                g.constant_like(0.0, &from)
            });
            d.slot(1, Rule::MaxPool, |g| g.make(win(adjoint), &[s, up]));
        }
        WindowOp::AvgPool => d.slot(0, Rule::AvgPool, |g| {
            g.make(win(WindowOp::AvgPoolBack), &[up])
        }),
        WindowOp::AvgPoolBack => {
            d.slot(0, Rule::AvgPool, |g| g.make(win(WindowOp::AvgPool), &[up]))
        }
    }
}

/// The graph-building helpers for window ops.
impl Graph {
    /// `maxpool(x)`: the largest element of each window of `x`.
    pub fn maxpool(&mut self, x: NodeId, w: Window) -> NodeId {
        self.make(Op::Window(WindowOp::MaxPool, w), &[x, x])
    }
}

/// An operand of the reference loops: its values and `[B, C, H, W]` sizes.
pub struct Tensor4<'a> {
    /// The values, row-major.
    pub data: &'a [f64],
    /// Batch, channels, height, width.
    pub dims: [usize; 4],
}

impl Tensor4<'_> {
    fn at(&self, b: usize, c: usize, y: usize, x: usize) -> usize {
        ((b * self.dims[1] + c) * self.dims[2] + y) * self.dims[3] + x
    }
}

/// Each input position a window visits: calls `f(oy, ox, ky, kx, iy, ix)`
/// for every output position and kernel offset that lands inside the input
/// (padding contributes nothing).
fn visit(w: Window, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
    let [oh, ow] = w.output();
    let (k, s) = (w.kernel as usize, w.stride as usize);
    let (ih, iw) = (w.input[0] as usize, w.input[1] as usize);
    let (pt, pl) = (w.pad_before[0] as usize, w.pad_before[1] as usize);
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..k {
                for kx in 0..k {
                    let (iy, ix) = (oy * s + ky, ox * s + kx);
                    if iy >= pt && ix >= pl && iy - pt < ih && ix - pl < iw {
                        f(oy, ox, ky, kx, iy - pt, ix - pl);
                    }
                }
            }
        }
    }
}

/// The f64 reference value of a window op: plain loops, the interpreter's
/// (and so the tests') oracle, never the engine. `out` has the result's
/// sizes.
pub fn eval(op: WindowOp, w: Window, args: &[Tensor4], out: [usize; 4]) -> Vec<f64> {
    let mut r = vec![0.0; out.iter().product()];
    let o = Tensor4 {
        data: &[],
        dims: out,
    };
    let a = &args[0];
    let kk = (w.kernel * w.kernel) as f64;
    match op {
        WindowOp::Conv | WindowOp::ConvBackInput | WindowOp::ConvBackKernel => {
            // x [B,C,H,W], k [N,C,K,K], y [B,N,H',W'] in the three roles.
            let (x, k, y) = match op {
                WindowOp::Conv => (&args[0].dims, &args[1], &out),
                WindowOp::ConvBackInput => (&out, &args[1], &args[0].dims),
                _ => (&args[0].dims, &o, &args[1].dims),
            };
            let (xd, kd, yd) = (
                Tensor4 {
                    data: &[],
                    dims: *x,
                },
                k.dims,
                Tensor4 {
                    data: &[],
                    dims: *y,
                },
            );
            let kt = Tensor4 {
                data: &[],
                dims: kd,
            };
            for b in 0..x[0] {
                for n in 0..kd[0] {
                    for c in 0..kd[1] {
                        visit(w, |oy, ox, ky, kx, iy, ix| {
                            let (xi, ki, yi) = (
                                xd.at(b, c, iy, ix),
                                kt.at(n, c, ky, kx),
                                yd.at(b, n, oy, ox),
                            );
                            match op {
                                WindowOp::Conv => r[yi] += a.data[xi] * args[1].data[ki],
                                WindowOp::ConvBackInput => r[xi] += a.data[yi] * args[1].data[ki],
                                _ => r[ki] += a.data[xi] * args[1].data[yi],
                            }
                        });
                    }
                }
            }
        }
        WindowOp::MaxPool | WindowOp::MaxPoolBack => {
            let y = if op == WindowOp::MaxPool {
                out
            } else {
                args[1].dims
            };
            let yd = Tensor4 { data: &[], dims: y };
            let mut best: Vec<Option<(f64, usize)>> = vec![None; y.iter().product()];
            for b in 0..y[0] {
                for c in 0..y[1] {
                    visit(w, |oy, ox, _, _, iy, ix| {
                        let (xi, yi) = (a.at(b, c, iy, ix), yd.at(b, c, oy, ox));
                        match best[yi] {
                            Some((v, _)) if a.data[xi] <= v => {}
                            _ => best[yi] = Some((a.data[xi], xi)),
                        }
                    });
                }
            }
            for (yi, bst) in best.iter().enumerate() {
                if let Some((_, xi)) = bst {
                    match op {
                        WindowOp::MaxPool => r[yi] = args[1].data[*xi],
                        _ => r[*xi] += args[1].data[yi],
                    }
                }
            }
        }
        WindowOp::AvgPool | WindowOp::AvgPoolBack => {
            let (x, y) = if op == WindowOp::AvgPool {
                (a.dims, out)
            } else {
                (out, a.dims)
            };
            let (xd, yd) = (
                Tensor4 { data: &[], dims: x },
                Tensor4 { data: &[], dims: y },
            );
            for b in 0..y[0] {
                for c in 0..y[1] {
                    visit(w, |oy, ox, _, _, iy, ix| {
                        let (xi, yi) = (xd.at(b, c, iy, ix), yd.at(b, c, oy, ox));
                        match op {
                            WindowOp::AvgPool => r[yi] += a.data[xi] / kk,
                            _ => r[xi] += a.data[yi] / kk,
                        }
                    });
                }
            }
        }
    }
    r
}

/// `Flatten`: `[B, C, H, W]` to `[B, C·H·W]`.
pub(super) fn flatten_shape(x: &Shape) -> Result<Shape, ShapeError> {
    let [b, c, h, w] = image(x, "flatten's operand")?;
    match (c, h, w) {
        (Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)) => Ok(Shape(vec![b, fixed(c * h * w)])),
        _ => Err(ShapeError(format!(
            "flatten of {x}: only the first axis may be the batch"
        ))),
    }
}

/// `Unflatten([C, H, W])`: `[B, C·H·W]` to `[B, C, H, W]`.
pub(super) fn unflatten_shape(chw: [u32; 3], x: &Shape) -> Result<Shape, ShapeError> {
    let [c, h, w] = chw.map(|d| d as usize);
    match &x.0[..] {
        &[b, f] if f == fixed(c * h * w) => Ok(Shape(vec![b, fixed(c), fixed(h), fixed(w)])),
        _ => Err(ShapeError(format!(
            "unflatten of {x} to [B, {c}, {h}, {w}]: sizes differ"
        ))),
    }
}
