//! Scalar formulas lowered to graphs and evaluated, against the spec's
//! formulas computed by hand in f64.

use slope::check::model::{Function, Program};
use slope::diag::{Diagnostic, Span};
use slope::graph::eval::eval_scalar;
use slope::graph::verify::verify;
use slope::graph::{Graph, NodeId, Op};
use slope::lower::{lower_formula, lower_scalar, lower_scalar_with};
use slope::syntax::ast::{BinOp, Expr, ExprKind, Ident};

const SP: Span = Span { start: 0, end: 0 };

fn ex(kind: ExprKind) -> Expr {
    Expr { kind, span: SP }
}
fn num(v: f64) -> Expr {
    ex(ExprKind::Number {
        value: v,
        text: v.to_string(),
    })
}
fn var(n: &str) -> Expr {
    ex(ExprKind::Var(n.to_string()))
}
fn neg(a: Expr) -> Expr {
    ex(ExprKind::Neg(Box::new(a)))
}
fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    ex(ExprKind::Binary {
        op,
        lhs: Box::new(a),
        rhs: Box::new(b),
    })
}
fn call(f: &str, args: Vec<Expr>) -> Expr {
    let func = Ident {
        name: f.to_string(),
        span: Span::new(3, 3 + f.len()),
    };
    ex(ExprKind::Call { func, args })
}
fn act(name: &str, param: &str, body: Expr) -> Function {
    Function {
        name: name.into(),
        params: vec![param.into()],
        body,
        span: Span::new(0, 1),
    }
}
fn program(activations: Vec<Function>) -> Program {
    Program {
        activations,
        losses: vec![],
        models: vec![],
        train: None,
    }
}

fn lower(e: &Expr, prog: Option<&Program>) -> Result<(Graph, NodeId), Box<Diagnostic>> {
    let mut g = Graph::new();
    let root = lower_formula(&mut g, e, prog).map_err(Box::new)?;
    verify(&g).unwrap();
    Ok((g, root))
}

/// The formula's value at `x`.
fn at(e: &Expr, prog: Option<&Program>, x: f64) -> f64 {
    let (g, root) = lower(e, prog).expect("lowers");
    eval_scalar(&g, root, &[("x", x)]).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

#[test]
fn arithmetic_and_constants() {
    // -x^2 + 3*x - 1/x at 2: -4 + 6 - 0.5 = 1.5
    let e = bin(
        BinOp::Sub,
        bin(
            BinOp::Add,
            neg(bin(BinOp::Pow, var("x"), num(2.0))),
            bin(BinOp::Mul, num(3.0), var("x")),
        ),
        bin(BinOp::Div, num(1.0), var("x")),
    );
    assert_eq!(at(&e, None, 2.0), 1.5);
    // e^x * pi at 0 = pi
    let e = bin(BinOp::Mul, bin(BinOp::Pow, var("e"), var("x")), var("pi"));
    assert!(close(at(&e, None, 0.0), std::f64::consts::PI));
    // (x > 1) + (x <= 1)*10 at 2: 1
    let e = bin(
        BinOp::Add,
        bin(BinOp::Gt, var("x"), num(1.0)),
        bin(BinOp::Mul, bin(BinOp::Le, var("x"), num(1.0)), num(10.0)),
    );
    assert_eq!(at(&e, None, 2.0), 1.0);
    assert_eq!(at(&e, None, 0.0), 10.0);
}

#[test]
fn builtins_follow_the_spec_formulas() {
    let f = |name: &str, x: f64| at(&call(name, vec![var("x")]), None, x);
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    for x in [-1.5, -0.3, 0.7, 2.0] {
        assert_eq!(f("identity", x), x);
        assert!(close(
            f("leaky_relu", x),
            if x > 0.0 { x } else { 0.01 * x }
        ));
        assert!(close(f("elu", x), if x > 0.0 { x } else { x.exp() - 1.0 }));
        assert!(close(f("swish", x), x * sig(x)));
        assert!(close(f("softsign", x), x / (1.0 + x.abs())));
        assert!(close(f("mish", x), x * (1.0 + x.exp()).ln().tanh()));
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let gelu = 0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh());
        assert!(close(f("gelu", x), gelu));
        assert!(close(f("sigmoid", x), sig(x)));
        assert!(close(f("softplus", x), (1.0 + x.exp()).ln()));
    }
    let mx = call("max", vec![var("x"), num(1.0)]);
    assert_eq!(at(&mx, None, 3.0), 3.0);
    let w = call(
        "where",
        vec![bin(BinOp::Lt, var("x"), num(0.0)), num(-1.0), num(1.0)],
    );
    assert_eq!(at(&w, None, -3.0), -1.0);
}

#[test]
fn primitive_builtins_stay_primitive() {
    let (g, root) = lower(&call("tanh", vec![var("x")]), None).unwrap();
    assert_eq!(g.node(root).op, Op::Tanh);
}

#[test]
fn custom_activations_are_inlined() {
    // activation cube(x) = x^3 / 3; activation twice(u) = 2*cube(u) + e
    let cube = act(
        "cube",
        "x",
        bin(BinOp::Div, bin(BinOp::Pow, var("x"), num(3.0)), num(3.0)),
    );
    let twice = act(
        "twice",
        "u",
        bin(
            BinOp::Add,
            bin(BinOp::Mul, num(2.0), call("cube", vec![var("u")])),
            var("e"),
        ),
    );
    let p = program(vec![cube, twice]);
    let e = call("twice", vec![bin(BinOp::Add, var("x"), num(1.0))]);
    // twice(2) = 2*8/3 + e
    assert!(close(
        at(&e, Some(&p), 1.0),
        16.0 / 3.0 + std::f64::consts::E
    ));
}

