//! Scalar expressions (spec §4), loosest first:
//! `comparison → sum → product → unary → power → atom`.
//!
//! Every rule returns the expression with its height (the depth of its tree)
//! so that no tree deeper than `MAX_DEPTH` is ever built: later stages and
//! `Drop` walk expressions recursively. Left-associative chains (`a+b+c`)
//! are built by loops into one flat [`ExprKind::Chain`] (a long sum is not
//! deep), `^` and unary `-` by bounded recursion.

use super::{PResult, Parser, lex, too_deep};
use crate::diag::{Diagnostic, Span};
use crate::syntax::MAX_DEPTH;
use crate::syntax::ast::{BinOp, Expr, ExprKind, Ident};

/// An expression and the height of its tree (a leaf has height 1).
pub(super) type Ex = (Expr, usize);

/// True if an expression can start at `i`.
pub(super) fn starts_expr(i: &str) -> bool {
    i.starts_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '(' | '-'))
}

/// A left-associative chain: the operand alone, a [`ExprKind::Binary`] for
/// two operands, or a flat [`ExprKind::Chain`] for more, whose height is one
/// more than its highest operand's (a long sum is not deep).
fn chain(first: Ex, rest: Vec<(BinOp, Ex, Span)>) -> Result<Ex, Box<Diagnostic>> {
    let mut rest = rest.into_iter();
    let Some((op, second, op_span)) = rest.next() else {
        return Ok(first);
    };
    if rest.len() == 0 {
        return binary(op, first, second, op_span);
    }
    let mut height = first.1.max(second.1) + 1;
    if height > MAX_DEPTH {
        return Err(too_deep(op_span));
    }
    let mut span = first.0.span.to(second.0.span);
    let mut operands = vec![(op, second.0)];
    for (op, (e, h), op_span) in rest {
        if h + 1 > MAX_DEPTH {
            return Err(too_deep(op_span));
        }
        height = height.max(h + 1);
        span = span.to(e.span);
        operands.push((op, e));
    }
    let kind = ExprKind::Chain {
        first: Box::new(first.0),
        rest: operands,
    };
    Ok((Expr { kind, span }, height))
}

fn binary(op: BinOp, lhs: Ex, rhs: Ex, op_span: Span) -> Result<Ex, Box<Diagnostic>> {
    let height = lhs.1.max(rhs.1) + 1;
    if height > MAX_DEPTH {
        return Err(too_deep(op_span));
    }
    let span = lhs.0.span.to(rhs.0.span);
    let kind = ExprKind::Binary {
        op,
        lhs: Box::new(lhs.0),
        rhs: Box::new(rhs.0),
    };
    Ok((Expr { kind, span }, height))
}

impl<'a> Parser<'a> {
    /// A whole input that must be one expression (what `slope diff` takes).
    pub(super) fn whole_expr(&mut self, i: &'a str) -> Result<Expr, Box<Diagnostic>> {
        let i = self.blanks(i);
        if !starts_expr(i) {
            return Err(self.expected(i, "expected an expression"));
        }
        let (rest, (e, _)) = self.expr(i)?;
        let rest = self.blanks_nl(rest);
        if !rest.is_empty() {
            return Err(self.trailing(rest, "after the expression"));
        }
        Ok(e)
    }

    /// The error for text left after a complete expression.
    pub(super) fn trailing(&self, rest: &str, place: &str) -> Box<Diagnostic> {
        if rest.starts_with(')') {
            let at = self.off(rest);
            return Box::new(
                Diagnostic::error("unexpected ')'", Span::new(at, at + 1))
                    .with_label("no '(' is open here")
                    .with_help("remove it, or add the missing '(' before it"),
            );
        }
        let (what, span) = self.found(rest);
        let mut d = Diagnostic::error(format!("unexpected {what} {place}"), span)
            .with_label("expected an operator here");
        if rest.starts_with('=') {
            d = d.with_help("comparisons are '<', '>', '<=' and '>='");
        } else if starts_expr(rest) {
            d = d.with_help("multiplication is written with '*'");
        }
        Box::new(d)
    }

