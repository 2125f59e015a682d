//! Stage 2: from the checked model (and scalar formulas of the AST) to the
//! graph IR.
//!
//! Lowering desugars: `a - b` becomes `a + (-1)*b`, `a/b` becomes
//! `a * recip(b)`, built-in activations without a primitive op expand to
//! their spec formulas, custom activations are inlined with their argument
//! substituted, and losses take their numerically stable forms (`bce` from
//! the logits, `cross_entropy` through log-sum-exp). It is the only stage
//! that knows both the AST and the graph.
//!
//! **Architecture Invariant:** `lower` imports `syntax::ast`, `check::model`,
//! `graph` and `diag`, never `diff`, `simplify`, `codegen`, `train` or `cli`.

// Every stage reports a `Diagnostic` by value (the agreed interface); errors
// are rare and end the run, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

mod chain;
mod conv;

use crate::check::BuiltinFunction;
use crate::check::layer::{ParamRole, ParamSpec};
use crate::check::model::{Activation, Builtin, Function, Layer, LayerKind, Loss, Model, Program};
use crate::diag::{Diagnostic, Span, suggest};
use crate::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};
use crate::syntax::ast::{BinOp, Expr, ExprKind};
use chain::{binary, chain, left_operands, nested};
use std::collections::HashMap;

/// How a built-in function of `check`'s table becomes graph nodes.
enum Lowering {
    /// The element-wise op of the same meaning.
    Op(Op),
    /// `where(c, a, b)`, through [`Graph::select`].
    Select,
    /// The argument itself.
    Identity,
    /// The activation's formula ([`Builtin::formula`]).
    Formula(Builtin),
}

/// The graph side of the built-in function table: one exhaustive arm per
/// entry, so a new built-in does not compile until it is lowered.
fn lowering(f: BuiltinFunction) -> Lowering {
    match f {
        BuiltinFunction::Exp => Lowering::Op(Op::Exp),
        BuiltinFunction::Log => Lowering::Op(Op::Log),
        BuiltinFunction::Sqrt => Lowering::Op(Op::Sqrt),
        BuiltinFunction::Abs => Lowering::Op(Op::Abs),
        BuiltinFunction::Sin => Lowering::Op(Op::Sin),
        BuiltinFunction::Cos => Lowering::Op(Op::Cos),
        BuiltinFunction::Max => Lowering::Op(Op::Max),
        BuiltinFunction::Min => Lowering::Op(Op::Min),
        BuiltinFunction::Where => Lowering::Select,
        BuiltinFunction::Activation(b) => match b {
            Builtin::Identity => Lowering::Identity,
            Builtin::Sigmoid => Lowering::Op(Op::Sigmoid),
            Builtin::Tanh => Lowering::Op(Op::Tanh),
            Builtin::Relu => Lowering::Op(Op::Relu),
            Builtin::Softplus => Lowering::Op(Op::Softplus),
            Builtin::LeakyRelu
            | Builtin::Elu
            | Builtin::Softsign
            | Builtin::Swish
            | Builtin::Mish
            | Builtin::Gelu => Lowering::Formula(b),
        },
    }
}

