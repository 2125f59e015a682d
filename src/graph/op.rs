//! The op table: every fact about every op (name, arity, shape rule, f64
//! reference evaluation, derivative rule) as exhaustive `match`es, one place.
//!
//! Adding an op means adding a variant here; the compiler then points at
//! every fact (and every codegen arm) that must be written for it.

/// A scalar constant stored by its bits, so ops can be hashed and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Const(pub u64);

impl Const {
    /// The constant `v`. `-0.0` is stored as `0.0` so both hash-cons together.
    pub fn new(v: f64) -> Const {
        Const(if v == 0.0 { 0.0f64.to_bits() } else { v.to_bits() })
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
}

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
            | Op::ArgMax => Arity::Exactly(1),
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
            | Op::ArgMax => false,
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
            ShapeError(format!(
                "{} needs operands of equal shape, got {:?}",
                self.name(),
                args
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
                _ => Err(ShapeError(format!("matmul of {:?} and {:?}", args[0], args[1]))),
            },
            Op::Transpose => match &args[0].0[..] {
                [m, n] => Ok(Shape(vec![*n, *m])),
                _ => Err(ShapeError(format!("transpose of {:?}", args[0]))),
            },
            Op::Broadcast(_) => Err(ShapeError(
                "broadcast nodes are made with Graph::broadcast".to_string(),
            )),
            Op::Sum(axes) => {
                let rank = args[0].0.len();
                if rank > 8 || u32::from(axes.0) >> rank != 0 {
                    return Err(ShapeError(format!("sum over {axes:?} of {:?}", args[0])));
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
                _ => Err(ShapeError(format!("onehot of {:?}", args[0]))),
            },
        }
    }

    /// Checks that broadcasting `from` along `axes` gives `to`: removing the
    /// axes in the set from `to` must leave `from`.
    pub fn broadcast_shape(axes: Axes, from: &Shape, to: &Shape) -> Result<(), ShapeError> {
        let kept: Vec<Dim> = to
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| axes.0 & (1 << i) == 0)
            .map(|(_, d)| *d)
            .collect();
        if to.0.len() <= 8 && u32::from(axes.0) >> to.0.len() == 0 && kept == from.0 {
            Ok(())
        } else {
            Err(ShapeError(format!(
                "cannot broadcast {from:?} along {axes:?} to {to:?}"
            )))
        }
    }
}
