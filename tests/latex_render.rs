//! `slope grad --latex` is a LaTeX fragment that pastes: its only non-math
//! lines are `%` comments, and every formula block renders with the real
//! KaTeX (0.16, run by the `katex` crate's embedded JavaScript engine).
//! `slope diff --latex` prints one formula, which renders too.
//!
//! Checked for every example and for models whose equations print notes,
//! `where`, custom names with `_`, and a double name (`y = z3`).

use assert_cmd::Command;

fn slope(args: &[&str]) -> String {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .args(args)
        .output()
        .expect("the slope binary runs");
    assert!(
        out.status.success(),
        "slope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("slope prints UTF-8")
}

/// Renders `tex` with KaTeX in display mode; errors are KaTeX's parse errors.
fn katex(tex: &str) -> Result<String, String> {
    let opts = katex::Opts::builder()
        .display_mode(true)
        .throw_on_error(true)
        .build()
        .expect("the options are valid");
    katex::render_with_opts(tex, &opts).map_err(|e| format!("{e}"))
}

/// The `align*` environments of a `--latex` fragment, after checking that
/// every line outside them is blank or a `%` comment and that none inside
/// is blank (a paragraph break is an error in math mode).
fn environments(fragment: &str) -> Vec<String> {
    let mut envs = Vec::new();
    let mut open: Option<String> = None;
    for (i, line) in fragment.lines().enumerate() {
        let at = format!("line {}: {line:?}\n{fragment}", i + 1);
        match &mut open {
            None if line == "\\begin{align*}" => open = Some(format!("{line}\n")),
            None => assert!(line.is_empty() || line.starts_with('%'), "{at}"),
            Some(env) => {
                assert!(!line.trim().is_empty(), "blank line in align*: {at}");
                assert!(!line.starts_with('#'), "{at}");
                *env += line;
                *env += "\n";
                if line == "\\end{align*}" {
                    envs.extend(open.take());
                }
            }
        }
    }
    assert!(open.is_none(), "an align* is not closed:\n{fragment}");
    envs
}

/// Writes `src` to a fresh `.nn` file in the temporary directory.
fn model_file(name: &str, src: &str) -> String {
    let dir = std::env::temp_dir().join(format!("slope-latex-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    let path = dir.join(name);
    std::fs::write(&path, src).expect("the temporary directory is writable");
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

/// The files whose `slope grad --latex` is checked.
fn files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir("examples")
        .expect("examples/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .map(|p| p.to_str().expect("example paths are UTF-8").to_string())
        .collect();
    files.sort();
    files.push(model_file(
        "mse3.nn",
        "model m {\n input 2\n dense 4 leaky_relu\n dense 3 softsign\n dense 3\n loss mse\n}\n",
    ));
    files.push(model_file(
        "custom_names.nn",
        "activation my_act(x) = where(x > 0, x, 0.1*x) + x^3/6\n\
         loss my_loss(y, t) = (y - t)^2/(1 + abs(y - t)) + exp(-t)*log(1 + y^2)\n\
         model m {\n input 3\n dense 5 my_act\n dense 2 elu\n loss my_loss\n}\n",
    ));
    files
}

#[test]
fn every_grad_formula_renders_with_katex() {
    let mut rendered = 0;
    for file in files() {
        let out = slope(&["grad", &file, "--latex"]);
        let envs = environments(&out);
        assert_eq!(envs.len(), out.matches("\\begin{align*}").count(), "{out}");
        assert!(envs.len() >= 2, "{file}: {out}");
        for env in envs {
            let html = katex(&env).unwrap_or_else(|e| panic!("{file}: KaTeX rejects\n{env}\n{e}"));
            assert!(html.contains("katex-display"), "{html}");
            rendered += 1;
        }
        // Every equation row aligns on `&=`: one per row of the text output.
        let rows = out.lines().filter(|l| l.contains(" &= ")).count();
        let text = slope(&["grad", &file]);
        let equations = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(rows, equations, "{file}:\n{out}");
    }
    assert!(rendered >= 12, "{rendered}");
}

/// The old output (`#` comment lines mixed with formulas) is what KaTeX
/// rejects: the check above can fail.
#[test]
fn katex_rejects_hash_comments() {
    assert!(katex("# forward").is_err());
    assert!(katex("\\begin{align*}\n# note\nx &= 1\n\\end{align*}").is_err());
    assert!(katex("\\begin{align*}\n% note\nx &= 1\n\\end{align*}").is_ok());
}

#[test]
fn diff_latex_is_one_formula_that_renders() {
    for expr in [
        "x^3",
        "sigmoid(x)",
        "sqrt(2/pi)*x + x^2/sqrt(2*pi)",
        "log(x)/x",
        "where(x > 0, x, 0.01*x)",
        "abs(x)*max(x, 1)",
        "softplus(x)*tanh(x)",
        "gelu(x)",
    ] {
        let out = slope(&["diff", expr, "--latex"]);
        assert_eq!(out.lines().count(), 1, "{out}");
        katex(out.trim_end()).unwrap_or_else(|e| panic!("{expr}: {out}\n{e}"));
    }
}

/// Where a TeX engine is installed (`pdflatex`, Debian's
/// texlive-latex-base), every example's `--latex` output, pasted into a
/// standalone amsmath document, compiles without an error. Skipped, with a
/// note, where there is none: the KaTeX test above runs everywhere.
#[test]
fn grad_latex_compiles_in_a_document_where_pdflatex_exists() {
    let found = std::process::Command::new("pdflatex")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: no pdflatex on this machine; the LaTeX document was not compiled");
        return;
    }
    let dir = std::env::temp_dir().join(format!("slope-latex-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    let mut doc = String::from(
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{amsmath}\n\\begin{document}\n",
    );
    for file in files() {
        doc += &slope(&["grad", &file, "--latex"]);
    }
    doc += "\\end{document}\n";
    std::fs::write(dir.join("doc.tex"), &doc).expect("the temporary directory is writable");
    let out = std::process::Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .current_dir(&dir)
        .output()
        .expect("pdflatex runs");
    assert!(
        out.status.success(),
        "pdflatex fails:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dir.join("doc.pdf").exists());
}