/// Where a formula's variables come from.
enum Scope<'a> {
    /// The top level: `e` and `pi` are constants, other names go to the caller.
    Top(&'a mut dyn FnMut(&mut Graph, &str) -> Option<NodeId>),
    /// Inside an inlined `activation` or `loss` item: its parameters, bound
    /// to nodes (parameters shadow `e` and `pi`).
    Params(&'a [(String, NodeId)]),
}

/// The state of one lowering: the graph, the file's items, the chain of
/// activations being inlined (to report a recursive definition), and the
/// calls already inlined.
struct Lowerer<'p, 'g> {
    graph: &'g mut Graph,
    program: Option<&'p Program>,
    inlining: Vec<String>,
    /// `f(args)` lowered once per distinct argument nodes: without it
    /// `f2(x) = f1(x)*f1(x)`, `f3(x) = f2(x)*f2(x)`, ... takes exponential time.
    inlined: HashMap<(String, Vec<NodeId>), NodeId>,
    /// Every denominator lowered, for [`Network::divisors`].
    divisors: Vec<Divisor>,
}

impl<'p, 'g> Lowerer<'p, 'g> {
    fn new(graph: &'g mut Graph, program: Option<&'p Program>) -> Self {
        Lowerer {
            graph,
            program,
            inlining: Vec::new(),
            inlined: HashMap::new(),
            divisors: Vec::new(),
        }
    }
}

/// Lowers a scalar formula to a node. Variables other than the constants `e`
/// and `pi` are resolved by `vars` (declare their leaves beforehand, or use
/// [`lower_formula`] or [`lower_scalar_with`]).
///
/// Calls of built-ins and of the `activation` items of `program` are
/// accepted; a call with the wrong number of arguments, of an unknown
/// function, or a recursive activation is a diagnostic.
pub fn lower_scalar(
    graph: &mut Graph,
    expr: &Expr,
    program: Option<&Program>,
    vars: &mut dyn FnMut(&str) -> NodeId,
) -> Result<NodeId, Diagnostic> {
    lower_scalar_with(graph, expr, program, &mut |_, name| Some(vars(name)))
}

/// [`lower_scalar`] with a resolver that may add leaves to the graph it is
/// given; a name it returns `None` for is reported as unknown.
pub fn lower_scalar_with(
    graph: &mut Graph,
    expr: &Expr,
    program: Option<&Program>,
    vars: &mut dyn FnMut(&mut Graph, &str) -> Option<NodeId>,
) -> Result<NodeId, Diagnostic> {
    let mut l = Lowerer::new(graph, program);
    l.expr(expr, &mut Scope::Top(vars))
}

/// Lowers a formula whose every free variable (any name but `e` and `pi`)
/// becomes a scalar leaf ([`LeafKind::Scalar`]) of that name: what
/// `slope diff` differentiates.
pub fn lower_formula(
    graph: &mut Graph,
    expr: &Expr,
    program: Option<&Program>,
) -> Result<NodeId, Diagnostic> {
    lower_scalar_with(graph, expr, program, &mut |g, name| {
        Some(g.leaf(name, LeafKind::Scalar, Shape(vec![])))
    })
}

impl Lowerer<'_, '_> {
    fn expr(&mut self, e: &Expr, scope: &mut Scope) -> Result<NodeId, Diagnostic> {
        match &e.kind {
            ExprKind::Number { value, .. } => Ok(self.graph.constant(*value)),
            ExprKind::Var(name) => Ok(self.var(name, e.span, scope)?),
            ExprKind::Paren(a) => self.expr(a, scope),
            ExprKind::Neg(a) => {
                let a = self.expr(a, scope)?;
                Ok(self.graph.neg(a))
            }
            ExprKind::Binary { .. } | ExprKind::Chain { .. } => {
                let (first, rest) = left_operands(e);
                let mut operands = Vec::with_capacity(rest.len() + 1);
                operands.push(self.expr(first, scope)?);
                for (_, c) in &rest {
                    operands.push(self.expr(c, scope)?);
                }
                let ops: Vec<BinOp> = rest.iter().map(|(op, _)| *op).collect();
                self.note_divisors(&operands, first, &rest);
                Ok(chain(self.graph, &operands, &ops))
            }
            ExprKind::Call { func, args } => {
                let name = func.name.as_str();
                let builtin = BuiltinFunction::from_name(name);
                let want = builtin.map_or(1, BuiltinFunction::arity);
                let known =
                    builtin.is_some() || self.program.and_then(|p| p.activation(name)).is_some();
                if !known {
                    return Err(self.unknown_function(name, func.span));
                }
                if args.len() != want {
                    return Err(Diagnostic::error(
                        format!(
                            "`{name}` takes {want} argument{}, got {}",
                            if want == 1 { "" } else { "s" },
                            args.len()
                        ),
                        e.span,
                    )
                    .with_label(format!("called with {} here", args.len())));
                }
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.expr(a, scope)?);
                }
                self.call(name, &vals, e.span)
            }
        }
    }

    /// Records the denominators of a chain: each `/ c`, and the base of a
    /// power whose exponent is a negative constant.
    fn note_divisors(&mut self, operands: &[NodeId], first: &Expr, rest: &[(BinOp, &Expr)]) {
        for (i, (op, c)) in rest.iter().enumerate() {
            let divisor = match op {
                BinOp::Div => Some((operands[i + 1], c.span)),
                BinOp::Pow => {
                    let negative = self
                        .graph
                        .const_value(operands[i + 1])
                        .is_some_and(|k| k < 0.0);
                    // `^` does not chain: its base is the chain's first operand.
                    (negative && i == 0).then(|| (operands[0], first.span))
                }
                BinOp::Add | BinOp::Sub | BinOp::Mul => None,
                BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => None,
            };
            if let Some((node, span)) = divisor {
                self.divisors.push(Divisor {
                    node,
                    span,
                    used: None,
                });
            }
        }
    }

    fn var(&mut self, name: &str, span: Span, scope: &mut Scope) -> Result<NodeId, Diagnostic> {
        match scope {
            Scope::Params(params) => {
                if let Some((_, n)) = params.iter().find(|(p, _)| p == name) {
                    return Ok(*n);
                }
            }
            Scope::Top(_) => {}
        }
        match (name, scope) {
            ("e", _) => Ok(self.graph.constant(std::f64::consts::E)),
            ("pi", _) => Ok(self.graph.constant(std::f64::consts::PI)),
            (_, Scope::Top(vars)) => vars(self.graph, name).ok_or_else(|| {
                Diagnostic::error(format!("unknown name `{name}`"), span)
                    .with_label("not a variable of this formula, `e` or `pi`")
            }),
            (_, Scope::Params(params)) => {
                let names: Vec<&str> = params.iter().map(|(p, _)| p.as_str()).collect();
                let mut d = Diagnostic::error(format!("unknown name `{name}`"), span)
                    .with_label("not a parameter of this formula, `e` or `pi`");
                if let Some(s) = suggest(name, names) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                Err(d)
            }
        }
    }

    fn unknown_function(&self, name: &str, span: Span) -> Diagnostic {
        let mut candidates: Vec<&str> = BuiltinFunction::ALL.iter().map(|f| f.name()).collect();
        if let Some(p) = self.program {
            candidates.extend(p.activations.iter().map(|f| f.name.as_str()));
        }
        let mut d = Diagnostic::error(format!("unknown function `{name}`"), span)
            .with_label("not a built-in or an activation of this file");
        if let Some(s) = suggest(name, candidates) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        d
    }

    /// A call whose arity has been checked.
    fn call(&mut self, name: &str, args: &[NodeId], span: Span) -> Result<NodeId, Diagnostic> {
        if let Some(f) = BuiltinFunction::from_name(name) {
            return Ok(apply(self.graph, f, args));
        }
        let f = self
            .program
            .and_then(|p| p.activation(name))
            .expect("the caller checked that the function is known");
        self.inline(f, args, span)
    }

    /// The body of `f` with its parameters bound to `args`.
    fn inline(&mut self, f: &Function, args: &[NodeId], span: Span) -> Result<NodeId, Diagnostic> {
        let key = (f.name.clone(), args.to_vec());
        if let Some(&done) = self.inlined.get(&key) {
            return Ok(done);
        }
        if let Some(i) = self.inlining.iter().position(|n| *n == f.name) {
            let mut cycle = self.inlining[i..].to_vec();
            cycle.push(f.name.clone());
            return Err(Diagnostic::error(
                format!("activation `{}` is defined in terms of itself", f.name),
                span,
            )
            .with_secondary(f.span, "defined here")
            .with_note(format!("the cycle is {}", cycle.join(" -> "))));
        }
        if f.params.len() != args.len() {
            return Err(Diagnostic::error(
                format!(
                    "`{}` takes {} arguments, got {}",
                    f.name,
                    f.params.len(),
                    args.len()
                ),
                span,
            ));
        }
        let bound: Vec<(String, NodeId)> =
            f.params.iter().cloned().zip(args.iter().copied()).collect();
        self.inlining.push(f.name.clone());
        let out = self.expr(&f.body, &mut Scope::Params(&bound));
        self.inlining.pop();
        if let Ok(n) = out {
            self.inlined.insert(key, n);
        }
        out
    }
}

