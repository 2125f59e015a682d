//! The op table: every fact about every op (name, arity, shape rule, f64
//! reference evaluation, derivative rule) as exhaustive `match`es, one place.
//!
//! Adding an op means adding a variant here; the compiler then points at
//! every fact (and every codegen arm) that must be written for it. What the
//! simplifier may assume of an op's value (sign, boundedness, NaN flow) is
//! the table's continuation in `facts.rs`, exhaustive in the same way.
//! [`Op::eval_scalar`] is the one f64 evaluation of an element: the
//! interpreter maps it over tensors and constant folding calls it.

/// A scalar constant stored by its bits, so ops can be hashed and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Const(pub u64);

impl Const {
    /// The constant `v`. `-0.0` is stored as `0.0` so both hash-cons together.
    pub fn new(v: f64) -> Const {
        Const(if v == 0.0 {
            0.0f64.to_bits()
        } else {
            v.to_bits()
        })
    }

    /// Its value.
    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Index of a leaf (input, target, parameter or scalar variable) in [`super::Graph::leaves`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafId(pub u32);

/// A set of axes (bit `i` = axis `i`) for broadcasts and reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Axes(pub u8);

/// The operations of the graph IR.
///
/// Element-wise ops take operands of identical shape (broadcasting is the
/// explicit [`Op::Broadcast`]). `Add` and `Mul` take two or more operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    // ---- leaves ----
    /// A scalar constant, shape `[]`.
    Const(Const),
    /// A named leaf: data input, target, parameter or scalar variable.
    Leaf(LeafId),
    /// The number of rows in the batch, as a scalar `[]`.
    BatchSize,

    // ---- element-wise, one operand ----
    /// `-a`
    Neg,
    /// `1/a`
    Recip,
    /// `exp(a)`
    Exp,
    /// `log(a)` (natural)
    Log,
    /// `sqrt(a)`
    Sqrt,
    /// `abs(a)`
    Abs,
    /// `sin(a)`
    Sin,
    /// `cos(a)`
    Cos,
    /// `tanh(a)`
    Tanh,
    /// `1/(1 + exp(-a))`
    Sigmoid,
    /// `max(a, 0)`
    Relu,
    /// `log(1 + exp(a))`, computed stably
    Softplus,

    // ---- element-wise, two or more operands ----
    /// `a + b + ...`
    Add,
    /// `a * b * ...`
    Mul,
    /// `a ^ b`
    Pow,
    /// `max(a, b)`
    Max,
    /// `min(a, b)`
    Min,
    /// `a < b` as 1 or 0
    Lt,
    /// `a <= b` as 1 or 0
    Le,
    /// `a > b` as 1 or 0
    Gt,
    /// `a >= b` as 1 or 0
    Ge,
    /// `a == b` as 1 or 0 (not in the language; used for accuracy)
    Eq,
    /// `where(c, a, b)`: `a` where `c` is non-zero, else `b`
    Where,

    // ---- tensor ops ----
    /// `[m,k]·[k,n] -> [m,n]`
    MatMul,
    /// `[m,n] -> [n,m]`
    Transpose,
    /// Repeats the operand along the axes in the set, which are the new axes
    /// of the result (the node's shape says their sizes).
    Broadcast(Axes),
    /// Sums over the axes in the set, which disappear from the shape.
    Sum(Axes),
    /// Softmax along the last axis.
    Softmax,
    /// `log(sum(exp(a)))` along the last axis, which disappears; computed stably.
    LogSumExp,
    /// Class indices `[B]` to one-hot rows `[B, k]` (indices out of range give a zero row).
    OneHot(u32),
    /// The index of the largest element along the last axis, which disappears
    /// (first one on ties). Not differentiable; used for accuracy.
    ArgMax,
    /// A convolution or pooling op over images (facts in `conv.rs`).
    Window(WindowOp, Window),
    /// `[B, C, H, W] → [B, C·H·W]`: free in row-major layout.
    Flatten,
    /// `[B, C·H·W] → [B, C, H, W]` for the given `[C, H, W]`.
    Unflatten([u32; 3]),
}

pub use super::conv::{Window, WindowOp};

use super::{Dim, Graph, Shape, ShapeError};

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exactly(usize),
    /// This many or more.
    AtLeast(usize),
}

