//! Canonical formatting, for `slope fmt`.
//!
//! The canonical form: one blank line between items; blocks indented by four
//! spaces, one statement per line; single spaces between values; `key=value`
//! without spaces; lists as `[a, b]`; numbers kept as written; strings
//! re-escaped; expressions with the fewest parentheses that keep their tree,
//! spaces around `+ -` and comparisons, none around `* / ^`.
//!
//! Comments stay where they were: a comment alone on its line stays on its
//! own line before the next line of code; a comment after code stays at the
//! end of that line. Blank lines inside blocks and between comments are
//! kept, collapsed to one. Formatting is idempotent and `parse(format(f))`
//! equals `parse(f)` up to spans and redundant parentheses.

use super::ast::{
    BinOp, Block, Comment, Expr, ExprKind, File, FuncDef, Item, Stmt, Value, ValueKind,
};
use super::parser::lex::skip_blanks;
use crate::diag::Span;
use std::fmt::Write;

/// The indentation of statements inside a block.
const INDENT: &str = "    ";

/// Formats a parsed file; `src` is the text it was parsed from (for the
/// comments' places and blank lines). The file should have parsed without
/// errors: the formatter prints only what the AST holds.
pub fn format(file: &File, src: &str) -> String {
    let mut w = Writer {
        src,
        comments: &file.comments,
        next_comment: 0,
        out: String::new(),
        last_end: None,
        last_unit_end: None,
        force_blank: false,
        no_blank: false,
    };
    for item in &file.items {
        w.item(item);
        w.force_blank = true;
    }
    w.flush_comments(usize::MAX, "");
    w.out
}

/// An expression in canonical form with minimal parentheses.
pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

struct Writer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    /// The first comment not yet printed.
    next_comment: usize,
    out: String,
    /// Source end of the last thing printed (comment or code), for blank lines.
    last_end: Option<usize>,
    /// Source end of the last code line printed, if nothing came after it,
    /// so a comment after it on the same source line can join its line.
    last_unit_end: Option<usize>,
    /// Put a blank line before the next thing (between items).
    force_blank: bool,
    /// Never a blank line before the next thing (after `{`).
    no_blank: bool,
}

impl Writer<'_> {
    fn item(&mut self, item: &Item) {
        match item {
            Item::Activation(f) => self.func("activation", f),
            Item::Loss(f) => self.func("loss", f),
            Item::Model(b) | Item::Train(b) => self.block(b),
        }
    }

    fn func(&mut self, keyword: &str, f: &FuncDef) {
        let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
        let line = format!(
            "{keyword} {}({}) = {}",
            f.name.name,
            params.join(", "),
            expr(&f.body)
        );
        self.unit(f.span, &line, "", "");
    }

    fn block(&mut self, b: &Block) {
        let mut header = b.keyword.name.clone();
        if let Some(name) = &b.name {
            header.push(' ');
            header.push_str(&name.name);
        }
        // The `{` is the first thing after the name (the block parsed).
        let after_name = b.name.as_ref().map_or(b.keyword.span.end, |n| n.span.end);
        let brace = self.src.len() - skip_blanks(&self.src[after_name..], true).len();
        let close = Span::new(b.span.end.saturating_sub(1), b.span.end);
        let has_inner_comments = self.comments[self.next_comment..]
            .iter()
            .take_while(|c| c.span.start < close.start)
            .any(|c| c.span.start > brace);
        if b.stmts.is_empty() && !has_inner_comments {
            header.push_str(" {}");
            self.unit(Span::new(b.keyword.span.start, b.span.end), &header, "", "");
            return;
        }
        header.push_str(" {");
        self.unit(Span::new(b.keyword.span.start, brace + 1), &header, "", "");
        self.no_blank = true;
        for stmt in &b.stmts {
            self.unit(stmt.span, &statement(stmt), INDENT, INDENT);
        }
        self.no_blank_before_brace(close);
        self.unit(close, "}", INDENT, "");
    }

    /// Comments just before `}` may be separated by a blank line from the
    /// statements, but the brace itself never is.
    fn no_blank_before_brace(&mut self, close: Span) {
        self.flush_comments(close.start, INDENT);
        self.no_blank = true;
    }

    /// Prints one line of code whose source is `span`: first the comments
    /// before it (at `comment_indent`), then the line (at `indent`).
    fn unit(&mut self, span: Span, text: &str, comment_indent: &str, indent: &str) {
        self.flush_comments(span.start, comment_indent);
        self.separate(span.start);
        let _ = writeln!(self.out, "{indent}{text}");
        self.last_end = Some(span.end);
        self.last_unit_end = Some(span.end);
    }

    /// Prints the comments that start before `pos`.
    fn flush_comments(&mut self, pos: usize, indent: &str) {
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.span.start >= pos {
                return;
            }
            self.next_comment += 1;
            let own_line = self.src[..c.span.start]
                .trim_end_matches([' ', '\t'])
                .ends_with('\n')
                || self.src[..c.span.start]
                    .trim_end_matches([' ', '\t'])
                    .is_empty();
            if !own_line && self.last_unit_end.is_some_and(|e| e <= c.span.start) {
                // A comment after code: it joins the line of the code before it.
                self.out.pop();
                let _ = writeln!(self.out, " #{}", c.text);
                self.last_end = Some(c.span.end);
                self.last_unit_end = None;
                continue;
            }
            self.separate(c.span.start);
            let _ = writeln!(self.out, "{indent}#{}", c.text);
            self.last_end = Some(c.span.end);
            self.last_unit_end = None;
        }
    }

    /// Before a thing starting at `start`: a blank line if one is due.
    fn separate(&mut self, start: usize) {
        let blank = match self.last_end {
            None => false,
            Some(_) if self.no_blank => false,
            Some(_) if self.force_blank => true,
            Some(end) => has_blank_line(&self.src[end.min(start)..start]),
        };
        if blank {
            self.out.push('\n');
        }
        self.force_blank = false;
        self.no_blank = false;
    }
}

