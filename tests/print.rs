//! The text and LaTeX printers on hand-built canonical graphs: minimal
//! parentheses, `a - b` and `a/b` restored, right-associative `^`.

use slope::graph::print::{latex, text};
use slope::graph::{Graph, LeafKind, NodeId, Op, Shape};
use slope::simplify::simplify;

struct B {
    g: Graph,
}

impl B {
    fn new() -> B {
        B { g: Graph::new() }
    }
    fn v(&mut self, name: &str) -> NodeId {
        self.g.leaf(name, LeafKind::Scalar, Shape(vec![]))
    }
    fn c(&mut self, v: f64) -> NodeId {
        self.g.constant(v)
    }
    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        self.g.add(op, args).expect("scalar operands always have equal shapes")
    }
    fn neg(&mut self, a: NodeId) -> NodeId {
        let m = self.c(-1.0);
        self.op(Op::Mul, &[m, a])
    }
    fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let nb = self.neg(b);
        self.op(Op::Add, &[a, nb])
    }
    fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let r = self.op(Op::Recip, &[b]);
        self.op(Op::Mul, &[a, r])
    }
    fn pow(&mut self, a: NodeId, k: f64) -> NodeId {
        let k = self.c(k);
        self.op(Op::Pow, &[a, k])
    }
    fn simp(&mut self, id: NodeId) -> NodeId {
        simplify(&mut self.g, &[id]).roots[0]
    }
}

#[test]
fn subtraction_and_division_are_restored() {
    let mut b = B::new();
    let (x, y) = (b.v("x"), b.v("y"));
    let e = b.sub(x, y);
    assert_eq!(text(&b.g, e), "x - y");
    let e = b.div(x, y);
    assert_eq!(text(&b.g, e), "x/y");
    let s = b.op(Op::Sigmoid, &[x]);
    let one = b.c(1.0);
    let comp = b.sub(one, s);
    let d = b.op(Op::Mul, &[s, comp]);
    assert_eq!(text(&b.g, d), "sigmoid(x)*(1 - sigmoid(x))");
}

#[test]
fn powers_and_unary_minus() {
    let mut b = B::new();
    let x = b.v("x");
    let x2 = b.pow(x, 2.0);
    let e = b.neg(x2);
    assert_eq!(text(&b.g, e), "-x^2");
    let m = b.neg(x);
    let e = b.pow(m, 2.0);
    assert_eq!(text(&b.g, e), "(-x)^2");
    let e = b.pow(x2, 3.0);
    assert_eq!(text(&b.g, e), "(x^2)^3");
    let e = b.pow(x, -2.0);
    assert_eq!(text(&b.g, e), "1/x^2");
    let two = b.c(2.0);
    let sq = b.op(Op::Sqrt, &[x]);
    let den = b.op(Op::Mul, &[two, sq]);
    let one = b.c(1.0);
    let e = b.div(one, den);
    let e = b.simp(e);
    assert_eq!(text(&b.g, e), "1/(2*sqrt(x))");
    assert_eq!(latex(&b.g, e), "\\frac{1}{2 \\cdot \\sqrt{x}}");
}

#[test]
fn right_associative_power_chain() {
    let mut b = B::new();
    let (x, y, z) = (b.v("x"), b.v("y"), b.v("z"));
    let yz = b.op(Op::Pow, &[y, z]);
    let e = b.op(Op::Pow, &[x, yz]);
    assert_eq!(text(&b.g, e), "x^y^z");
    let n = b.v("n");
    let m1 = b.c(-1.0);
    let nm1 = b.op(Op::Add, &[n, m1]);
    let p = b.op(Op::Pow, &[x, nm1]);
    let e = b.op(Op::Mul, &[n, p]);
    let e = b.simp(e);
    assert_eq!(text(&b.g, e), "n*x^(n - 1)");
}