/// A built-in function applied to `args` (their number checked).
fn apply(g: &mut Graph, f: BuiltinFunction, args: &[NodeId]) -> NodeId {
    match lowering(f) {
        Lowering::Op(op) => g.elementwise(op, args),
        Lowering::Select => g.select(args[0], args[1], args[2]),
        Lowering::Identity => args[0],
        Lowering::Formula(b) => formula(g, b, args[0]),
    }
}

/// A built-in activation applied element-wise to `x`: its op, or its
/// formula from the table.
pub fn builtin(g: &mut Graph, b: Builtin, x: NodeId) -> NodeId {
    match lowering(BuiltinFunction::Activation(b)) {
        Lowering::Op(op) => g.make(op, &[x]),
        // `Select` is `where`, never an activation.
        Lowering::Select | Lowering::Identity => x,
        Lowering::Formula(b) => formula(g, b, x),
    }
}

/// The formula of `b` ([`Builtin::formula`]) over `x`.
fn formula(g: &mut Graph, b: Builtin, x: NodeId) -> NodeId {
    let text = b
        .formula()
        .expect("the table gives every formula activation its formula");
    let e =
        crate::syntax::parse_expr(text).expect("the built-in formulas parse (a unit test checks)");
    formula_expr(g, &e, x)
}