impl Op {
    /// The op's name as printed in graphs and DOT output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Const(_) => "const",
            Op::Leaf(_) => "leaf",
            Op::BatchSize => "batch_size",
            Op::Neg => "neg",
            Op::Recip => "recip",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Sqrt => "sqrt",
            Op::Abs => "abs",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Relu => "relu",
            Op::Softplus => "softplus",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Pow => "pow",
            Op::Max => "max",
            Op::Min => "min",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Eq => "eq",
            Op::Where => "where",
            Op::MatMul => "matmul",
            Op::Transpose => "transpose",
            Op::Broadcast(_) => "broadcast",
            Op::Sum(_) => "sum",
            Op::Softmax => "softmax",
            Op::LogSumExp => "logsumexp",
            Op::OneHot(_) => "onehot",
            Op::ArgMax => "argmax",
            Op::Window(w, _) => w.name(),
            Op::Flatten => "flatten",
            Op::Unflatten(_) => "unflatten",
        }
    }

    /// How many operands the op takes.
    pub fn arity(self) -> Arity {
        match self {
            Op::Const(_) | Op::Leaf(_) | Op::BatchSize => Arity::Exactly(0),
            Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::Softplus => Arity::Exactly(1),
            Op::Add | Op::Mul => Arity::AtLeast(2),
            Op::Pow | Op::Max | Op::Min | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq => {
                Arity::Exactly(2)
            }
            Op::Where => Arity::Exactly(3),
            Op::MatMul => Arity::Exactly(2),
            Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax
            | Op::Flatten
            | Op::Unflatten(_) => Arity::Exactly(1),
            Op::Window(w, _) => Arity::Exactly(w.arity()),
        }
    }

    /// True for ops computed independently per element (fusable into one loop).
    pub fn is_elementwise(self) -> bool {
        match self {
            Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::Softplus
            | Op::Add
            | Op::Mul
            | Op::Pow
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where => true,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::MatMul
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_) => false,
        }
    }

    /// The result shape for operands of the given shapes.
    ///
    /// `Broadcast` cannot know its target from its operand alone; its target
    /// is given by [`Graph::broadcast`], which calls [`Op::broadcast_shape`].
    pub fn shape(self, args: &[&Shape], graph: &Graph) -> Result<Shape, ShapeError> {
        let ok = match self.arity() {
            Arity::Exactly(n) => args.len() == n,
            Arity::AtLeast(n) => args.len() >= n,
        };
        if !ok {
            return Err(ShapeError(format!(
                "{} takes {:?} operands, got {}",
                self.name(),
                self.arity(),
                args.len()
            )));
        }
        let mismatch = || {
            let shapes: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            ShapeError(format!(
                "{} needs operands of equal shape, got {}",
                self.name(),
                shapes.join(" and ")
            ))
        };
        match self {
            Op::Const(_) | Op::BatchSize => Ok(Shape(vec![])),
            Op::Leaf(id) => Ok(graph.leaf_info(id).shape.clone()),
            Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::Softplus
            | Op::Add
            | Op::Mul
            | Op::Pow
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where => {
                if args.iter().all(|s| *s == args[0]) {
                    Ok(args[0].clone())
                } else {
                    Err(mismatch())
                }
            }
            Op::MatMul => match (&args[0].0[..], &args[1].0[..]) {
                ([m, k1], [k2, n]) if k1 == k2 => Ok(Shape(vec![*m, *n])),
                _ => Err(ShapeError(format!(
                    "matmul needs matrices [m, k] and [k, n], got {} and {}",
                    args[0], args[1]
                ))),
            },
            Op::Transpose => match &args[0].0[..] {
                [m, n] => Ok(Shape(vec![*n, *m])),
                _ => Err(ShapeError(format!(
                    "transpose needs a matrix, got {}",
                    args[0]
                ))),
            },
            Op::Broadcast(_) => Err(ShapeError(
                "broadcast nodes are made with Graph::broadcast".to_string(),
            )),
            Op::Sum(axes) => {
                let rank = args[0].0.len();
                if rank > 8 || u32::from(axes.0) >> rank != 0 {
                    return Err(ShapeError(format!(
                        "sum over axes {axes} of {}: no such axis",
                        args[0]
                    )));
                }
                let kept = args[0]
                    .0
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| axes.0 & (1 << i) == 0)
                    .map(|(_, d)| *d);
                Ok(Shape(kept.collect()))
            }
            Op::Softmax => match &args[0].0[..] {
                [] => Err(ShapeError("softmax of a scalar".to_string())),
                _ => Ok(args[0].clone()),
            },
            Op::LogSumExp | Op::ArgMax => match &args[0].0[..] {
                [] => Err(ShapeError(format!("{} of a scalar", self.name()))),
                dims => Ok(Shape(dims[..dims.len() - 1].to_vec())),
            },
            Op::OneHot(k) => match &args[0].0[..] {
                [b] => Ok(Shape(vec![*b, Dim::Fixed(k as usize)])),
                _ => Err(ShapeError(format!(
                    "onehot needs a vector of class indices, got {}",
                    args[0]
                ))),
            },
            Op::Window(op, w) => super::conv::shape(op, w, args),
            Op::Flatten => super::conv::flatten_shape(args[0]),
            Op::Unflatten(chw) => super::conv::unflatten_shape(chw, args[0]),
        }
    }

    /// Checks that broadcasting `from` along `axes` gives `to`: removing the
    /// axes in the set from `to` must leave `from`.
    pub fn broadcast_shape(axes: Axes, from: &Shape, to: &Shape) -> Result<(), ShapeError> {
        let kept: Vec<Dim> =
            to.0.iter()
                .enumerate()
                .filter(|(i, _)| axes.0 & (1 << i) == 0)
                .map(|(_, d)| *d)
                .collect();
        if to.0.len() <= 8 && u32::from(axes.0) >> to.0.len() == 0 && kept == from.0 {
            Ok(())
        } else {
            Err(ShapeError(format!(
                "cannot broadcast {from} along axes {axes} to {to}"
            )))
        }
    }
}

