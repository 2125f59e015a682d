//! Unit tests of the checker on hand-built ASTs (the end-to-end tests in
//! `tests/diagnostics.rs` and `tests/check.rs` go through the parser).

use super::check;
use super::model::{Activation, Builtin, FeatureShape, Init, Layer, LayerKind, Loss, Optimizer};
use crate::diag::Span;
use crate::syntax::ast::*;

/// Builds AST nodes with increasing, non-overlapping spans, so that the
/// order of diagnostics follows the order the nodes were built in.
#[derive(Default)]
struct B {
    pos: usize,
}

impl B {
    fn span(&mut self) -> Span {
        self.pos += 10;
        Span::new(self.pos, self.pos + 5)
    }
    fn ident(&mut self, name: &str) -> Ident {
        Ident {
            name: name.into(),
            span: self.span(),
        }
    }
    fn num(&mut self, x: f64) -> Value {
        Value {
            kind: ValueKind::Number {
                value: x,
                text: x.to_string(),
            },
            span: self.span(),
        }
    }
    fn name(&mut self, s: &str) -> Value {
        Value {
            kind: ValueKind::Ident(s.into()),
            span: self.span(),
        }
    }
    fn string(&mut self, s: &str) -> Value {
        Value {
            kind: ValueKind::Str(s.into()),
            span: self.span(),
        }
    }
    fn stmt(&mut self, keyword: &str, values: Vec<Value>, options: Vec<(&str, Value)>) -> Stmt {
        let keyword = self.ident(keyword);
        let options = options
            .into_iter()
            .map(|(k, value)| {
                let key = self.ident(k);
                let span = key.span.to(value.span);
                Opt { key, value, span }
            })
            .collect();
        let span = keyword.span;
        Stmt {
            keyword,
            values,
            options,
            span,
        }
    }
    fn block(&mut self, keyword: &str, name: Option<&str>, stmts: Vec<Stmt>) -> Block {
        let keyword = self.ident(keyword);
        let name = name.map(|n| self.ident(n));
        Block {
            span: keyword.span,
            keyword,
            name,
            stmts,
        }
    }
    fn expr(&mut self, kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: self.span(),
        }
    }
    fn var(&mut self, v: &str) -> Expr {
        self.expr(ExprKind::Var(v.into()))
    }
    fn call(&mut self, f: &str, args: Vec<Expr>) -> Expr {
        let func = self.ident(f);
        self.expr(ExprKind::Call { func, args })
    }
    fn func(&mut self, name: &str, params: &[&str], body: Expr) -> FuncDef {
        let name = self.ident(name);
        let params = params.iter().map(|p| self.ident(p)).collect();
        FuncDef {
            span: name.span,
            name,
            params,
            body,
        }
    }
}

fn file(items: Vec<Item>) -> File {
    File {
        items,
        comments: vec![],
    }
}

/// The headlines of the diagnostics of `items`.
fn messages(items: Vec<Item>) -> Vec<String> {
    check(&file(items))
        .1
        .into_iter()
        .map(|d| d.message)
        .collect()
}

/// `model m { input 2; dense 4 ACT; dense 1 sigmoid; loss bce }` with `extra` statements appended.
fn xor_model(b: &mut B, act: &str, extra: Vec<Stmt>) -> Item {
    let (v1, v2) = (b.num(2.0), b.num(4.0));
    let a = b.name(act);
    let mut stmts = vec![
        b.stmt("input", vec![v1], vec![]),
        b.stmt("dense", vec![v2, a], vec![]),
    ];
    let (v3, s) = (b.num(1.0), b.name("sigmoid"));
    stmts.push(b.stmt("dense", vec![v3, s], vec![]));
    let l = b.name("bce");
    stmts.push(b.stmt("loss", vec![l], vec![]));
    stmts.extend(extra);
    Item::Model(b.block("model", Some("m"), stmts))
}

#[test]
fn a_valid_model_gets_names_defaults_and_widths() {
    let mut b = B::default();
    let model = xor_model(&mut b, "relu", vec![]);
    let (program, diags) = check(&file(vec![model]));
    assert!(diags.is_empty(), "{diags:?}");
    let m = &program.models[0];
    assert_eq!(m.name, "m");
    assert_eq!(m.layers[0].name, "dense1");
    assert_eq!(m.layers[1].name, "dense2");
    let init = |l: &Layer| match l.kind {
        LayerKind::Dense { init, .. } | LayerKind::Conv { init, .. } => init,
        LayerKind::Pool { .. } | LayerKind::Flatten => unreachable!("dense layers only"),
    };
    assert_eq!(init(&m.layers[0]), Init::He, "relu defaults to he");
    assert_eq!(init(&m.layers[1]), Init::Glorot);
    assert_eq!(m.layers[1].input, FeatureShape::flat(4));
    assert_eq!(
        *m.layers[1].activation(),
        Activation::Builtin(Builtin::Sigmoid)
    );
    assert_eq!(m.loss, Loss::Bce);
    // 2*4 + 4 + 4*1 + 1
    assert_eq!(m.parameter_count(), 17);
}