/// A built-in formula over `x`, built in the builder's canonical forms: a
/// part without `x` is one constant (`sqrt(2/pi)` is 0.7978845608028654,
/// not a square root of a quotient) and a chain `a*b*c` is one product.
fn formula_expr(g: &mut Graph, e: &Expr, x: NodeId) -> NodeId {
    if let Some(v) = constant_value(e) {
        return g.constant(v);
    }
    match &e.kind {
        ExprKind::Number { value, .. } => g.constant(*value),
        ExprKind::Var(_) => x,
        ExprKind::Paren(a) => formula_expr(g, a, x),
        ExprKind::Neg(a) => {
            let a = formula_expr(g, a, x);
            g.neg(a)
        }
        ExprKind::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
        } => {
            let mut chain = vec![&**rhs];
            let mut left = &**lhs;
            while let ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } = &left.kind
            {
                chain.push(rhs);
                left = lhs;
            }
            chain.push(left);
            let factors: Vec<NodeId> = chain.iter().rev().map(|f| formula_expr(g, f, x)).collect();
            g.mul_n(&factors)
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let a = formula_expr(g, lhs, x);
            let b = formula_expr(g, rhs, x);
            binary(g, *op, a, b)
        }
        ExprKind::Chain { first, rest } => formula_expr(g, &nested(first, rest), x),
        ExprKind::Call { func, args } => {
            let f = BuiltinFunction::from_name(&func.name)
                .expect("built-in formulas call only built-ins");
            let vals: Vec<NodeId> = args.iter().map(|a| formula_expr(g, a, x)).collect();
            apply(g, f, &vals)
        }
    }
}

/// The value of a built-in formula's part that does not use `x`, in f64.
fn constant_value(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Number { value, .. } => Some(*value),
        ExprKind::Var(name) => match name.as_str() {
            "e" => Some(std::f64::consts::E),
            "pi" => Some(std::f64::consts::PI),
            _ => None,
        },
        ExprKind::Paren(a) => constant_value(a),
        ExprKind::Neg(a) => constant_value(a).map(|v| -v),
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (constant_value(lhs)?, constant_value(rhs)?);
            Some(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
                BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => return None,
            })
        }
        ExprKind::Chain { first, rest } => constant_value(&nested(first, rest)),
        ExprKind::Call { func, args } => {
            let vals: Option<Vec<f64>> = args.iter().map(constant_value).collect();
            match lowering(BuiltinFunction::from_name(&func.name)?) {
                Lowering::Op(op) => op.eval_scalar(&vals?),
                Lowering::Select | Lowering::Identity | Lowering::Formula(_) => None,
            }
        }
    }
}

