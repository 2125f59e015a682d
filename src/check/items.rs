//! `activation` and `loss` items: names, parameters, the names used in their
//! formulas, and cycles among activations that call each other.

use super::model::Function;
use super::{BUILTIN_FUNCTIONS, BUILTIN_LOSSES, CONSTANTS, builtin_arity};
use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::{self, Expr, ExprKind, FuncDef, Item};
use std::collections::HashMap;

/// The checked `activation` and `loss` items (first definition of each name).
pub(super) struct Items {
    /// Activation items in source order.
    pub activations: Vec<Function>,
    /// Loss items in source order.
    pub losses: Vec<Function>,
}

/// Checks every `activation` and `loss` item of `file`.
pub(super) fn check_items(file: &ast::File, diags: &mut Vec<Diagnostic>) -> Items {
    let mut acts: Vec<&FuncDef> = Vec::new();
    let mut losses: Vec<&FuncDef> = Vec::new();
    // Name lookups go through maps so a file with thousands of items is not
    // checked in quadratic time; output order still follows `acts`/`losses`.
    let mut act_index: HashMap<&str, usize> = HashMap::new();
    let mut loss_index: HashMap<&str, usize> = HashMap::new();
    for item in &file.items {
        match item {
            Item::Activation(def) => {
                if declare(def, "activation", &acts, &act_index, diags) {
                    act_index.insert(def.name.name.as_str(), acts.len());
                    acts.push(def);
                }
            }
            Item::Loss(def) => {
                if declare(def, "loss", &losses, &loss_index, diags) {
                    loss_index.insert(def.name.name.as_str(), losses.len());
                    losses.push(def);
                }
            }
            Item::Model(_) | Item::Train(_) => {}
        }
    }

    let act_names: Vec<&str> = acts.iter().map(|d| d.name.name.as_str()).collect();
    let names = Names {
        activations: &act_names,
        activation_index: &act_index,
        loss_index: &loss_index,
    };
    // Calls between activations, per activation: (callee index, call span).
    let mut calls: Vec<Vec<(usize, Span)>> = Vec::new();
    for def in &acts {
        check_params(def, "activation", 1, diags);
        calls.push(check_body(def, "activation", &names, diags));
    }
    for def in &losses {
        check_params(def, "loss", 2, diags);
        check_body(def, "loss", &names, diags);
    }
    let before = diags.len();
    report_cycles(&act_names, &calls, diags);
    if diags.len() == before {
        // Without cycles, every activation and loss can be measured inlined.
        let callees: Vec<Vec<usize>> = calls
            .iter()
            .map(|c| c.iter().map(|(i, _)| *i).collect())
            .collect();
        super::expand::check_sizes(&acts, &losses, &callees, diags);
    }

    let to_fn = |d: &&FuncDef| Function {
        name: d.name.name.clone(),
        params: d.params.iter().map(|p| p.name.clone()).collect(),
        body: d.body.clone(),
        span: d.span,
    };
    Items {
        activations: acts.iter().map(to_fn).collect(),
        losses: losses.iter().map(to_fn).collect(),
    }
}

/// Reports a name that repeats an earlier item of its kind or a built-in;
/// returns true when the definition is the first of its name.
fn declare(
    def: &FuncDef,
    kind: &str,
    earlier: &[&FuncDef],
    index: &HashMap<&str, usize>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let name = def.name.name.as_str();
    let builtin = match kind {
        "activation" => BUILTIN_FUNCTIONS.iter().any(|(f, _)| *f == name) || name == "softmax",
        _ => BUILTIN_LOSSES.contains(&name),
    };
    if builtin {
        diags.push(
            Diagnostic::error(
                format!("{kind} '{name}' is already a built-in"),
                def.name.span,
            )
            .with_label("built-in name")
            .with_help(format!("choose another name, such as 'my_{name}'")),
        );
    }
    if let Some(first) = index.get(name).map(|&i| earlier[i]) {
        diags.push(
            Diagnostic::error(format!("{kind} '{name}' is defined twice"), def.name.span)
                .with_label("defined again here")
                .with_secondary(first.name.span, "first defined here"),
        );
        return false;
    }
    true
}

