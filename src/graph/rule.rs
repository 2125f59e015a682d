//! The named differentiation rules: each derivative rule of the op table
//! (`op.rs`, `conv.rs`) says which one it applied, for `slope diff --steps`.

/// The named differentiation rules, as printed by `slope diff --steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `d c = 0`, also for piecewise-constant ops (arg-max, one-hot).
    Constant,
    /// `d x/dx = 1`.
    Variable,
    /// `d(u + v) = u' + v'`.
    Sum,
    /// `d(c*u) = c*u'` for a constant `c` (also `d(-u) = -u'`).
    ConstantMultiple,
    /// `d(u*v) = u'*v + u*v'`.
    Product,
    /// `d(1/u) = -u'/u^2`.
    Quotient,
    /// `d u^n = n*u^(n-1)*u'` for an exponent constant w.r.t. the variables.
    Power,
    /// `d u^v = u^v*(v'*log(u) + v*u'/u)`.
    GeneralPower,
    /// `d f(u) = f'(u)*u'`: any rule applied to an operand that is not a variable.
    Chain,
    /// `sigmoid' = sigmoid*(1 - sigmoid)`.
    Sigmoid,
    /// `tanh' = 1 - tanh^2`.
    Tanh,
    /// `relu' = where(x > 0, 1, 0)`.
    Relu,
    /// `softplus' = sigmoid`.
    Softplus,
    /// `exp' = exp`.
    Exp,
    /// `log' = 1/x`.
    Log,
    /// `sqrt' = 1/(2*sqrt)`.
    Sqrt,
    /// `abs' = where(x > 0, 1, where(x < 0, -1, 0))`.
    Abs,
    /// `sin' = cos`.
    Sin,
    /// `cos' = -sin`.
    Cos,
    /// `max(a,b)' = where(a > b, a', b')`.
    Max,
    /// `min(a,b)' = where(a < b, a', b')`.
    Min,
    /// `where(c,a,b)' = where(c, a', b')`.
    Where,
    /// A comparison is piecewise constant: its derivative is 0.
    Comparison,
    /// `d(A·B) = dA·B + A·dB`: `Ḡ·Bᵀ` to `A`, `Aᵀ·Ḡ` to `B`.
    MatMul,
    /// `d(Aᵀ) = (dA)ᵀ`.
    Transpose,
    /// A broadcast's adjoint is the sum over the broadcast axes.
    Broadcast,
    /// A sum's adjoint is broadcast back over the summed axes.
    Reduction,
    /// `softmax`'s vector-Jacobian product `y ⊙ (ḡ - rowsum(ḡ ⊙ y))`.
    Softmax,
    /// `logsumexp' = softmax`.
    LogSumExp,
    /// `d(x ⋆ w)`: a transposed convolution `δ ⋆ᵀ w` to `x`, the
    /// correlation `x ⋆ δ` to `w`.
    Convolution,
    /// Max pooling routes δ to the arg-max of each window.
    MaxPool,
    /// Average pooling spreads δ evenly over each window.
    AvgPool,
    /// A reshape's adjoint is the inverse reshape.
    Reshape,
}

impl Rule {
    /// The rule's name for people ("power rule").
    pub fn name(self) -> &'static str {
        match self {
            Rule::Constant => "constant rule",
            Rule::Variable => "variable rule",
            Rule::Sum => "sum rule",
            Rule::ConstantMultiple => "constant multiple rule",
            Rule::Product => "product rule",
            Rule::Quotient => "quotient rule",
            Rule::Power => "power rule",
            Rule::GeneralPower => "general power rule",
            Rule::Chain => "chain rule",
            Rule::Sigmoid => "sigmoid rule",
            Rule::Tanh => "tanh rule",
            Rule::Relu => "relu rule",
            Rule::Softplus => "softplus rule",
            Rule::Exp => "exp rule",
            Rule::Log => "log rule",
            Rule::Sqrt => "sqrt rule",
            Rule::Abs => "abs rule",
            Rule::Sin => "sin rule",
            Rule::Cos => "cos rule",
            Rule::Max => "max rule",
            Rule::Min => "min rule",
            Rule::Where => "where rule",
            Rule::Comparison => "comparison rule",
            Rule::MatMul => "matrix product rule",
            Rule::Transpose => "transpose rule",
            Rule::Broadcast => "broadcast rule",
            Rule::Reduction => "sum-over-axes rule",
            Rule::Softmax => "softmax rule",
            Rule::LogSumExp => "log-sum-exp rule",
            Rule::Convolution => "convolution rule",
            Rule::MaxPool => "max-pooling rule",
            Rule::AvgPool => "average-pooling rule",
            Rule::Reshape => "reshape rule",
        }
    }
}