/// A parameter leaf of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamNode {
    /// `NAME.weight` or `NAME.bias`.
    pub name: String,
    /// Its leaf node.
    pub node: NodeId,
    /// `[out, in]` for a weight, `[out]` for a bias.
    pub shape: Vec<usize>,
    /// The index of its layer in [`Model::layers`] (0 for the first).
    pub layer: usize,
    /// Weight or bias (weight decay applies to weights only).
    pub role: ParamRole,
}

/// A denominator in the file's formulas: `c` of `a / c`, or the base of a
/// power with a negative constant exponent. `pipeline::lower` refuses one
/// that simplifies to 0, where the quotient is ±inf or NaN for every input.
#[derive(Clone, Debug, PartialEq)]
pub struct Divisor {
    /// The denominator's node.
    pub node: NodeId,
    /// Where it is written.
    pub span: Span,
    /// The layer or loss statement that inlined the formula holding it.
    pub used: Option<Span>,
}

impl Divisor {
    fn used_at(self, span: Span) -> Divisor {
        Divisor {
            used: Some(span),
            ..self
        }
    }
}

/// The nodes of one dense layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNodes {
    /// The layer's name (`dense1`, or its `name=`).
    pub name: String,
    /// The pre-activation `z = a_prev·Wᵀ + b`, `[B, out]`.
    pub z: NodeId,
    /// The activation's output, `[B, out]` (the same node as `z` for `identity`).
    pub a: NodeId,
}

/// A model lowered on a symbolic batch of `B` rows: the one network type of
/// the crate. [`lower_model`] fills everything but `grads`;
/// `pipeline::compile` (a later stage) differentiates and simplifies it.
#[derive(Clone, Debug)]
pub struct Network {
    /// The graph holding everything below.
    pub graph: Graph,
    /// The input leaf `x`, `[B, in]`.
    pub x: NodeId,
    /// The target leaf `t`: `[B, K]`, or `[B]` class indices for `cross_entropy`.
    pub t: NodeId,
    /// Parameters in layer order, each weight before its bias.
    pub params: Vec<ParamNode>,
    /// The layers, first to last.
    pub layers: Vec<LayerNodes>,
    /// The network's output (the last layer's `a`), `[B, K]`.
    pub y: NodeId,
    /// The mean loss over the batch, a scalar.
    pub loss: NodeId,
    /// For classification, a scalar counting correct predictions in the
    /// batch: rows whose arg-max is the class (`cross_entropy`, out of B), or
    /// outputs on the target's side of 0.5 (`bce`, out of B·K).
    pub correct: Option<NodeId>,
    /// `∂loss/∂param`, parallel to `params`; empty until the pipeline
    /// differentiates the network (`pipeline::derive`).
    pub grads: Vec<NodeId>,
    /// The denominators of the custom activations and loss, as inlined.
    pub divisors: Vec<Divisor>,
}

