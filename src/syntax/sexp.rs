//! A compact s-expression dump of the AST, for snapshots and debugging.
//!
//! Expressions are fully parenthesised so precedence is visible:
//! `-x^2` dumps as `(neg (^ x 2))`. Parentheses written in the source show
//! as `(paren ...)`. Spans are left out; they are tested separately.

use super::ast::{Expr, ExprKind, File, Item, Stmt, Value, ValueKind};
use std::fmt::Write;

/// One line per item, e.g. `(model xor (input 2) (dense 4 tanh))`.
pub fn file(file: &File) -> String {
    let mut out = String::new();
    for item in &file.items {
        out.push_str(&self::item(item));
        out.push('\n');
    }
    for c in &file.comments {
        let _ = writeln!(out, "(comment {:?})", c.text);
    }
    out
}

/// One item.
pub fn item(item: &Item) -> String {
    match item {
        Item::Activation(f) | Item::Loss(f) => {
            let kw = if matches!(item, Item::Activation(_)) {
                "activation"
            } else {
                "loss"
            };
            let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
            format!(
                "({kw} {} ({}) {})",
                f.name.name,
                params.join(" "),
                expr(&f.body)
            )
        }
        Item::Model(b) | Item::Train(b) => {
            let mut s = format!("({}", b.keyword.name);
            if let Some(name) = &b.name {
                let _ = write!(s, " {}", name.name);
            }
            for stmt in &b.stmts {
                let _ = write!(s, "\n  {}", self::stmt(stmt));
            }
            s.push(')');
            s
        }
    }
}

/// One statement: `(dense 4 tanh (init he))`.
pub fn stmt(stmt: &Stmt) -> String {
    let mut s = format!("({}", stmt.keyword.name);
    for v in &stmt.values {
        let _ = write!(s, " {}", value(v));
    }
    for o in &stmt.options {
        let _ = write!(s, " (= {} {})", o.key.name, value(&o.value));
    }
    s.push(')');
    s
}

/// One value: numbers as written, strings quoted, lists in brackets.
pub fn value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Number { text, .. } => text.clone(),
        ValueKind::Size { text, .. } => format!("(size {text})"),
        ValueKind::Ident(name) => name.clone(),
        ValueKind::Str(s) => format!("{s:?}"),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::List(items) => {
            let parts: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", parts.join(" "))
        }
    }
}

/// One expression, fully parenthesised.
pub fn expr(e: &Expr) -> String {
    expr_with(e, true)
}

/// The file's items (no comments) with written parentheses left out: two
/// files with the same `bare` dump have the same meaning and layout of items,
/// which is what `slope fmt` must preserve.
pub fn file_bare(file: &File) -> String {
    let mut out = String::new();
    for it in &file.items {
        let mut one = item(it);
        if let Item::Activation(f) | Item::Loss(f) = it {
            let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
            let kw = if matches!(it, Item::Activation(_)) {
                "activation"
            } else {
                "loss"
            };
            one = format!(
                "({kw} {} ({}) {})",
                f.name.name,
                params.join(" "),
                expr_with(&f.body, false)
            );
        }
        out.push_str(&one);
        out.push('\n');
    }
    out
}

/// One expression; `parens` says whether written parentheses are shown.
pub fn expr_with(e: &Expr, parens: bool) -> String {
    let expr = |e: &Expr| expr_with(e, parens);
    match &e.kind {
        ExprKind::Number { text, .. } => text.clone(),
        ExprKind::Var(name) => name.clone(),
        ExprKind::Call { func, args } => {
            let mut s = format!("(call {}", func.name);
            for a in args {
                let _ = write!(s, " {}", expr(a));
            }
            s.push(')');
            s
        }
        ExprKind::Neg(inner) => format!("(neg {})", expr(inner)),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), expr(lhs), expr(rhs))
        }
        // Printed as the nested operations it means: `(+ (+ a b) c)`.
        ExprKind::Chain { first, rest } => {
            let mut s: String = rest
                .iter()
                .rev()
                .map(|(op, _)| format!("({} ", op.symbol()))
                .collect();
            s.push_str(&expr(first));
            for (_, operand) in rest {
                let _ = write!(s, " {})", expr(operand));
            }
            s
        }
        ExprKind::Paren(inner) if parens => format!("(paren {})", expr(inner)),
        ExprKind::Paren(inner) => expr(inner),
    }
}
