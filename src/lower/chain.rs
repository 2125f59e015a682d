//! Binary expressions and chains (`a + b - c`, `a*b/c`) as graph nodes:
//! short chains as the nested binary nodes they mean, long sums and
//! products as one n-ary node, and a parenthesised left operand of the
//! same precedence spliced in, so that a file and its `slope fmt` output
//! lower to the same graph.

use crate::check::NESTED_CHAIN;
use crate::graph::{Graph, NodeId, Op};
use crate::syntax::ast::{BinOp, Expr, ExprKind};

/// `a op b`: subtraction and division in their canonical forms.
pub(super) fn binary(g: &mut Graph, op: BinOp, a: NodeId, b: NodeId) -> NodeId {
    match op {
        BinOp::Add => g.add2(a, b),
        BinOp::Sub => g.sub(a, b),
        BinOp::Mul => g.mul2(a, b),
        BinOp::Div => g.div(a, b),
        BinOp::Pow => g.pow(a, b),
        BinOp::Lt => g.elementwise(Op::Lt, &[a, b]),
        BinOp::Gt => g.elementwise(Op::Gt, &[a, b]),
        BinOp::Le => g.elementwise(Op::Le, &[a, b]),
        BinOp::Ge => g.elementwise(Op::Ge, &[a, b]),
    }
}

/// A chain `a op b op c ...` over its lowered operands (`rest` gives the
/// operators): the nested binary nodes it means when it is short, one
/// n-ary sum or product when it is longer than [`NESTED_CHAIN`], so that
/// the graph of a long sum is not as deep as it is long.
pub(super) fn chain(g: &mut Graph, operands: &[NodeId], ops: &[BinOp]) -> NodeId {
    let ops = || ops.iter().copied();
    let sum = ops().all(|op| matches!(op, BinOp::Add | BinOp::Sub));
    let product = ops().all(|op| matches!(op, BinOp::Mul | BinOp::Div));
    if operands.len() > NESTED_CHAIN && (sum || product) {
        let mut terms = vec![operands[0]];
        for (&b, op) in operands[1..].iter().zip(ops()) {
            terms.push(match op {
                BinOp::Sub => g.neg(b),
                BinOp::Div => g.recip(b),
                BinOp::Add | BinOp::Mul => b,
                BinOp::Pow | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                    unreachable!("a sum or product has only + - * /")
                }
            });
        }
        return if sum {
            g.add_n(&terms)
        } else {
            g.mul_n(&terms)
        };
    }
    let mut acc = operands[0];
    for (&b, op) in operands[1..].iter().zip(ops()) {
        acc = binary(g, op, acc, b);
    }
    acc
}

/// A binary expression or chain as its first operand and each further
/// operator with its operand, left to right. A left operand of the same
/// precedence is spliced in, parenthesised or not: `(a*b*c)/d*e` means
/// `a*b*c/d*e`, `slope fmt` prints it so, and both must lower to the same
/// graph (an n-ary product folds its constants in another order than a
/// nested one). Iterative: a long left spine is not recursion.
pub(super) fn left_operands(e: &Expr) -> (&Expr, Vec<(BinOp, &Expr)>) {
    let precedence = |e: &Expr| match &e.kind {
        ExprKind::Binary { op, .. } => Some(op.precedence()),
        ExprKind::Chain { rest, .. } => rest.first().map(|(op, _)| op.precedence()),
        _ => None,
    };
    let p = precedence(e);
    // Comparisons do not chain and `^` is right-associative.
    let splices = matches!(p, Some(2 | 3));
    let mut segments: Vec<Vec<(BinOp, &Expr)>> = Vec::new();
    let mut cur = e;
    loop {
        let next = match &cur.kind {
            ExprKind::Binary { op, lhs, rhs } => {
                segments.push(vec![(*op, &**rhs)]);
                lhs
            }
            ExprKind::Chain { first, rest } => {
                segments.push(rest.iter().map(|(op, c)| (*op, c)).collect());
                first
            }
            _ => break,
        };
        cur = next;
        while let ExprKind::Paren(inner) = &cur.kind {
            cur = inner;
        }
        if !splices || precedence(cur) != p {
            break;
        }
    }
    (cur, segments.into_iter().rev().flatten().collect())
}

/// A chain as the nested binary expressions it means (one level: its
/// operands stay as they are). Only for the built-in formulas, which are short.
pub(super) fn nested(first: &Expr, rest: &[(BinOp, Expr)]) -> Expr {
    let mut acc = first.clone();
    for (op, c) in rest {
        let span = acc.span.to(c.span);
        let kind = ExprKind::Binary {
            op: *op,
            lhs: Box::new(acc),
            rhs: Box::new(c.clone()),
        };
        acc = Expr { kind, span };
    }
    acc
}