#[test]
fn errors_are_diagnostics() {
    let e = call("tanhh", vec![var("x")]);
    let d = lower(&e, None).unwrap_err();
    assert!(
        d.message.contains("unknown function `tanhh`"),
        "{}",
        d.message
    );
    assert!(d.help.iter().any(|h| h.contains("`tanh`")), "{:?}", d.help);

    let e = call("max", vec![var("x")]);
    let d = lower(&e, None).unwrap_err();
    assert!(
        d.message.contains("takes 2 arguments, got 1"),
        "{}",
        d.message
    );

    // activation f(x) = g(x); activation g(x) = f(x)
    let p = program(vec![
        act("f", "x", call("g", vec![var("x")])),
        act("g", "x", call("f", vec![var("x")])),
    ]);
    let d = lower(&call("f", vec![var("x")]), Some(&p)).unwrap_err();
    assert!(d.message.contains("in terms of itself"), "{}", d.message);
    assert!(
        d.notes.iter().any(|n| n.contains("f -> g -> f")),
        "{:?}",
        d.notes
    );

    // A variable the caller does not know.
    let mut g = Graph::new();
    let d = lower_scalar_with(&mut g, &var("q"), None, &mut |_, _| None).unwrap_err();
    assert!(d.message.contains("unknown name `q`"), "{}", d.message);
    // The plain form, with leaves declared first.
    let q = g.leaf(
        "q",
        slope::graph::LeafKind::Scalar,
        slope::graph::Shape(vec![]),
    );
    let r = lower_scalar(&mut g, &neg(var("q")), None, &mut |_| q).unwrap();
    assert_eq!(eval_scalar(&g, r, &[("q", 2.0)]).unwrap(), -2.0);
    let d = lower_scalar_with(&mut g, &var("q2"), None, &mut |_, _| None).unwrap_err();
    assert!(d.message.contains("unknown name `q2`"), "{}", d.message);
}

#[test]
fn repeated_calls_are_lowered_once() {
    // f0(x) = x + 1; f_k(x) = f_{k-1}(x) * f_{k-1}(x): 2^60 calls unless shared.
    let mut acts = vec![act("f0", "x", bin(BinOp::Add, var("x"), num(1.0)))];
    for k in 1..=60 {
        let prev = format!("f{}", k - 1);
        let body = bin(
            BinOp::Mul,
            call(&prev, vec![var("x")]),
            call(&prev, vec![var("x")]),
        );
        acts.push(act(&format!("f{k}"), "x", body));
    }
    let p = program(acts);
    let (g, _) = lower(&call("f60", vec![var("x")]), Some(&p)).unwrap();
    assert!(g.dag.node_count() < 200);
}

/// The graph each built-in activation had when its formula was written as
/// builder calls (before the formulas moved to the table in `check`), and
/// the new ones written the same way: lowering the table's text must give
/// the very same hash-consed node, for a scalar and for a `[B, 3]` operand.
fn by_hand(g: &mut Graph, b: slope::check::model::Builtin, x: NodeId) -> NodeId {
    use slope::check::model::Builtin as B;
    match b {
        B::Identity => x,
        B::Sigmoid => g.make(Op::Sigmoid, &[x]),
        B::Tanh => g.make(Op::Tanh, &[x]),
        B::Relu => g.make(Op::Relu, &[x]),
        B::Softplus => g.make(Op::Softplus, &[x]),
        B::LeakyRelu => {
            let zero = g.constant(0.0);
            let c = g.elementwise(Op::Gt, &[x, zero]);
            let k = g.constant(0.01);
            let small = g.mul2(k, x);
            g.select(c, x, small)
        }
        B::Elu => {
            let zero = g.constant(0.0);
            let c = g.elementwise(Op::Gt, &[x, zero]);
            let ex = g.make(Op::Exp, &[x]);
            let one = g.constant(1.0);
            let em1 = g.sub(ex, one);
            g.select(c, x, em1)
        }
        B::Softsign => {
            let a = g.make(Op::Abs, &[x]);
            let one = g.constant(1.0);
            let d = g.add2(one, a);
            g.div(x, d)
        }
        B::Swish => {
            let s = g.make(Op::Sigmoid, &[x]);
            g.mul2(x, s)
        }
        B::Mish => {
            let sp = g.make(Op::Softplus, &[x]);
            let t = g.make(Op::Tanh, &[sp]);
            g.mul2(x, t)
        }
        B::Gelu => {
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

#[test]
fn builtin_formulas_lower_to_the_graphs_written_by_hand() {
    use slope::graph::{Dim, LeafKind, Shape};
    for b in slope::check::model::Builtin::ALL {
        for shape in [vec![], vec![Dim::Batch, Dim::Fixed(3)]] {
            let mut g = Graph::new();
            let x = g.leaf("x", LeafKind::Input, Shape(shape));
            let from_table = slope::lower::builtin(&mut g, b, x);
            let written = by_hand(&mut g, b, x);
            assert_eq!(from_table, written, "{}", b.name());
        }
    }
}