    /// `expr = comparison ;`
    pub(super) fn expr(&mut self, i: &'a str) -> PResult<'a, Ex> {
        self.comparison(i)
    }

    /// `comparison = sum [ ( "<=" | ">=" | "<" | ">" ) sum ] ;` (no chaining)
    fn comparison(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let (rest, lhs) = self.sum(i)?;
        let r = self.blanks(rest);
        let Some((op, len)) = comparison_op(r) else {
            return Ok((rest, lhs));
        };
        let op_span = Span::new(self.off(r), self.off(r) + len);
        let r = self.operand(&r[len..], op.symbol(), op_span)?;
        let (rest, rhs) = self.sum(r)?;
        let r = self.blanks(rest);
        if let Some((second, len2)) = comparison_op(r) {
            let at = self.off(r);
            return Err(Box::new(
                Diagnostic::error(
                    "comparison operators cannot be chained",
                    Span::new(at, at + len2),
                )
                .with_label("a second comparison")
                .with_secondary(op_span, "the first comparison")
                .with_help(format!(
                    "add parentheses to say which comes first, e.g. '(a {} b) {} c'",
                    op.symbol(),
                    second.symbol()
                )),
            ));
        }
        Ok((rest, binary(op, lhs, rhs, op_span)?))
    }

    /// `sum = product { ( "+" | "-" ) product } ;`
    fn sum(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let (mut rest, first) = self.product(i)?;
        let mut operands = Vec::new();
        loop {
            let r = self.blanks(rest);
            let op = match r.as_bytes().first() {
                Some(b'+') => BinOp::Add,
                Some(b'-') => BinOp::Sub,
                _ => return Ok((rest, chain(first, operands)?)),
            };
            let op_span = Span::new(self.off(r), self.off(r) + 1);
            let r = self.operand(&r[1..], op.symbol(), op_span)?;
            let (r, rhs) = self.product(r)?;
            operands.push((op, rhs, op_span));
            rest = r;
        }
    }

    /// `product = unary { ( "*" | "/" ) unary } ;`
    fn product(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let (mut rest, first) = self.unary(i)?;
        let mut operands = Vec::new();
        loop {
            let r = self.blanks(rest);
            let op = match r.as_bytes().first() {
                Some(b'*') => BinOp::Mul,
                Some(b'/') => BinOp::Div,
                _ => return Ok((rest, chain(first, operands)?)),
            };
            let op_span = Span::new(self.off(r), self.off(r) + 1);
            let r = self.operand(&r[1..], op.symbol(), op_span)?;
            let (r, rhs) = self.unary(r)?;
            operands.push((op, rhs, op_span));
            rest = r;
        }
    }

    /// After an operator: skips blanks and line breaks (an operator at the end
    /// of a line continues the expression) and checks that an operand follows.
    fn operand(&mut self, i: &'a str, op: &str, op_span: Span) -> Result<&'a str, Box<Diagnostic>> {
        let r = self.blanks_nl(i);
        if starts_expr(r) {
            return Ok(r);
        }
        let (what, span) = self.found(r);
        Err(Box::new(
            Diagnostic::error(
                format!("expected an expression after '{op}', found {what}"),
                span,
            )
            .with_secondary(op_span, "this operator needs a right operand"),
        ))
    }

    /// `unary = "-" unary | power ;` (built with a loop: `---x` is three levels)
    fn unary(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let mut minus = Vec::new();
        let mut r = i;
        while r.starts_with('-') {
            let at = self.off(r);
            self.enter(Span::new(at, at + 1))?;
            minus.push(at);
            r = self.operand(&r[1..], "-", Span::new(at, at + 1))?;
        }
        let result = self.power(r);
        self.depth -= minus.len();
        let (rest, (mut e, mut height)) = result?;
        for &at in minus.iter().rev() {
            height += 1;
            if height > MAX_DEPTH {
                return Err(too_deep(Span::new(at, at + 1)));
            }
            let span = Span::new(at, e.span.end);
            e = Expr {
                kind: ExprKind::Neg(Box::new(e)),
                span,
            };
        }
        Ok((rest, (e, height)))
    }

    /// `power = atom [ "^" unary ] ;` (right-associative: the exponent is a
    /// `unary`, which may itself be a power or start with `-`)
    fn power(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let (rest, base) = self.atom(i)?;
        let r = self.blanks(rest);
        if !r.starts_with('^') {
            return Ok((rest, base));
        }
        let op_span = Span::new(self.off(r), self.off(r) + 1);
        let r = self.operand(&r[1..], "^", op_span)?;
        self.enter(op_span)?;
        let result = self.unary(r);
        self.leave();
        let (rest, exponent) = result?;
        Ok((rest, binary(BinOp::Pow, base, exponent, op_span)?))
    }

    /// `atom = number | call | ident | "(" expr ")" ;`
    fn atom(&mut self, i: &'a str) -> PResult<'a, Ex> {
        if i.starts_with('(') {
            return self.paren(i);
        }
        if let Ok((rest, name)) = lex::ident_text(i) {
            let ident = Ident {
                name: name.to_string(),
                span: self.span(i, rest),
            };
            let r = lex::skip_blanks(rest, false);
            if r.starts_with('(') {
                return self.call(ident, r);
            }
            let span = ident.span;
            let e = Expr {
                kind: ExprKind::Var(ident.name),
                span,
            };
            return Ok((rest, (e, 1)));
        }
        if i.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            let (rest, (value, text)) = self.number(i)?;
            let span = self.span(i, rest);
            return Ok((
                rest,
                (
                    Expr {
                        kind: ExprKind::Number { value, text },
                        span,
                    },
                    1,
                ),
            ));
        }
        if i.starts_with(')') {
            return Err(self.trailing(i, ""));
        }
        Err(self.expected(i, "expected an expression"))
    }

    /// `"(" expr ")"`, kept as [`ExprKind::Paren`].
    fn paren(&mut self, i: &'a str) -> PResult<'a, Ex> {
        let open = Span::new(self.off(i), self.off(i) + 1);
        self.enter(open)?;
        self.brackets += 1;
        let r = self.operand(&i[1..], "(", open)?;
        let (rest, (inner, height)) = self.expr(r)?;
        let rest = self.close(rest, ')', open)?;
        self.brackets -= 1;
        self.leave();
        let span = Span::new(open.start, self.off(rest));
        let e = Expr {
            kind: ExprKind::Paren(Box::new(inner)),
            span,
        };
        Ok((rest, (e, height + 1)))
    }

    /// Expects the closing bracket `close` of the bracket opened at `open`.
    pub(super) fn close(
        &self,
        i: &'a str,
        close: char,
        open: Span,
    ) -> Result<&'a str, Box<Diagnostic>> {
        let r = self.blanks(i);
        if let Some(rest) = r.strip_prefix(close) {
            return Ok(rest);
        }
        let opener = &self.src[open.start..open.end];
        let (what, span) = self.found(r);
        Err(Box::new(
            Diagnostic::error(format!("expected '{close}' to close '{opener}'"), span)
                .with_label(format!("found {what}"))
                .with_secondary(open, format!("'{opener}' opened here")),
        ))
    }

    /// `call = ident "(" [ expr { "," expr } ] ")" ;` (`i` is at the `(`)
    fn call(&mut self, func: Ident, i: &'a str) -> PResult<'a, Ex> {
        let open = Span::new(self.off(i), self.off(i) + 1);
        self.enter(open)?;
        self.brackets += 1;
        let mut args = Vec::new();
        let mut height = 1;
        let mut r = self.blanks(&i[1..]);
        if !r.starts_with(')') {
            loop {
                if !starts_expr(r) {
                    return Err(self.expected(r, "expected an argument"));
                }
                let (rest, (arg, h)) = self.expr(r)?;
                height = height.max(h + 1);
                args.push(arg);
                r = self.blanks(rest);
                match r.strip_prefix(',') {
                    Some(rest) => r = self.blanks(rest),
                    None => break,
                }
            }
        }
        let rest = self.close(r, ')', open)?;
        self.brackets -= 1;
        self.leave();
        let span = Span::new(func.span.start, self.off(rest));
        Ok((
            rest,
            (
                Expr {
                    kind: ExprKind::Call { func, args },
                    span,
                },
                height,
            ),
        ))
    }

    /// `number` (lexeme): its value and its text as written. Malformed
    /// numbers (`2x`, `1e`, `1.2.3`) and overflowing ones (`1e999`) are errors.
    pub(super) fn number(&mut self, i: &'a str) -> PResult<'a, (f64, String)> {
        let start = self.off(i);
        let Ok((rest, text)) = lex::number_text(i) else {
            return Err(self.expected(i, "expected a number"));
        };
        if rest.starts_with(lex::is_word_char) {
            let tail_len = rest.len() - rest.trim_start_matches(lex::is_word_char).len();
            let bad_len = text.len() + tail_len;
            let bad = &i[..bad_len];
            let mut d = Diagnostic::error(
                format!("invalid number '{bad}'"),
                Span::new(start, start + bad_len),
            );
            let tail = &rest[..tail_len];
            if tail.starts_with(['e', 'E']) && tail.len() == 1 {
                d = d.with_help(format!("an exponent needs digits, e.g. '{text}e-3'"));
            } else if lex::ident_text(tail).is_ok_and(|(r, _)| r.is_empty()) {
                d = d.with_help(format!(
                    "multiplication is written with '*': '{text}*{tail}'"
                ));
            }
            return Err(Box::new(d));
        }
        // `number_text` only accepts what `f64::from_str` accepts.
        let value: f64 = text.parse().unwrap_or(f64::NAN);
        if !value.is_finite() {
            return Err(Box::new(
                Diagnostic::error(format!("number '{text}' is too large"), self.span(i, rest))
                    .with_note("numbers must fit in a 64-bit float (at most about 1.8e308)"),
            ));
        }
        Ok((rest, (value, text.to_string())))
    }
}

/// The comparison operator at the start of `i`, with its length.
fn comparison_op(i: &str) -> Option<(BinOp, usize)> {
    if i.starts_with("<=") {
        Some((BinOp::Le, 2))
    } else if i.starts_with(">=") {
        Some((BinOp::Ge, 2))
    } else if i.starts_with('<') {
        Some((BinOp::Lt, 1))
    } else if i.starts_with('>') {
        Some((BinOp::Gt, 1))
    } else {
        None
    }
}
