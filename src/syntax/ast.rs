//! The abstract syntax tree of a `.nn` file. Every node carries its [`Span`].
//!
//! The tree is a faithful image of the text: nothing is resolved or defaulted
//! here (that is `check`'s job), so `slope fmt` can print it back.

use crate::diag::Span;

/// A whole `.nn` file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// Items in source order.
    pub items: Vec<Item>,
    /// Every `#` comment, in source order, so the formatter can keep them.
    pub comments: Vec<Comment>,
}

/// A `#` comment; `text` excludes the `#` and the line break.
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The comment's text after `#`.
    pub text: String,
    /// From `#` to the end of the line (excluded).
    pub span: Span,
}

/// A name as written, with its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The identifier text.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `activation NAME(x) = EXPR`
    Activation(FuncDef),
    /// `loss NAME(y, t) = EXPR`
    Loss(FuncDef),
    /// `model NAME { ... }`
    Model(Block),
    /// `train { ... }`
    Train(Block),
}

impl Item {
    /// The span of the whole item.
    pub fn span(&self) -> Span {
        match self {
            Item::Activation(f) | Item::Loss(f) => f.span,
            Item::Model(b) | Item::Train(b) => b.span,
        }
    }
}

/// A formula definition: `activation NAME(PARAMS) = BODY` or `loss ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct FuncDef {
    /// The defined name.
    pub name: Ident,
    /// Parameter names in order.
    pub params: Vec<Ident>,
    /// The formula.
    pub body: Expr,
    /// From the keyword to the end of the body.
    pub span: Span,
}

/// A braced block of statements: a `model` (with a name) or `train` (without).
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The item keyword (`model` or `train`).
    pub keyword: Ident,
    /// The model's name; `None` for `train`.
    pub name: Option<Ident>,
    /// Statements in source order.
    pub stmts: Vec<Stmt>,
    /// From the keyword to the closing brace.
    pub span: Span,
}

/// `KEYWORD VALUE* (KEY=VALUE)*`
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// The first word, e.g. `dense`.
    pub keyword: Ident,
    /// Positional values in order.
    pub values: Vec<Value>,
    /// `key=value` options in order.
    pub options: Vec<Opt>,
    /// From the keyword to the end of the last value.
    pub span: Span,
}

/// One `key=value` option of a statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Opt {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Value,
    /// From the key to the end of the value.
    pub span: Span,
}

/// A statement value with its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What was written.
    pub kind: ValueKind,
    /// Where.
    pub span: Span,
}

/// The kinds of statement values.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// A number; `text` keeps the spelling (`.5`, `1e-3`) for the formatter.
    Number {
        /// The parsed value.
        value: f64,
        /// The text as written.
        text: String,
    },
    /// A bare identifier (`tanh`, `sgd`).
    Ident(String),
    /// A string literal with escapes resolved.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `[v, v, ...]`
    List(Vec<Value>),
    /// A size such as `1x8x8`: two or more whole numbers joined by `x`.
    Size {
        /// The numbers in order; one too large for a `u64` is `u64::MAX`,
        /// so `check` reports it as out of range.
        dims: Vec<u64>,
        /// The text as written.
        text: String,
    },
}

/// A scalar expression with its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// The expression.
    pub kind: ExprKind,
    /// Where it is written (parentheses included when present).
    pub span: Span,
}

/// Scalar expression forms, loosest-binding last in [`BinOp`]'s order.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A numeric literal; `text` keeps its spelling.
    Number {
        /// The parsed value.
        value: f64,
        /// The text as written.
        text: String,
    },
    /// A variable or constant (`x`, `e`, `pi`).
    Var(String),
    /// `f(a, b)`
    Call {
        /// The called function.
        func: Ident,
        /// The arguments in order.
        args: Vec<Expr>,
    },
    /// `-a`
    Neg(Box<Expr>),
    /// `a OP b`
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `a OP b OP c ...`: a left-associative chain of three or more operands
    /// whose operators share one precedence (`+ -` or `* /`). It means
    /// `((a OP b) OP c) ...` but is flat, so that a long sum or product is
    /// not nesting: it parses at any length and no pass recurses along it.
    Chain {
        /// The first operand.
        first: Box<Expr>,
        /// Each further operator with its right operand, left to right.
        rest: Vec<(BinOp, Expr)>,
    },
    /// `( a )`: kept so spans and the formatter see the parentheses.
    Paren(Box<Expr>),
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^` (right-associative)
    Pow,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }

    /// Binding strength: comparison 1, `+ -` 2, `* /` 3, `^` 5 (unary minus is 4).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div => 3,
            BinOp::Pow => 5,
        }
    }
}
