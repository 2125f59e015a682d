//! The op table, continued: what is known of an op's value from its
//! operands (its sign, whether it stays a number, whether a NaN operand
//! reaches it). The simplifier's guards ask these before a rewrite that is
//! only valid for some values (`x/x = 1` needs `x` non-zero); each is an
//! exhaustive `match`, so a new op must say what holds of it.

use super::Op;

/// How a fact about an op's value follows from its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// Holds whatever the operands (where the value is defined).
    Always,
    /// Not known from the op alone. Constants are judged by their value
    /// before the table is asked.
    Unknown,
    /// Holds when the same fact holds of every operand.
    IfAll,
    /// Holds when the same fact holds of the first operand.
    IfFirst,
    /// Holds when the value is positive ([`Op::positive`]).
    IfPositive,
    /// Holds when the exponent (second operand) is an even constant.
    IfEvenExponent,
    /// Holds when every operand is non-negative and one is positive.
    IfNonnegativeAndOnePositive,
}

/// Which operands' NaN reaches the op's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanFlow {
    /// A NaN in any operand makes the value NaN.
    Propagates,
    /// The op absorbs NaN (`NaN > 0` is 0, `max(NaN, 1)` is 1).
    Absorbed,
    /// A NaN in a branch of `where` reaches it; one in the condition does not.
    FromBranches,
    /// A NaN base reaches a power whose exponent is a non-zero constant
    /// (`NaN^0 = 1`); a NaN exponent is not tracked.
    FromBaseOfNonzeroPower,
}

impl Op {
    /// When the value is never zero.
    pub fn nonzero(self) -> Fact {
        match self {
            Op::Exp | Op::Sigmoid | Op::Softplus | Op::Recip => Fact::Always,
            Op::Mul => Fact::IfAll,
            Op::Pow | Op::Sqrt => Fact::IfFirst,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Log
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Relu
            | Op::Add
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax => Fact::IfPositive,
        }
    }

    /// When the value is always positive.
    pub fn positive(self) -> Fact {
        match self {
            Op::Exp | Op::Sigmoid | Op::Softplus => Fact::Always,
            // A positive term plus non-negative ones (`1 + abs(x)`).
            Op::Add => Fact::IfNonnegativeAndOnePositive,
            Op::Mul => Fact::IfAll,
            Op::Recip | Op::Sqrt => Fact::IfFirst,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Log
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Relu
            | Op::Pow
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax => Fact::Unknown,
        }
    }

    /// When the value is never negative.
    pub fn nonnegative(self) -> Fact {
        match self {
            Op::Abs | Op::Relu | Op::Sqrt => Fact::Always,
            Op::Pow => Fact::IfEvenExponent,
            Op::Add | Op::Mul => Fact::IfAll,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Softplus
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax => Fact::IfPositive,
        }
    }

    /// When the value is a number wherever the leaves are: made of bounded
    /// functions, so `0*x` is 0 (not `0*inf` = NaN).
    pub fn bounded(self) -> Fact {
        match self {
            Op::Leaf(_) | Op::BatchSize => Fact::Always,
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq => Fact::Always,
            Op::Sin | Op::Cos | Op::Tanh | Op::Sigmoid | Op::Abs | Op::Relu => Fact::IfAll,
            Op::Add | Op::Mul | Op::Where | Op::Max | Op::Min | Op::Broadcast(_) => Fact::IfAll,
            Op::Const(_)
            | Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Softplus
            | Op::Pow
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax => Fact::Unknown,
        }
    }

    /// Which operands' NaN reaches the value.
    pub fn nan_flow(self) -> NanFlow {
        match self {
            Op::Where => NanFlow::FromBranches,
            Op::Pow => NanFlow::FromBaseOfNonzeroPower,
            Op::Max
            | Op::Min
            | Op::Relu
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::ArgMax
            | Op::OneHot(_) => NanFlow::Absorbed,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Softplus
            | Op::Add
            | Op::Mul
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp => NanFlow::Propagates,
        }
    }

    /// True for the transcendental functions, whose folded constants are
    /// kept only when whole (`exp(0) = 1`, but `log(2)` stays `log(2)`).
    pub fn is_transcendental(self) -> bool {
        match self {
            Op::Exp | Op::Log | Op::Sin | Op::Cos | Op::Tanh | Op::Sigmoid | Op::Softplus => true,
            Op::Const(_)
            | Op::Leaf(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Recip
            | Op::Sqrt
            | Op::Abs
            | Op::Relu
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
            | Op::Where
            | Op::MatMul
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_)
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax => false,
        }
    }
}
