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
    // Exact constants print as their formulas in LaTeX too.
    let (out, _, _) = slope(&["diff", "sqrt(2/pi)*x + x^2/sqrt(2*pi)", "--latex"]);
    assert_eq!(out, "\\sqrt{2/\\pi} \\cdot x + \\sqrt{2/\\pi}\n");
}

#[test]
fn grad_latex_names_each_side_of_a_double_name() {
    // The output line `y = z3 = ...` names one node twice.
    let (out, err, code) = slope(&["grad", "examples/custom.nn", "--latex"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\ny = z_{3} &= W_{3} a_{2} + b_{3} \\\\\n"),
        "{out}"
    );
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

/// Writes `src` to a fresh `.nn` file in the temporary directory.
fn model_file(name: &str, src: &str) -> String {
    let dir = std::env::temp_dir().join(format!("slope-symbolic-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    let path = dir.join(name);
    std::fs::write(&path, src).expect("the temporary directory is writable");
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

#[test]
fn grad_json_has_every_section_and_parses() {
    let (out, err, code) = slope(&["grad", "examples/xor.nn", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("grad --json prints JSON");
    for key in [
        "forward",
        "activation_derivatives",
        "backprop",
        "notes",
        "legend",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {out}");
    }
    let backprop = v["backprop"].as_array().expect("backprop is a list");
    assert_eq!(backprop[0]["lhs"], "δ2 = ∂ℓ/∂z2");
    assert_eq!(backprop[0]["rhs"], "y - t");
    assert_eq!(v["activation_derivatives"][0]["rhs"], "1 - a1^2", "{out}");
}

/// With K > 1 outputs the loss is a mean over B·K elements: δ_L carries the
/// 1/K of one row's mean over its outputs, and the note says so.
/// By hand: d/dz (1/K)·Σ_k (y_k - t_k)^2 = (2/K)·(y - t) for identity outputs;
/// with sigmoid outputs the chain rule adds y*(1 - y); bce from the logits
/// gives (y - t)/K.
#[test]
fn batch_note_states_the_scaling_for_k_outputs() {
    let cases = [
        (
            "mse3.nn",
            "model m {\n input 2\n dense 4 tanh\n dense 3\n loss mse\n}\n",
            "δ2 = ∂ℓ/∂z2 = 2*(y - t)/3",
            "B·K = B·3 elements",
        ),
        (
            "custom3.nn",
            "loss sq(y, t) = (y - t)^2\nmodel m {\n input 2\n dense 3 sigmoid\n loss sq\n}\n",
            "δ1 = ∂ℓ/∂z1 = 2*y*(1 - y)*(y - t)/3",
            "(the 1/3 is in δ1)",
        ),
        (
            "bce2.nn",
            "model m {\n input 2\n dense 2 sigmoid\n loss bce\n}\n",
            "δ1 = ∂ℓ/∂z1 = (y - t)/2",
            "K = 2 outputs",
        ),
    ];
    for (name, src, delta, note) in cases {
        let path = model_file(name, src);
        let (out, err, code) = slope(&["grad", &path]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(delta), "{name}: {out}");
        assert!(out.contains(note), "{name}: {out}");
        assert!(out.contains("each gradient is the mean of the per-sample gradients"));
    }
    let (out, _, _) = slope(&["grad", "examples/xor.nn"]);
    assert!(out.contains(
        "# for a batch of B rows, each gradient is the mean of the per-sample gradients"
    ));
}

/// Every element-wise right-hand side of `slope grad` (activation
/// derivatives, and any equation without matrix notation) is `.nn` syntax.
#[test]
fn grad_elementwise_parts_paste_back() {
    for file in [
        "examples/xor.nn",
        "examples/custom.nn",
        "examples/iris.nn",
        "examples/digits.nn",
    ] {
        let (out, err, code) = slope(&["grad", file, "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("grad --json prints JSON");
        let mut checked = 0;
        for section in ["activation_derivatives", "backprop", "forward"] {
            for eq in v[section].as_array().expect("sections are lists") {
                let rhs = eq["rhs"].as_str().expect("rhs is a string");
                let matrix = ["·", "⊙", "ᵀ", "onehot", "mean(", "δ"]
                    .iter()
                    .any(|m| rhs.contains(m));
                if !matrix {
                    slope::syntax::parse_expr(rhs)
                        .unwrap_or_else(|d| panic!("{file}: {rhs} does not parse: {d:?}"));
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "{file}");
    }
}

/// softsign and mish are built-ins: `slope diff` prints their derivatives
/// by the ordinary rules (checked against finite differences in
/// tests/derivatives.rs), and a network using them gets its equations, with
/// the default init `glorot` shown by `slope check`.
#[test]
fn softsign_and_mish_are_builtins() {
    let (out, err, code) = slope(&["diff", "softsign(x)"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1/(abs(x) + 1) - abs(x)/(abs(x) + 1)^2\n");
    let (out, err, code) = slope(&["diff", "mish(x)"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "tanh(softplus(x)) + x*sigmoid(x)*(1 - tanh(softplus(x))^2)\n"
    );
    let file = model_file(
        "softsign_mish.nn",
        "model m {\n    input 2\n    dense 4 softsign\n    dense 3 mish\n    dense 1 sigmoid\n    loss bce\n}\n",
    );
    let (out, err, code) = slope(&["grad", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("softsign'(z1) = "), "{out}");
    assert!(out.contains("mish'(z2) = "), "{out}");
    let (out, err, code) = slope(&["check", &file]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("glorot").count(), 3, "{out}");
}
