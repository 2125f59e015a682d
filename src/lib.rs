//! slope: a compiler for neural networks written as `.nn` files.
//!
//! The library does everything the `slope` command does; the command line
//! only parses arguments, calls it and prints. Compile a model from a
//! string, train it on in-memory data and read its gradients:
//!
//! ```
//! use slope::{check, data, diag, pipeline, syntax, train};
//!
//! let src = "model xor {\n input 2\n dense 4 tanh\n dense 1 sigmoid\n loss bce\n}\n\
//!            train {\n data \"xor.csv\" target=y\n optimizer adamw lr=0.05\n batch 4\n}\n";
//! let (file, diags) = syntax::parse(src);
//! assert!(diags.is_empty());
//! let (program, diags) = check::check(&file);
//! assert!(diags.is_empty());
//! let model = &program.models[0];
//! let config = program.train.as_ref().expect("the file has a train block");
//!
//! // The data as text: the file named by `data` is never opened.
//! let csv = "a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n";
//! let spec = config.data.as_ref().expect("the block names its data");
//! let rows = data::load(csv, diag::FileId(1), spec, model).expect("the CSV is valid");
//!
//! // Lower, differentiate and simplify: one network, loss and gradients.
//! let (net, _timings) = pipeline::compile(&program, model).expect("the model compiles");
//! let settings = train::Settings {
//!     epochs: 20,
//!     batch: 4,
//!     shuffle: true,
//!     seed: 1,
//!     validation: 0.0,
//!     optimizer: config.optimizer,
//!     threads: 1,
//! };
//! let initial = train::weights::init(model, settings.seed);
//! let outcome = train::train(model, net.clone(), &settings, &rows, initial, &mut |_| {})
//!     .expect("training converges");
//! assert_eq!(outcome.epochs.len(), 20);
//!
//! // The gradient of the mean loss over all rows at the trained weights.
//! let grads = train::tasks::gradient(&net, &outcome.weights, rows.features.clone(),
//!                                    rows.targets.clone(), rows.rows)
//!     .expect("the gradient compiles");
//! assert_eq!(grads.tensors[0].name, "dense1.weight");
//! assert!(grads.tensors.iter().all(|t| t.data.iter().all(|g| g.is_finite())));
//! ```
//!
//! The pipeline, one module per stage; imports only follow it:
//!
//! ```text
//! .nn text ─syntax─▶ AST ─check─▶ Program ─lower─▶ Graph ─diff─▶ gradients ─simplify─▶ Graph
//!                                                                                       │
//!        weights (safetensors) ◀─train─ native fns ◀─codegen (Cranelift)────────────────┘
//! ```
//!
//! | module | stage | entry point |
//! | --- | --- | --- |
//! | [`diag`] | shared | [`diag::Diagnostic`], [`diag::render`] |
//! | [`syntax`] | 1: text to a spanned AST | [`syntax::parse`], [`syntax::parse_expr`] |
//! | [`check`] | 2: names, ranges, defaults | [`check::check`] |
//! | [`data`] | 2: CSV text to a checked data set | [`data::load`] |
//! | [`graph`] | 3: the one IR, its op table and f64 interpreter | [`graph::Graph`], [`graph::Op`] |
//! | [`lower`] | 3: checked model to graph | [`lower::lower_model`], [`lower::lower_formula`] |
//! | [`diff`] | 4: reverse-mode symbolic differentiation | [`diff::grad`] |
//! | [`simplify`] | 5: named rewrite rules to a fixed point | [`simplify::simplify`] |
//! | [`pipeline`] | 5b: lower → diff → simplify, written once; the one [`pipeline::Network`] | [`pipeline::compile`], [`pipeline::derive()`] |
//! | [`derivative`] | 5c: one formula's derivative and its derivation (`slope diff`) | [`derivative::differentiate`] |
//! | [`equations`] | 5c: the backprop equations `slope grad` prints | [`equations::derive`] |
//! | [`codegen`] | 6: Cranelift JIT | [`codegen::Jit`], [`codegen::Compiled`] |
//! | [`train`] | 7: entry points by role, training loop, optimizers, predict/gradient/gradcheck, weights files | [`train::train`], [`train::layout::Builder`], [`train::optim`], [`train::tasks`] |
//! | [`report`] | 8a: recorded numbers to SVG pictures and an HTML page | [`report::pictures`], [`report::index_html`] |
//! | [`cli`] | 8: the `slope` command line | [`cli::main`] |
//!
//! **Architecture Invariant:** a stage imports only earlier stages and
//! `diag`; nothing imports `cli`, the only module that prints or reads files
//! (`tests/layering.rs` checks this). So `graph`, `diff`, `simplify` and
//! `codegen` can be tested from graphs built by hand.
//!
//! **Architecture Invariant:** the CLI holds no pipeline logic. The chain
//! lower → diff → simplify exists once, in [`pipeline`]; every compiled
//! entry point (forward pass, loss + gradients, training step, validation)
//! is built by [`train::layout::Builder`] and read by
//! [`train::layout::Role`], never by position; `cli` parses arguments,
//! calls the library and formats what it returns. No file of `cli` imports
//! a sibling that imports it back.
//!
//! **Architecture Invariant:** an optimizer is one variant of
//! [`check::model::Optimizer`] (its options, defaults, ranges and hints, one
//! `match` each) and one arm of [`train::optim::build_updates`] (its state
//! leaves and update nodes) and of [`train::optim::step_scalars`] (its
//! per-step scalars); the training loop names no optimizer.
//!
//! **Architecture Invariant:** every fact about an op (name, arity, shape,
//! f64 scalar evaluation, derivative rule; sign and NaN facts in
//! `graph/facts.rs`) is an exhaustive `match` of the op table, and the code
//! generator has one arm per op; a new op does not compile until all of
//! them exist. The interpreter and the simplifier's constant folding share
//! the one scalar evaluation ([`graph::Op::eval_scalar`]).
//!
//! **Architecture Invariant:** the built-in functions and activations are
//! listed once, in `check/builtins.rs` (name, arity, the spec's formula);
//! `lower` maps each to graph nodes through one exhaustive `match`, and
//! builds an activation from its formula text, so a new activation is one
//! table row plus one arm.
//!
//! **Architecture Invariant:** each layer kind's facts (parameter names and
//! shapes, fan-in and fan-out for init, output shape, multiply-adds) live in
//! [`check::layer`]; weights files, lowering, the summary, `grad`'s legend and
//! `bench` ask a [`check::model::Layer`] instead of repeating
//! `NAME.weight [out, in]`.
//!
//! **Architecture Invariant:** tensors have any rank. The code generator
//! handles element-wise loops, broadcasts (by strides) and sums of any rank;
//! what it does not support (a transpose or product of rank > 2, say) is a
//! [`codegen::CodegenError`] naming the op and the shapes, never a guess.
//!
//! **Architecture Invariant:** the f64 interpreter (`graph::eval`) is a test
//! oracle only; `train`, `predict` and `grad --weights` always run
//! JIT-compiled code.
//!
//! **Architecture Invariant:** no input makes slope panic: user input gets a
//! [`diag::Diagnostic`]; panics are for broken internal invariants only.
//!
//! The first example of the language, as the spec writes it:
//!
//! ```text
#![doc = include_str!("../examples/xor.nn")]
//! ```

#![warn(missing_docs)]

pub mod check;
pub mod cli;
pub mod codegen;
pub mod data;
pub mod derivative;
pub mod diag;
pub mod diff;
pub mod equations;
pub mod export;
pub mod graph;
pub mod lower;
pub mod pipeline;
pub mod report;
pub mod simplify;
pub mod syntax;
pub mod train;