#[test]
fn typos_in_activations_are_suggested() {
    let mut b = B::default();
    let model = xor_model(&mut b, "tahn", vec![]);
    let (_, diags) = check(&file(vec![model]));
    assert_eq!(diags[0].message, "unknown activation 'tahn'");
    assert_eq!(diags[0].help, vec!["did you mean 'tanh'?"]);
}

#[test]
fn softsign_and_mish_are_builtins_with_glorot() {
    for (name, builtin) in [("softsign", Builtin::Softsign), ("mish", Builtin::Mish)] {
        let mut b = B::default();
        let model = xor_model(&mut b, name, vec![]);
        let (program, diags) = check(&file(vec![model]));
        assert!(diags.is_empty(), "{diags:?}");
        let layer = &program.models[0].layers[0];
        assert_eq!(*layer.activation(), Activation::Builtin(builtin));
        assert_eq!(layer.params()[0].init, Init::Glorot);
    }
    for (typo, meant) in [("sofsign", "softsign"), ("mihs", "mish")] {
        let mut b = B::default();
        let model = xor_model(&mut b, typo, vec![]);
        let (_, diags) = check(&file(vec![model]));
        assert_eq!(diags[0].help, vec![format!("did you mean '{meant}'?")]);
    }
}

#[test]
fn bad_widths_and_options_are_reported_together() {
    let mut b = B::default();
    let input = {
        let v = b.num(2.5);
        b.stmt("input", vec![v], vec![])
    };
    let dense = {
        let v = b.name("four");
        let init = b.name("glorto");
        b.stmt("dense", vec![v], vec![("init", init)])
    };
    let loss = {
        let v = b.name("mse");
        b.stmt("loss", vec![v], vec![])
    };
    let m = Item::Model(b.block("model", Some("m"), vec![input, dense, loss]));
    assert_eq!(
        messages(vec![m]),
        vec![
            "invalid input width 2.5",
            "invalid layer width 'four'",
            "unknown init 'glorto'",
        ]
    );
}

#[test]
fn softmax_only_last_and_losses_need_their_output() {
    let mut b = B::default();
    let stmts = {
        let (i, w1, a1, w2, a2, l) = (
            b.num(2.0),
            b.num(3.0),
            b.name("softmax"),
            b.num(3.0),
            b.name("tanh"),
            b.name("cross_entropy"),
        );
        vec![
            b.stmt("input", vec![i], vec![]),
            b.stmt("dense", vec![w1, a1], vec![]),
            b.stmt("dense", vec![w2, a2], vec![]),
            b.stmt("loss", vec![l], vec![]),
        ]
    };
    let m = Item::Model(b.block("model", Some("m"), stmts));
    assert_eq!(
        messages(vec![m]),
        vec![
            "'softmax' is only allowed on the last layer",
            "'cross_entropy' needs a softmax output layer",
        ]
    );
}

#[test]
fn explicit_names_collide_with_default_names() {
    let mut b = B::default();
    let name = b.name("dense2");
    let extra = {
        let w = b.num(1.0);
        b.stmt("dense", vec![w], vec![("name", name)])
    };
    // Layers: dense1, dense2 (default), then name=dense2.
    let mut b2 = b;
    let m = xor_model(&mut b2, "tanh", vec![extra]);
    let msgs = messages(vec![m]);
    assert!(
        msgs.contains(&"layer name 'dense2' is used twice".to_string()),
        "{msgs:?}"
    );
}

#[test]
fn activation_cycles_are_reported_with_the_path() {
    let mut b = B::default();
    // f(x) = g(x); g(x) = f(x) + h(x); h(x) = x
    let fx = b.var("x");
    let f_body = b.call("g", vec![fx]);
    let f = b.func("f", &["x"], f_body);
    let gx = b.var("x");
    let g_call_f = b.call("f", vec![gx]);
    let hx = b.var("x");
    let g_call_h = b.call("h", vec![hx]);
    let g_body = b.expr(ExprKind::Binary {
        op: BinOp::Add,
        lhs: Box::new(g_call_f),
        rhs: Box::new(g_call_h),
    });
    let g = b.func("g", &["x"], g_body);
    let h_body = b.var("x");
    let h = b.func("h", &["x"], h_body);
    let items = vec![
        Item::Activation(f),
        Item::Activation(g),
        Item::Activation(h),
    ];
    assert_eq!(
        messages(items),
        vec!["activation 'f' calls itself: f -> g -> f"]
    );
}