/// True if `between` (text between two things) holds an empty line.
fn has_blank_line(between: &str) -> bool {
    let mut lines = between.split('\n');
    lines.next();
    let mut middle: Vec<&str> = lines.collect();
    middle.pop();
    middle.iter().any(|l| l.trim().is_empty())
}

/// A statement on one line: `dense 4 tanh init=he`.
fn statement(stmt: &Stmt) -> String {
    let mut s = stmt.keyword.name.clone();
    for v in &stmt.values {
        s.push(' ');
        write_value(&mut s, v);
    }
    for o in &stmt.options {
        let _ = write!(s, " {}=", o.key.name);
        write_value(&mut s, &o.value);
    }
    s
}

fn write_value(out: &mut String, v: &Value) {
    match &v.kind {
        ValueKind::Number { text, .. } | ValueKind::Size { text, .. } => out.push_str(text),
        ValueKind::Ident(name) => out.push_str(name),
        ValueKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ValueKind::Str(s) => {
            out.push('"');
            for c in s.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        ValueKind::List(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
    }
}

/// Binding strength of an expression as printed: comparison 1, `+ -` 2,
/// `* /` 3, unary `-` 4, `^` 5, atoms 6. Parentheses are transparent.
fn strength(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary { op, .. } => op.precedence(),
        ExprKind::Chain { rest, .. } => rest.first().map_or(6, |(op, _)| op.precedence()),
        ExprKind::Neg(_) => 4,
        ExprKind::Paren(inner) => strength(inner),
        ExprKind::Number { .. } | ExprKind::Var(_) | ExprKind::Call { .. } => 6,
    }
}

/// Writes `e` in parentheses if `needed`.
fn write_operand(out: &mut String, e: &Expr, needed: bool) {
    if needed {
        out.push('(');
        write_expr(out, e);
        out.push(')');
    } else {
        write_expr(out, e);
    }
}

fn write_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Number { text, .. } => out.push_str(text),
        ExprKind::Var(name) => out.push_str(name),
        ExprKind::Paren(inner) => write_expr(out, inner),
        ExprKind::Call { func, args } => {
            out.push_str(&func.name);
            out.push('(');
            for (k, a) in args.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a);
            }
            out.push(')');
        }
        ExprKind::Neg(inner) => {
            // The operand of `-` is a `unary`: a power, another `-`, or an atom.
            out.push('-');
            write_operand(out, inner, strength(inner) < 4);
        }
        ExprKind::Chain { first, rest } => {
            // As the nested `Binary` it stands for: left-associative, so
            // only a right operand of the same strength keeps parentheses.
            let p = strength(e);
            write_operand(out, first, strength(first) < p);
            for (op, operand) in rest {
                write_op(out, *op);
                write_operand(out, operand, strength(operand) <= p);
            }
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let p = op.precedence();
            let (lhs_parens, rhs_parens) = match op {
                // `^` is right-associative and its exponent is a `unary`.
                BinOp::Pow => (strength(lhs) <= p, strength(rhs) < 4),
                // Comparisons do not chain: both sides bind tighter.
                BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                    (strength(lhs) <= p, strength(rhs) <= p)
                }
                // Left-associative: `a - (b - c)` keeps its parentheses.
                _ => (strength(lhs) < p, strength(rhs) <= p),
            };
            write_operand(out, lhs, lhs_parens);
            write_op(out, *op);
            write_operand(out, rhs, rhs_parens);
        }
    }
}

/// `*`, `/` and `^` tight, other operators between spaces.
fn write_op(out: &mut String, op: BinOp) {
    match op {
        BinOp::Mul | BinOp::Div | BinOp::Pow => out.push_str(op.symbol()),
        _ => {
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
        }
    }
}
