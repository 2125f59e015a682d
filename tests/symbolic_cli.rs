//! `slope diff`, `slope grad` and `slope graph` through the binary, with
//! insta snapshots of what users read.

use assert_cmd::Command;

fn slope(args: &[&str]) -> (String, String, i32) {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .args(args)
        .output()
        .expect("the slope binary runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn grad_equations_of_the_examples() {
    insta::glob!("../examples", "*.nn", |path| {
        let p = path.to_str().expect("example paths are UTF-8");
        let (out, err, code) = slope(&["grad", p]);
        assert_eq!(code, 0, "{err}");
        insta::assert_snapshot!(out);
    });
}

#[test]
fn grad_equations_in_latex() {
    let (out, err, code) = slope(&["grad", "examples/xor.nn", "--latex"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
}

#[test]
fn diff_steps() {
    let mut all = String::new();
    for e in [
        "x^3",
        "sigmoid(x)",
        "sin(x^2)",
        "x*exp(x)",
        "log(x)/x",
        "tanh(2*x) + 0*x",
        "x*log(x) - x",
        "leaky_relu(x)",
        "swish(x)",
        "(2*x + 1)^3",
    ] {
        let (out, err, code) = slope(&["diff", e, "--steps"]);
        assert_eq!(code, 0, "{err}");
        all += &format!("$ slope diff '{e}' --steps\n{out}\n");
    }
    insta::assert_snapshot!(all);
}

#[test]
fn diff_accepts_a_leading_minus_and_wrt_anywhere() {
    assert_eq!(slope(&["diff", "-x^2"]).0, "-2*x\n");
    assert_eq!(slope(&["diff", "--wrt", "y", "-x*y^2"]).0, "-2*x*y\n");
    assert_eq!(slope(&["diff", "-x*y^2", "--wrt", "y"]).0, "-2*x*y\n");
}

#[test]
fn diff_json_and_latex() {
    let (out, _, _) = slope(&["diff", "x^3", "--json"]);
    assert_eq!(
        out,
        "{\"expr\": \"x^3\", \"wrt\": \"x\", \"derivative\": \"3*x^2\"}\n"
    );
    let (out, _, _) = slope(&["diff", "sqrt(x)", "--latex"]);
    assert_eq!(out, "\\frac{1}{2 \\cdot \\sqrt{x}}\n");
}

#[test]
fn diff_reports_bad_expressions() {
    let (out, err, code) = slope(&["diff", "x + * 2"]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(err.contains("<expr>:1:"), "{err}");
    let (_, err, code) = slope(&["diff", "foo(x)"]);
    assert_eq!(code, 1);
    assert!(err.contains("<expr>:1:1"), "{err}");
    let (_, _, code) = slope(&["diff", "x", "--wrt", "2x"]);
    assert_eq!(code, 2);
}

#[test]
fn graph_is_deterministic_dot() {
    let (a, err, code) = slope(&["graph", "examples/xor.nn", "--grad"]);
    assert_eq!(code, 0, "{err}");
    let (b, _, _) = slope(&["graph", "examples/xor.nn", "--grad"]);
    assert_eq!(a, b);
    assert!(a.starts_with("digraph slope {"));
    let (out, _, _) = slope(&["graph", "examples/xor.nn"]);
    insta::assert_snapshot!(out);
}