/// Checks the number of parameters and that they are distinct names.
fn check_params(def: &FuncDef, kind: &str, expected: usize, diags: &mut Vec<Diagnostic>) {
    let name = &def.name.name;
    if def.params.len() != expected {
        let span = match (def.params.first(), def.params.last()) {
            (Some(first), Some(last)) => first.span.to(last.span),
            _ => def.name.span,
        };
        let (want, example) = match kind {
            "activation" => (
                "exactly one parameter",
                format!("activation {name}(x) = ..."),
            ),
            _ => ("exactly two parameters", format!("loss {name}(y, t) = ...")),
        };
        diags.push(
            Diagnostic::error(
                format!(
                    "{kind} '{name}' must take {want}, found {}",
                    def.params.len()
                ),
                span,
            )
            .with_label(match def.params.len() {
                1 => "1 parameter".to_string(),
                n => format!("{n} parameters"),
            })
            .with_help(format!("write it as: {example}"))
            .with_note(match kind {
                "activation" => "an activation maps each pre-activation value x to its output",
                _ => "a loss compares a prediction y with its target t",
            }),
        );
    }
    for (i, p) in def.params.iter().enumerate() {
        if let Some(first) = def.params[..i].iter().find(|q| q.name == p.name) {
            diags.push(
                Diagnostic::error(format!("parameter '{}' is declared twice", p.name), p.span)
                    .with_label("declared again here")
                    .with_secondary(first.span, "first declared here"),
            );
        } else if CONSTANTS.contains(&p.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    format!("parameter '{}' would hide the constant {}", p.name, p.name),
                    p.span,
                )
                .with_label("this name is a constant")
                .with_help("choose another parameter name, such as 'x'"),
            );
        }
    }
}

/// The item names a formula may refer to.
struct Names<'a> {
    activations: &'a [&'a str],
    activation_index: &'a HashMap<&'a str, usize>,
    loss_index: &'a HashMap<&'a str, usize>,
}

/// Checks every variable and call in a formula; returns the calls to
/// activation items. The walk uses an explicit stack: the parser bounds
/// nesting of parentheses, but not the length of `a + b + c + ...` chains.
fn check_body(
    def: &FuncDef,
    kind: &str,
    names: &Names,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(usize, Span)> {
    let params: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
    let mut calls = Vec::new();
    let mut stack: Vec<&Expr> = vec![&def.body];
    while let Some(expr) = stack.pop() {
        match &expr.kind {
            ExprKind::Number { .. } => {}
            ExprKind::Var(v) => {
                if !params.contains(&v.as_str()) && !CONSTANTS.contains(&v.as_str()) {
                    diags.push(unknown_variable(v, expr.span, def, kind, &params));
                }
            }
            ExprKind::Call { func, args } => {
                // Push arguments in reverse so errors come out left to right
                // (they are sorted by position at the end anyway).
                stack.extend(args.iter().rev());
                if let Some(d) = check_call(func, args.len(), &params, names, &mut calls) {
                    diags.push(d);
                }
            }
            ExprKind::Neg(inner) | ExprKind::Paren(inner) => stack.push(inner),
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(rhs);
                stack.push(lhs);
            }
            ExprKind::Chain { first, rest } => {
                stack.extend(rest.iter().rev().map(|(_, c)| c));
                stack.push(first);
            }
        }
    }
    calls
}

fn unknown_variable(v: &str, span: Span, def: &FuncDef, kind: &str, params: &[&str]) -> Diagnostic {
    let mut d = Diagnostic::error(format!("unknown variable '{v}'"), span)
        .with_label(format!("not a parameter of '{}'", def.name.name));
    // Only parameters are suggested: with one-letter names every constant
    // would look like a typo of every variable.
    if let Some(s) = suggest(v, params.iter().copied()) {
        d = d.with_help(format!("did you mean '{s}'?"));
    }
    let listed: Vec<String> = params.iter().map(|p| format!("'{p}'")).collect();
    let note = match listed.len() {
        0 => format!("{kind} '{}' has no parameters", def.name.name),
        _ => format!(
            "{kind} '{}' can use its parameters ({}) and the constants 'e' and 'pi'",
            def.name.name,
            listed.join(", ")
        ),
    };
    d.with_note(note)
}

