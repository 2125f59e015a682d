//! The built-in functions of formulas and the built-in activations: the one
//! list of their names, argument counts and formulas (spec sections 4 and 5).
//!
//! It lives in `check`, stage 2, because every user can import it from
//! here: `check` (names, arities, suggestions, size limits) may not import
//! `graph`, while `lower` imports `check` and maps each entry to graph ops
//! with an exhaustive `match` (`lowering` in `lower.rs`). So a new built-in
//! activation is a variant here (name, formula, default init) plus one arm
//! in `lower`; the compiler points at both.

use super::model::Init;

/// The built-in element-wise activations of spec §5 (their formulas are
/// [`Builtin::formula`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    /// `x`
    Identity,
    /// The primitive op `sigmoid`.
    Sigmoid,
    /// The primitive op `tanh`.
    Tanh,
    /// The primitive op `relu`.
    Relu,
    /// `leaky_relu`, a formula.
    LeakyRelu,
    /// `elu`, a formula.
    Elu,
    /// The primitive op `softplus`.
    Softplus,
    /// `softsign`, a formula.
    Softsign,
    /// `swish`, a formula.
    Swish,
    /// `mish`, a formula.
    Mish,
    /// `gelu` (tanh form), a formula.
    Gelu,
}

impl Builtin {
    /// Every built-in, in the spec's order.
    pub const ALL: [Builtin; 11] = [
        Builtin::Identity,
        Builtin::Sigmoid,
        Builtin::Tanh,
        Builtin::Relu,
        Builtin::LeakyRelu,
        Builtin::Elu,
        Builtin::Softplus,
        Builtin::Softsign,
        Builtin::Swish,
        Builtin::Mish,
        Builtin::Gelu,
    ];

    /// The name as written in `.nn` files.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Identity => "identity",
            Builtin::Sigmoid => "sigmoid",
            Builtin::Tanh => "tanh",
            Builtin::Relu => "relu",
            Builtin::LeakyRelu => "leaky_relu",
            Builtin::Elu => "elu",
            Builtin::Softplus => "softplus",
            Builtin::Softsign => "softsign",
            Builtin::Swish => "swish",
            Builtin::Mish => "mish",
            Builtin::Gelu => "gelu",
        }
    }

    /// The spec's formula over `x`, for the activations that are formulas
    /// over other functions; `None` for `identity` and those that are a
    /// primitive op of the same name. Lowering builds the graph from this
    /// text and `check` measures it, so the formula is written only here.
    pub const fn formula(self) -> Option<&'static str> {
        match self {
            Builtin::Identity
            | Builtin::Sigmoid
            | Builtin::Tanh
            | Builtin::Relu
            | Builtin::Softplus => None,
            Builtin::LeakyRelu => Some("where(x > 0, x, 0.01*x)"),
            Builtin::Elu => Some("where(x > 0, x, exp(x) - 1)"),
            Builtin::Softsign => Some("x/(1 + abs(x))"),
            Builtin::Swish => Some("x*sigmoid(x)"),
            Builtin::Mish => Some("x*tanh(softplus(x))"),
            Builtin::Gelu => Some("0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))"),
        }
    }

    /// The built-in called `name`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The spec's default init: `he` for the relu family, else `glorot`.
    pub fn default_init(self) -> Init {
        match self {
            Builtin::Relu | Builtin::LeakyRelu | Builtin::Elu => Init::He,
            Builtin::Identity
            | Builtin::Sigmoid
            | Builtin::Tanh
            | Builtin::Softplus
            | Builtin::Softsign
            | Builtin::Swish
            | Builtin::Mish
            | Builtin::Gelu => Init::Glorot,
        }
    }
}

/// A built-in function a formula may call (spec §4): the math functions,
/// `max`, `min`, `where`, and every built-in activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinFunction {
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
    /// A built-in activation called as a function.
    Activation(Builtin),
    /// `max(a, b)`
    Max,
    /// `min(a, b)`
    Min,
    /// `where(c, a, b)`
    Where,
}

impl BuiltinFunction {
    /// Every built-in function, in the spec's order.
    pub const ALL: [BuiltinFunction; 20] = [
        BuiltinFunction::Exp,
        BuiltinFunction::Log,
        BuiltinFunction::Sqrt,
        BuiltinFunction::Abs,
        BuiltinFunction::Sin,
        BuiltinFunction::Cos,
        BuiltinFunction::Activation(Builtin::Tanh),
        BuiltinFunction::Activation(Builtin::Sigmoid),
        BuiltinFunction::Activation(Builtin::Relu),
        BuiltinFunction::Activation(Builtin::Softplus),
        BuiltinFunction::Activation(Builtin::Identity),
        BuiltinFunction::Activation(Builtin::LeakyRelu),
        BuiltinFunction::Activation(Builtin::Elu),
        BuiltinFunction::Activation(Builtin::Softsign),
        BuiltinFunction::Activation(Builtin::Swish),
        BuiltinFunction::Activation(Builtin::Mish),
        BuiltinFunction::Activation(Builtin::Gelu),
        BuiltinFunction::Max,
        BuiltinFunction::Min,
        BuiltinFunction::Where,
    ];

    /// The name as written in formulas.
    pub const fn name(self) -> &'static str {
        match self {
            BuiltinFunction::Exp => "exp",
            BuiltinFunction::Log => "log",
            BuiltinFunction::Sqrt => "sqrt",
            BuiltinFunction::Abs => "abs",
            BuiltinFunction::Sin => "sin",
            BuiltinFunction::Cos => "cos",
            BuiltinFunction::Activation(b) => b.name(),
            BuiltinFunction::Max => "max",
            BuiltinFunction::Min => "min",
            BuiltinFunction::Where => "where",
        }
    }

    /// How many arguments it takes.
    pub const fn arity(self) -> usize {
        match self {
            BuiltinFunction::Exp
            | BuiltinFunction::Log
            | BuiltinFunction::Sqrt
            | BuiltinFunction::Abs
            | BuiltinFunction::Sin
            | BuiltinFunction::Cos
            | BuiltinFunction::Activation(_) => 1,
            BuiltinFunction::Max | BuiltinFunction::Min => 2,
            BuiltinFunction::Where => 3,
        }
    }

    /// The built-in function called `name`.
    pub fn from_name(name: &str) -> Option<BuiltinFunction> {
        BuiltinFunction::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{Builtin, BuiltinFunction};

    #[test]
    fn every_builtin_is_a_function_once() {
        for b in Builtin::ALL {
            let n = BuiltinFunction::ALL
                .iter()
                .filter(|f| **f == BuiltinFunction::Activation(b))
                .count();
            assert_eq!(n, 1, "{}", b.name());
        }
        let mut names: Vec<&str> = BuiltinFunction::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BuiltinFunction::ALL.len());
    }

    #[test]
    fn every_formula_parses() {
        for b in Builtin::ALL {
            if let Some(f) = b.formula() {
                assert!(crate::syntax::parse_expr(f).is_ok(), "{f}");
            }
        }
    }
}