impl Op {
    /// The op's value at one element, in f64: the one scalar evaluation both
    /// the interpreter (element by element) and the simplifier's constant
    /// folding use, so the oracle and the folded constants cannot disagree.
    /// `None` for what is not a function of scalar operands: leaves, the
    /// batch size and the tensor ops (the interpreter computes those whole).
    pub fn eval_scalar(self, a: &[f64]) -> Option<f64> {
        let truth = |b: bool| if b { 1.0 } else { 0.0 };
        Some(match self {
            Op::Const(c) => c.value(),
            Op::Neg => -a[0],
            Op::Recip => 1.0 / a[0],
            Op::Exp => a[0].exp(),
            Op::Log => a[0].ln(),
            Op::Sqrt => a[0].sqrt(),
            Op::Abs => a[0].abs(),
            Op::Sin => a[0].sin(),
            Op::Cos => a[0].cos(),
            Op::Tanh => a[0].tanh(),
            Op::Sigmoid => sigmoid(a[0]),
            Op::Relu => {
                if a[0] > 0.0 {
                    a[0]
                } else {
                    0.0
                }
            }
            Op::Softplus => softplus(a[0]),
            Op::Add => a.iter().fold(0.0, |s, &v| s + v),
            Op::Mul => a.iter().fold(1.0, |p, &v| p * v),
            Op::Pow => a[0].powf(a[1]),
            // Written as the derivative rules read: max(a,b)' = where(a > b, a', b').
            Op::Max => {
                if a[0] > a[1] {
                    a[0]
                } else {
                    a[1]
                }
            }
            Op::Min => {
                if a[0] < a[1] {
                    a[0]
                } else {
                    a[1]
                }
            }
            Op::Lt => truth(a[0] < a[1]),
            Op::Le => truth(a[0] <= a[1]),
            Op::Gt => truth(a[0] > a[1]),
            Op::Ge => truth(a[0] >= a[1]),
            Op::Eq => truth(a[0] == a[1]),
            Op::Where => {
                if a[0] != 0.0 {
                    a[1]
                } else {
                    a[2]
                }
            }
            Op::Leaf(_)
            | Op::BatchSize
            | Op::MatMul
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_) => return None,
        })
    }
}

