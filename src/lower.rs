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

use crate::check::model::{Activation, Builtin, Function, Loss, Model, Program};
use crate::diag::{Diagnostic, Span, suggest};
use crate::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};
use crate::syntax::ast::{BinOp, Expr, ExprKind};
use std::collections::HashMap;

/// Built-in functions with a primitive op, by name.
const PRIMITIVES: [(&str, Op); 10] = [
    ("exp", Op::Exp),
    ("log", Op::Log),
    ("sqrt", Op::Sqrt),
    ("abs", Op::Abs),
    ("sin", Op::Sin),
    ("cos", Op::Cos),
    ("tanh", Op::Tanh),
    ("sigmoid", Op::Sigmoid),
    ("relu", Op::Relu),
    ("softplus", Op::Softplus),
];

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
}

impl<'p, 'g> Lowerer<'p, 'g> {
    fn new(graph: &'g mut Graph, program: Option<&'p Program>) -> Self {
        Lowerer {
            graph,
            program,
            inlining: Vec::new(),
            inlined: HashMap::new(),
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
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr(lhs, scope)?;
                let b = self.expr(rhs, scope)?;
                let g = &mut *self.graph;
                Ok(match op {
                    BinOp::Add => g.add2(a, b),
                    BinOp::Sub => g.sub(a, b),
                    BinOp::Mul => g.mul2(a, b),
                    BinOp::Div => g.div(a, b),
                    BinOp::Pow => g.pow(a, b),
                    BinOp::Lt => g.elementwise(Op::Lt, &[a, b]),
                    BinOp::Gt => g.elementwise(Op::Gt, &[a, b]),
                    BinOp::Le => g.elementwise(Op::Le, &[a, b]),
                    BinOp::Ge => g.elementwise(Op::Ge, &[a, b]),
                })
            }
            ExprKind::Call { func, args } => {
                let name = func.name.as_str();
                let want = match name {
                    "max" | "min" => 2,
                    "where" => 3,
                    _ => 1,
                };
                let known = want != 1
                    || PRIMITIVES.iter().any(|(n, _)| *n == name)
                    || Builtin::from_name(name).is_some()
                    || self.program.and_then(|p| p.activation(name)).is_some();
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
        let mut candidates: Vec<&str> = PRIMITIVES.iter().map(|(n, _)| *n).collect();
        candidates.extend(Builtin::ALL.iter().map(|b| b.name()));
        candidates.extend(["max", "min", "where"]);
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
        let g = &mut *self.graph;
        if let Some((_, op)) = PRIMITIVES.iter().find(|(n, _)| *n == name) {
            return Ok(g.elementwise(*op, args));
        }
        match name {
            "max" => return Ok(g.elementwise(Op::Max, args)),
            "min" => return Ok(g.elementwise(Op::Min, args)),
            "where" => return Ok(g.select(args[0], args[1], args[2])),
            _ => {}
        }
        if let Some(b) = Builtin::from_name(name) {
            return Ok(builtin(g, b, args[0]));
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

/// A built-in activation applied element-wise to `x`, from the spec's formula.
pub fn builtin(g: &mut Graph, b: Builtin, x: NodeId) -> NodeId {
    match b {
        Builtin::Identity => x,
        Builtin::Sigmoid => g.make(Op::Sigmoid, &[x]),
        Builtin::Tanh => g.make(Op::Tanh, &[x]),
        Builtin::Relu => g.make(Op::Relu, &[x]),
        Builtin::Softplus => g.make(Op::Softplus, &[x]),
        Builtin::LeakyRelu => {
            // where(x > 0, x, 0.01*x)
            let zero = g.constant(0.0);
            let c = g.elementwise(Op::Gt, &[x, zero]);
            let k = g.constant(0.01);
            let small = g.mul2(k, x);
            g.select(c, x, small)
        }
        Builtin::Elu => {
            // where(x > 0, x, exp(x) - 1)
            let zero = g.constant(0.0);
            let c = g.elementwise(Op::Gt, &[x, zero]);
            let ex = g.make(Op::Exp, &[x]);
            let one = g.constant(1.0);
            let em1 = g.sub(ex, one);
            g.select(c, x, em1)
        }
        Builtin::Swish => {
            // x*sigmoid(x)
            let s = g.make(Op::Sigmoid, &[x]);
            g.mul2(x, s)
        }
        Builtin::Gelu => {
            // 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))
            let x3 = g.pow_const(x, 3.0);
            let k = g.constant(0.044715);
            let kx3 = g.mul2(k, x3);
            let inner = g.add2(x, kx3);
            let c = g.constant((2.0 / std::f64::consts::PI).sqrt());
            let arg = g.mul2(c, inner);
            let th = g.make(Op::Tanh, &[arg]);
            let one = g.constant(1.0);
            let s = g.add2(one, th);
            let half = g.constant(0.5);
            g.mul_n(&[half, x, s])
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
        Shape(vec![b, Dim::Fixed(model.input)]),
    );
    let t_shape = match model.loss {
        Loss::CrossEntropy => Shape(vec![b]),
        Loss::Mse | Loss::Bce | Loss::Custom(_) => Shape(vec![b, Dim::Fixed(k)]),
    };
    let t = g.leaf("t", LeafKind::Target, t_shape);

    let mut params = Vec::new();
    let mut layers = Vec::new();
    let mut a = x;
    for (i, layer) in model.layers.iter().enumerate() {
        let (out, inp) = (layer.width, layer.input_width);
        let wname = format!("{}.weight", layer.name);
        let w = g.leaf(
            &wname,
            LeafKind::Param,
            Shape(vec![Dim::Fixed(out), Dim::Fixed(inp)]),
        );
        params.push(ParamNode {
            name: wname,
            node: w,
            shape: vec![out, inp],
            layer: i,
        });
        let wt = g.make(Op::Transpose, &[w]);
        let mut z = g.make(Op::MatMul, &[a, wt]);
        if layer.bias {
            let bname = format!("{}.bias", layer.name);
            let bias = g.leaf(&bname, LeafKind::Param, Shape(vec![Dim::Fixed(out)]));
            params.push(ParamNode {
                name: bname,
                node: bias,
                shape: vec![out],
                layer: i,
            });
            let zshape = g.node(z).shape.clone();
            let bb = g.broadcast_to(bias, Axes(0b01), &zshape);
            z = g.make(Op::Add, &[z, bb]);
        }
        a = match &layer.activation {
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
                // A formula that ignores x (`f(x) = pi`) is a scalar: it is
                // the same at every element of the layer.
                let zshape = g.node(z).shape.clone();
                g.splat(a, &zshape)
            }
        };
        let n = i + 1;
        g.names.insert(z, format!("z{n}"));
        g.names.insert(a, format!("a{n}"));
        layers.push(LayerNodes {
            name: layer.name.clone(),
            z,
            a,
        });
    }
    let y = a;
    g.names.insert(y, "y".to_string());
    let last = model.layers.last().map(|l| &l.activation);
    let z = layers.last().map_or(x, |l| l.z);
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
    })
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