#[test]
fn formulas_check_variables_arity_and_callees() {
    let mut b = B::default();
    // loss l(y, t) = max(y) + z + cube(t) + l(y, t) with activation cube(x) = x
    let cube_body = b.var("x");
    let cube = b.func("cube", &["x"], cube_body);
    let y = b.var("y");
    let max = b.call("max", vec![y]);
    let z = b.var("z");
    let t = b.var("t");
    let cube_call = b.call("cube", vec![t]);
    let (y2, t2) = (b.var("y"), b.var("t"));
    let self_call = b.call("l", vec![y2, t2]);
    let sum = |b: &mut B, l: Expr, r: Expr| {
        b.expr(ExprKind::Binary {
            op: BinOp::Add,
            lhs: Box::new(l),
            rhs: Box::new(r),
        })
    };
    let s1 = sum(&mut b, max, z);
    let s2 = sum(&mut b, s1, cube_call);
    let body = sum(&mut b, s2, self_call);
    let l = b.func("l", &["y", "t"], body);
    assert_eq!(
        messages(vec![Item::Activation(cube), Item::Loss(l)]),
        vec![
            "'max' takes 2 arguments, found 1",
            "unknown variable 'z'",
            "loss 'l' cannot be called",
        ]
    );
}

#[test]
fn items_check_names_and_parameter_counts() {
    let mut b = B::default();
    let body = b.var("x");
    let tanh = b.func("tanh", &["x"], body);
    let body = b.var("x");
    let two = b.func("two", &["x", "y"], body);
    let body = b.var("x");
    let again = b.func("two", &["x"], body);
    assert_eq!(
        messages(vec![
            Item::Activation(tanh),
            Item::Activation(two),
            Item::Activation(again)
        ]),
        vec![
            "activation 'tanh' is already a built-in",
            "activation 'two' must take exactly one parameter, found 2",
            "activation 'two' is defined twice",
        ]
    );
}

#[test]
fn train_defaults_are_marked_and_ranges_checked() {
    let mut b = B::default();
    let model = xor_model(&mut b, "tanh", vec![]);
    let data = {
        let p = b.string("xor.csv");
        let t = b.name("y");
        b.stmt("data", vec![p], vec![("target", t)])
    };
    let opt = {
        let adam = b.name("adam");
        let lr = b.num(0.01);
        b.stmt("optimizer", vec![adam], vec![("lr", lr)])
    };
    let epochs = {
        let n = b.num(5.0);
        b.stmt("epochs", vec![n], vec![])
    };
    let train = Item::Train(b.block("train", None, vec![data, opt, epochs]));
    let (program, diags) = check(&file(vec![model, train]));
    assert!(diags.is_empty(), "{diags:?}");
    let t = program.train.expect("the train block checked");
    assert_eq!(t.data.expect("data given").targets, vec!["y"]);
    assert_eq!(t.epochs.value, 5);
    assert!(!t.epochs.is_default);
    assert!(t.batch.is_default && t.batch.value == 32);
    let Optimizer::Adam { lr, beta2, .. } = t.optimizer else {
        panic!("adam was asked for")
    };
    assert!(!lr.is_default && lr.value == 0.01);
    assert!(beta2.is_default && beta2.value == 0.999);

    let mut b = B::default();
    let bad = {
        let sgd = b.name("sgd");
        let m = b.num(1.0);
        let beta = b.num(0.9);
        b.stmt(
            "optimizer",
            vec![sgd],
            vec![("momentum", m), ("beta1", beta)],
        )
    };
    let val = {
        let v = b.num(1.0);
        b.stmt("validation", vec![v], vec![])
    };
    let lr = {
        let v = b.num(0.1);
        b.stmt("lr", vec![v], vec![])
    };
    let train = Item::Train(b.block("train", None, vec![bad, val, lr]));
    assert_eq!(
        messages(vec![train]),
        vec![
            "invalid momentum 1",
            "unknown option 'beta1' for 'optimizer'",
            "invalid validation fraction 1",
            "unknown statement 'lr' in the train block",
            "the train block has no 'data' statement",
        ]
    );
}

#[test]
fn long_sums_are_walked_without_recursion() {
    // The walk itself is iterative; the depth here stays modest because
    // the derived Clone and Drop of `ast::Expr` recurse (the parser bounds
    // the depth of what reaches them).
    let mut b = B::default();
    let mut body = b.var("x");
    for _ in 0..2_000 {
        let rhs = b.var("x");
        body = Expr {
            kind: ExprKind::Binary {
                op: BinOp::Add,
                lhs: Box::new(body),
                rhs: Box::new(rhs),
            },
            span: Span::new(0, 1),
        };
    }
    let f = b.func("f", &["x"], body);
    let items = vec![Item::Activation(f)];
    // The parser never builds so deep a tree; the size check (iterative
    // too) reports it as too deep, and nothing else is wrong with it.
    let diags = check(&file(items)).1;
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].message.contains("levels deep"), "{diags:?}");
}