/// `1/(1 + exp(-x))` without overflow for either sign of `x`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(x))` as `max(x, 0) + log1p(exp(-|x|))`, exact for large `|x|`.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

pub use super::rule::Rule;

/// What a node's derivative rule sends to one operand: `value` is added to
/// the operand's adjoint (∂root/∂operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// The operand slot.
    pub slot: usize,
    /// The upstream adjoint times the local derivative.
    pub value: NodeId,
    /// The rule that produced it.
    pub rule: Rule,
}

use super::NodeId;

/// The contributions of one node's derivative rule, built slot by slot:
/// each rule below reads as one line of a table, and the work for an
/// operand that needs no gradient is never done.
pub(super) struct Adjoints<'a> {
    g: &'a mut Graph,
    wanted: &'a [bool],
    out: Vec<Contribution>,
}

impl Adjoints<'_> {
    fn want(&self, slot: usize) -> bool {
        self.wanted.get(slot).copied().unwrap_or(false)
    }

    /// Sends `value(g)` to `slot` by `rule`, if that slot is wanted.
    pub(super) fn slot(
        &mut self,
        slot: usize,
        rule: Rule,
        value: impl FnOnce(&mut Graph) -> NodeId,
    ) {
        if self.want(slot) {
            let value = value(self.g);
            self.out.push(Contribution { slot, value, rule });
        }
    }

    /// Sends `up * local(g)` to operand 0: a unary chain rule `f'(x)*up`.
    fn unary(&mut self, up: NodeId, rule: Rule, local: impl FnOnce(&mut Graph) -> NodeId) {
        self.slot(0, rule, |g| {
            let d = local(g);
            g.mul2(up, d)
        });
    }
}