/// Resolves one call; records calls to activation items in `calls`.
fn check_call(
    func: &ast::Ident,
    n_args: usize,
    params: &[&str],
    names: &Names,
    calls: &mut Vec<(usize, Span)>,
) -> Option<Diagnostic> {
    let name = func.name.as_str();
    let arity = if let Some(arity) = builtin_arity(name) {
        arity
    } else if let Some(&i) = names.activation_index.get(name) {
        calls.push((i, func.span));
        1
    } else if names.loss_index.contains_key(name) {
        return Some(
            Diagnostic::error(format!("loss '{name}' cannot be called"), func.span)
                .with_label("a loss, not a function")
                .with_note("formulas may call built-in functions and activation items"),
        );
    } else if name == "softmax" {
        return Some(
            Diagnostic::error("'softmax' cannot be called in a formula", func.span)
                .with_label("not an element-wise function")
                .with_note("softmax normalises across a layer's outputs; use it as the activation of the last layer"),
        );
    } else if params.contains(&name) || CONSTANTS.contains(&name) {
        return Some(
            Diagnostic::error(format!("'{name}' is not a function"), func.span)
                .with_label("a variable, called like a function")
                .with_help("write a '*' for a product, e.g. 'x*(x + 1)'"),
        );
    } else {
        let candidates = BUILTIN_FUNCTIONS
            .iter()
            .map(|(f, _)| *f)
            .chain(names.activations.iter().copied());
        let mut d = Diagnostic::error(format!("unknown function '{name}'"), func.span)
            .with_label("not a built-in function or activation");
        if let Some(s) = suggest(name, candidates) {
            d = d.with_help(format!("did you mean '{s}'?"));
        }
        return Some(d);
    };
    if n_args == arity {
        return None;
    }
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    Some(
        Diagnostic::error(
            format!("'{name}' takes {arity} {}, found {n_args}", plural(arity)),
            func.span,
        )
        .with_label(format!("called with {n_args} {}", plural(n_args))),
    )
}

/// Finds cycles among activation items with an iterative depth-first search
/// and reports each as `activation 'f' calls itself: f -> g -> f`.
fn report_cycles(names: &[&str], calls: &[Vec<(usize, Span)>], diags: &mut Vec<Diagnostic>) {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let mut state = vec![State::New; names.len()];
    for root in 0..names.len() {
        if state[root] != State::New {
            continue;
        }
        // Each frame is an activation on the current path and the index of
        // the next call of it to follow.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = State::OnPath;
        while let Some(frame) = path.last_mut() {
            let (node, next) = *frame;
            let Some(&(callee, _)) = calls[node].get(next) else {
                state[node] = State::Done;
                path.pop();
                continue;
            };
            frame.1 += 1;
            match state[callee] {
                State::New => {
                    state[callee] = State::OnPath;
                    path.push((callee, 0));
                }
                State::OnPath => diags.push(cycle(names, calls, &path, callee)),
                State::Done => {}
            }
        }
    }
}

/// The diagnostic for the cycle that starts at `start` on `path` and closes
/// with the call just taken by the last frame.
fn cycle(
    names: &[&str],
    calls: &[Vec<(usize, Span)>],
    path: &[(usize, usize)],
    start: usize,
) -> Diagnostic {
    let from = path
        .iter()
        .position(|(n, _)| *n == start)
        .expect("a node marked on-path is on the path");
    // Each frame's last followed call (index `next - 1`) is the edge in the cycle.
    let edges: Vec<(usize, usize, Span)> = path[from..]
        .iter()
        .map(|&(n, next)| {
            let (callee, span) = calls[n][next - 1];
            (n, callee, span)
        })
        .collect();
    let mut chain: Vec<&str> = edges.iter().map(|(n, _, _)| names[*n]).collect();
    chain.push(names[start]);
    let (_, first_callee, first_span) = edges[0];
    let mut d = Diagnostic::error(
        format!(
            "activation '{}' calls itself: {}",
            names[start],
            chain.join(" -> ")
        ),
        first_span,
    )
    .with_label(format!(
        "'{}' calls '{}' here",
        names[start], names[first_callee]
    ));
    for &(caller, callee, span) in &edges[1..] {
        d = d.with_secondary(
            span,
            format!("'{}' calls '{}' here", names[caller], names[callee]),
        );
    }
    d.with_note("activations may call each other, but not recursively")
}