/// Lowers `model` to a graph over a batch: `z_l = a_{l-1}·W_lᵀ + b_l`,
/// `a_l = act(z_l)`, the loss in its stable form, and the accuracy count.
pub fn lower_model(program: &Program, model: &Model) -> Result<Network, Diagnostic> {
    let mut g = Graph::new();
    let b = Dim::Batch;
    let k = model.output_width();
    let x = g.leaf(
        "x",
        LeafKind::Input,
        Shape(vec![b, Dim::Fixed(model.input.features())]),
    );
    let t_shape = match model.loss {
        Loss::CrossEntropy => Shape(vec![b]),
        Loss::Mse | Loss::Bce | Loss::Custom(_) => Shape(vec![b, Dim::Fixed(k)]),
    };
    let t = g.leaf("t", LeafKind::Target, t_shape);

    let mut params = Vec::new();
    let mut divisors = Vec::new();
    let mut layers = Vec::new();
    let mut a = x;
    for (i, layer) in model.layers.iter().enumerate() {
        let z = match &layer.kind {
            LayerKind::Dense { .. } => {
                let flat = flatten(&mut g, a);
                dense_z(&mut g, layer, i, flat, &mut params)
            }
            LayerKind::Conv { .. } | LayerKind::Pool { .. } => {
                let img = unflatten(&mut g, a, layer);
                conv::window_z(&mut g, layer, i, img, &mut params)
            }
            LayerKind::Flatten => flatten(&mut g, a),
        };
        a = match layer.activation() {
            Activation::Builtin(bi) => builtin(&mut g, *bi, z),
            Activation::Softmax => g.make(Op::Softmax, &[z]),
            Activation::Custom(name) => {
                let Some(f) = program.activation(name) else {
                    return Err(Diagnostic::error(
                        format!("unknown activation `{name}`"),
                        layer.span,
                    ));
                };
                let mut l = Lowerer::new(&mut g, Some(program));
                let a = l.inline(f, &[z], layer.span)?;
                divisors.extend(l.divisors.into_iter().map(|d| d.used_at(layer.span)));
                // A formula that ignores x (`f(x) = pi`) is a scalar: it is
                // the same at every element of the layer.
                let zshape = g.node(z).shape.clone();
                g.splat(a, &zshape)
            }
        };
        let n = i + 1;
        g.names.insert(z, format!("z{n}"));
        // Pooling and flatten have no activation: their output keeps the name z.
        if !matches!(layer.kind, LayerKind::Pool { .. } | LayerKind::Flatten) {
            g.names.insert(a, format!("a{n}"));
        }
        layers.push(LayerNodes {
            name: layer.name.clone(),
            z,
            a,
        });
    }
    // An image-shaped last layer is compared with the targets flattened.
    let y = flatten(&mut g, a);
    g.names.insert(y, "y".to_string());
    let last = model.layers.last().map(Layer::activation);
    let z = layers.last().map_or(x, |l| l.z);
    let z = flatten(&mut g, z);
    let yshape = g.node(y).shape.clone();

    let (loss, correct) = match &model.loss {
        Loss::Mse => {
            let d = g.sub(y, t);
            let sq = g.pow_const(d, 2.0);
            (mean_all(&mut g, sq), None)
        }
        Loss::Bce => {
            let per = if last == Some(&Activation::Builtin(Builtin::Sigmoid)) {
                // softplus(z) - t*z = -(t*log(y) + (1 - t)*log(1 - y)) for
                // y = sigmoid(z), finite for every z; its gradient is y - t.
                let sp = g.make(Op::Softplus, &[z]);
                let tz = g.mul2(t, z);
                g.sub(sp, tz)
            } else {
                // The textbook form, for outputs not made by a sigmoid.
                let ly = g.make(Op::Log, &[y]);
                let one = g.constant(1.0);
                let omy = g.sub(one, y);
                let lomy = g.make(Op::Log, &[omy]);
                let omt = g.sub(one, t);
                let p1 = g.mul2(t, ly);
                let p2 = g.mul2(omt, lomy);
                let s = g.add2(p1, p2);
                g.neg(s)
            };
            let half = g.constant(0.5);
            let yc = g.elementwise(Op::Gt, &[y, half]);
            let tc = g.elementwise(Op::Gt, &[t, half]);
            let right = g.make(Op::Eq, &[yc, tc]);
            (mean_all(&mut g, per), Some(g.sum_all(right)))
        }
        Loss::CrossEntropy => {
            let oh = g.make(Op::OneHot(k as u32), &[t]);
            let row = Axes(0b10);
            let per = if last == Some(&Activation::Softmax) {
                // logsumexp(z) - z[t] = -log(softmax(z)[t]), finite for every z;
                // its gradient is softmax(z) - onehot(t) = y - onehot(t).
                let lse = g.make(Op::LogSumExp, &[z]);
                let picked = g.mul2(oh, z);
                let zt = g.sum(picked, row);
                g.sub(lse, zt)
            } else {
                let picked = g.mul2(oh, y);
                let yt = g.sum(picked, row);
                let l = g.make(Op::Log, &[yt]);
                g.neg(l)
            };
            let am = g.make(Op::ArgMax, &[y]);
            let right = g.make(Op::Eq, &[am, t]);
            (mean_all(&mut g, per), Some(g.sum_all(right)))
        }
        Loss::Custom(name) => {
            let Some(f) = program.loss(name) else {
                return Err(Diagnostic::error(
                    format!("unknown loss `{name}`"),
                    model.span,
                ));
            };
            let mut l = Lowerer::new(&mut g, Some(program));
            let per = l.inline(f, &[y, t], f.span)?;
            divisors.extend(l.divisors.into_iter().map(|d| d.used_at(model.loss_span)));
            // A formula that ignores y and t is a scalar: it is the same at every element.
            let per = g.splat(per, &yshape);
            (mean_all(&mut g, per), None)
        }
    };
    g.names.insert(loss, "loss".to_string());
    Ok(Network {
        graph: g,
        x,
        t,
        params,
        layers,
        y,
        loss,
        correct,
        grads: Vec::new(),
        divisors,
    })
}