impl Op {
    /// The reverse-mode derivative rule: given the adjoint `up` of `node`
    /// (an `self` node), the contributions to the adjoints of the operands
    /// whose slot is `wanted`. Rules reuse forward nodes (`s` in
    /// `s*(1 - s)` is the sigmoid node itself), so hash-consing shares them
    /// with the forward pass.
    pub fn derivative(
        self,
        g: &mut Graph,
        node: NodeId,
        up: NodeId,
        wanted: &[bool],
    ) -> Vec<Contribution> {
        let n = g.node(node).clone();
        let (args, shape) = (&n.args, &n.shape);
        let mut d = Adjoints {
            g,
            wanted,
            out: Vec::new(),
        };
        // Unary rules skip their work when the operand needs no gradient.
        if args.len() == 1 && !d.want(0) {
            return vec![];
        }
        let x = args.first().copied().unwrap_or(node);
        match self {
            Op::Const(_) | Op::Leaf(_) | Op::BatchSize => {}
            Op::Neg => d.slot(0, Rule::ConstantMultiple, |g| g.neg(up)),
            // d(1/u) = -1 * u^-2 * u'
            Op::Recip => d.slot(0, Rule::Quotient, |g| {
                let m1 = g.constant(-1.0);
                let u2 = g.pow_const(x, -2.0);
                g.mul_n(&[m1, up, u2])
            }),
            Op::Exp => d.unary(up, Rule::Exp, |_| node),
            Op::Log => d.unary(up, Rule::Log, |g| g.recip(x)),
            Op::Sqrt => d.unary(up, Rule::Sqrt, |g| {
                let two = g.constant(2.0);
                let d = g.mul2(two, node);
                g.recip(d)
            }),
            Op::Abs => d.unary(up, Rule::Abs, |g| {
                let (zero, p1, m1) = (g.constant(0.0), g.constant(1.0), g.constant(-1.0));
                let pos = g.elementwise(Op::Gt, &[x, zero]);
                let neg = g.elementwise(Op::Lt, &[x, zero]);
                let inner = g.select(neg, m1, zero);
                g.select(pos, p1, inner)
            }),
            Op::Sin => d.unary(up, Rule::Sin, |g| g.make(Op::Cos, &[x])),
            Op::Cos => d.slot(0, Rule::Cos, |g| {
                let m1 = g.constant(-1.0);
                let s = g.make(Op::Sin, &[x]);
                g.mul_n(&[m1, up, s])
            }),
            // tanh' = 1 - t^2 with t the tanh node itself.
            Op::Tanh => d.unary(up, Rule::Tanh, |g| {
                let p1 = g.constant(1.0);
                let t2 = g.pow_const(node, 2.0);
                g.sub(p1, t2)
            }),
            // sigmoid' = s*(1 - s) with s the sigmoid node itself.
            Op::Sigmoid => d.slot(0, Rule::Sigmoid, |g| {
                let p1 = g.constant(1.0);
                let d = g.sub(p1, node);
                g.mul_n(&[up, node, d])
            }),
            Op::Relu => d.unary(up, Rule::Relu, |g| {
                let (zero, p1) = (g.constant(0.0), g.constant(1.0));
                let pos = g.elementwise(Op::Gt, &[x, zero]);
                g.select(pos, p1, zero)
            }),
            Op::Softplus => d.unary(up, Rule::Softplus, |g| g.make(Op::Sigmoid, &[x])),
            Op::Add => (0..args.len()).for_each(|i| d.slot(i, Rule::Sum, |_| up)),
            Op::Mul if args.len() > WIDE_PRODUCT => wide_product(&mut d, args, up),
            Op::Mul => (0..args.len()).for_each(|i| product(&mut d, args, i, up)),
            Op::Pow => power(&mut d, args, node, up),
            Op::Max | Op::Min => {
                let (cmp, rule) = if self == Op::Max {
                    (Op::Gt, Rule::Max)
                } else {
                    (Op::Lt, Rule::Min)
                };
                let c = d.g.elementwise(cmp, &[args[0], args[1]]);
                let zero = d.g.constant(0.0);
                d.slot(0, rule, |g| g.select(c, up, zero));
                d.slot(1, rule, |g| g.select(c, zero, up));
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq => {
                let zero = d.g.constant_like(0.0, shape);
                (0..2).for_each(|i| d.slot(i, Rule::Comparison, |_| zero));
            }
            Op::Where => {
                let zero = d.g.constant(0.0);
                d.slot(1, Rule::Where, |g| g.select(args[0], up, zero));
                d.slot(2, Rule::Where, |g| g.select(args[0], zero, up));
            }
            Op::MatMul => {
                let (a, b) = (args[0], args[1]);
                d.slot(0, Rule::MatMul, |g| {
                    let bt = g.transpose(b);
                    g.make(Op::MatMul, &[up, bt])
                });
                d.slot(1, Rule::MatMul, |g| {
                    let at = g.transpose(a);
                    g.make(Op::MatMul, &[at, up])
                });
            }
            Op::Transpose => d.slot(0, Rule::Transpose, |g| g.transpose(up)),
            Op::Broadcast(axes) => d.slot(0, Rule::Broadcast, |g| g.sum(up, axes)),
            Op::Sum(axes) => d.slot(0, Rule::Reduction, |g| {
                let from = g.node(x).shape.clone();
                g.broadcast_to(up, axes, &from)
            }),
            // y ⊙ (ḡ - rowsum(ḡ ⊙ y)) with y the softmax node itself.
            Op::Softmax => d.slot(0, Rule::Softmax, |g| {
                let last = Axes(1 << (shape.0.len() - 1));
                let gy = g.mul2(up, node);
                let s = g.sum(gy, last);
                let sb = g.broadcast_to(s, last, shape);
                let d = g.sub(up, sb);
                g.mul2(node, d)
            }),
            // broadcast(ḡ) ⊙ softmax(x); the softmax node is the forward
            // output's when the last layer is softmax.
            Op::LogSumExp => d.slot(0, Rule::LogSumExp, |g| {
                let from = g.node(x).shape.clone();
                let last = Axes(1 << (from.0.len() - 1));
                let gb = g.broadcast_to(up, last, &from);
                let s = g.make(Op::Softmax, &[x]);
                g.mul2(gb, s)
            }),
            Op::OneHot(_) | Op::ArgMax => d.slot(0, Rule::Constant, |g| {
                let from = g.node(x).shape.clone();
                g.constant_like(0.0, &from)
            }),
            Op::Window(op, w) => super::conv::derivative(&mut d, op, w, args, up),
            Op::Flatten => d.slot(0, Rule::Reshape, |g| {
                let dims = g.node(x).shape.0[1..].iter().map(|d| match d {
                    Dim::Fixed(n) => *n as u32,
                    Dim::Batch => 0,
                });
                let chw: Vec<u32> = dims.collect();
                g.make(Op::Unflatten([chw[0], chw[1], chw[2]]), &[up])
            }),
            Op::Unflatten(_) => d.slot(0, Rule::Reshape, |g| g.make(Op::Flatten, &[up])),
        }
        d.out
    }
}

/// `d(u*v*...)/du = up * v * ...`: the constant multiple rule when the other
/// factors are constants, else the product rule.
fn product(d: &mut Adjoints, args: &[NodeId], i: usize, up: NodeId) {
    let others: Vec<NodeId> = (0..args.len())
        .filter(|&j| j != i)
        .map(|j| args[j])
        .collect();
    let rule = if others.iter().all(|&o| d.g.const_value(o).is_some()) {
        Rule::ConstantMultiple
    } else {
        Rule::Product
    };
    d.slot(i, rule, |g| {
        let mut factors = vec![up];
        factors.extend(others);
        g.mul_n(&factors)
    });
}

/// Products wider than this (a long flat `x*x*...*x` as written) build the
/// product of the other factors once per distinct operand, not once per
/// operand; narrower ones are left exactly as they always were.
const WIDE_PRODUCT: usize = 32;

/// [`product`] for each wanted operand of a wide product, sharing the
/// result between equal operands: `x*x*...*x` of n factors costs O(n), not
/// O(n²). (Distinct factors each need their own product of the others.)
fn wide_product(d: &mut Adjoints, args: &[NodeId], up: NodeId) {
    let mut done: std::collections::HashMap<NodeId, Contribution> =
        std::collections::HashMap::new();
    for (i, &a) in args.iter().enumerate() {
        if !d.want(i) {
            continue;
        }
        if let Some(c) = done.get(&a) {
            d.out.push(Contribution { slot: i, ..*c });
            continue;
        }
        product(d, args, i, up);
        if let Some(&c) = d.out.last() {
            done.insert(a, c);
        }
    }
}

/// `d u^v`: `v*u^(v-1)` to the base (the power rule when the exponent needs
/// no gradient), and `u^v * log(u)` to the exponent (the general power rule).
fn power(d: &mut Adjoints, args: &[NodeId], node: NodeId, up: NodeId) {
    let (u, v) = (args[0], args[1]);
    // d u^v/du = v*u^(v-1), defined for negative u with integer v.
    let rule = if d.want(1) {
        Rule::GeneralPower
    } else {
        Rule::Power
    };
    d.slot(0, rule, |g| {
        let p = match g.const_value(v) {
            Some(c) => g.pow_const(u, c - 1.0),
            None => {
                let m1 = g.constant(-1.0);
                let e = g.add2(v, m1);
                g.pow(u, e)
            }
        };
        g.mul_n(&[up, v, p])
    });
    // d u^v/dv = u^v * log(u), with u^v the node itself.
    d.slot(1, Rule::GeneralPower, |g| {
        let l = g.make(Op::Log, &[u]);
        g.mul_n(&[up, node, l])
    });
}