/// `v` as `[B, features]`: a `[B, C, H, W]` image flattened in (C, H, W)
/// order, anything else as it is.
fn flatten(g: &mut Graph, v: NodeId) -> NodeId {
    if g.node(v).shape.0.len() == 4 {
        g.make(Op::Flatten, &[v])
    } else {
        v
    }
}

/// `v` as the `[B, C, H, W]` image `layer` reads: the input rows `[B, C·H·W]`
/// unflattened, an image as it is.
fn unflatten(g: &mut Graph, v: NodeId, layer: &Layer) -> NodeId {
    match layer.input.dims() {
        &[c, h, w] if g.node(v).shape.0.len() == 2 => {
            g.make(Op::Unflatten([c, h, w].map(|d| d as u32)), &[v])
        }
        _ => v,
    }
}

/// The mean of every element: `sum(v) * recip(count)`, the count being a
/// product with the batch size so `1/B` stays symbolic.
fn mean_all(g: &mut Graph, v: NodeId) -> NodeId {
    let shape = g.node(v).shape.clone();
    let s = g.sum_all(v);
    let n = g.element_count(&shape);
    let r = g.recip(n);
    g.mul2(s, r)
}

/// `z = a·Wᵀ + b` (or `a·Wᵀ` without a bias) for dense layer `i`, with its
/// parameter leaves named and shaped as `check::layer` says. The leaves and
/// ops are made in a fixed order (weight, its use, bias, its use), which
/// fixes node ids and so the printed graphs.
fn dense_z(
    g: &mut Graph,
    layer: &Layer,
    i: usize,
    a: NodeId,
    params: &mut Vec<ParamNode>,
) -> NodeId {
    let specs = layer.params();
    let mut leaf = |g: &mut Graph, spec: &ParamSpec| {
        let shape = Shape(spec.shape.iter().map(|&d| Dim::Fixed(d)).collect());
        let node = g.leaf(&spec.name, LeafKind::Param, shape);
        params.push(ParamNode {
            name: spec.name.clone(),
            node,
            shape: spec.shape.clone(),
            layer: i,
            role: spec.role,
        });
        node
    };
    let mut z = a;
    for spec in &specs {
        let node = leaf(g, spec);
        z = match spec.role {
            ParamRole::Weight => {
                let wt = g.make(Op::Transpose, &[node]);
                g.make(Op::MatMul, &[a, wt])
            }
            ParamRole::Bias => {
                let zshape = g.node(z).shape.clone();
                let bb = g.broadcast_to(node, Axes(0b01), &zshape);
                g.make(Op::Add, &[z, bb])
            }
        };
    }
    z
}
