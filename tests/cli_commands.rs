//! Every subcommand's exit status (0 success, 1 bad input with a
//! diagnostic, 2 usage), the atomicity of the files `train` and `grad --out`
//! write, and the determinism of `train`, `grad` and `graph`.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FIXTURES: &str = "tests/fixtures/robust";

/// A fresh directory holding copies of the fixtures.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-cmds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    for e in std::fs::read_dir(FIXTURES)
        .expect("fixtures exist")
        .flatten()
    {
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("fixture copies");
    }
    dir
}

/// Runs slope in `dir` with a timeout; returns (status, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("slope runs");
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack overflow"),
        "slope {args:?} crashed: {stderr}"
    );
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The sorted names of the files in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir is readable")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Trains xor once so later commands have weights: `w.safetensors`.
fn weights(dir: &Path) {
    let (code, _, err) = run_in(
        dir,
        &["train", "xor.nn", "--quiet", "--out", "w.safetensors"],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn usage_errors_exit_2() {
    // Guards: clap errors, flag values the commands reject themselves, a
    // missing --model with several models, and flag combinations that used
    // to be silently ignored (grad --data without --weights).
    let dir = scratch("usage");
    weights(&dir);
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["check"],
        &["check", "xor.nn", "--nope"],
        &["train", "xor.nn", "--lr", "nan"],
        &["train", "xor.nn", "--lr", "inf"],
        &["train", "xor.nn", "--lr", "0"],
        &["train", "xor.nn", "--lr", "-1"],
        &["train", "xor.nn", "--epochs", "0"],
        &["train", "xor.nn", "--epochs", "1e12"],
        &["train", "xor.nn", "--epochs", "99999999999999999999999"],
        &["train", "xor.nn", "--batch", "0"],
        &["train", "xor.nn", "--threads", "0"],
        &["train", "xor.nn", "--seed", "-1"],
        &["train", "xor.nn", "--seed", "1.5"],
        &["bench", "xor.nn", "--threads", "0"],
        &["bench", "xor.nn", "--batch", "0"],
        &["train", "two_models.nn", "--quiet"],
        &["check", "two_models.nn", "--model", "c"],
        &["grad", "two_models.nn"],
        &["graph", "two_models.nn"],
        &["grad", "xor.nn", "--data", "xor.csv"],
        &["grad", "xor.nn", "--out", "g.safetensors"],
        &["grad", "xor.nn", "--weights", "w.safetensors"],
        &[
            "grad",
            "xor.nn",
            "--weights",
            "w.safetensors",
            "--data",
            "xor.csv",
        ],
        &[
            "grad",
            "xor.nn",
            "--weights",
            "w.safetensors",
            "--data",
            "xor.csv",
            "--out",
            "g.safetensors",
            "--json",
        ],
        &["predict", "xor.nn", "--weights", "w.safetensors"],
        &["diff", "x^2", "--wrt", "3"],
        &["diff", "x^2", "--wrt", "pi"],
        &["diff", "x^2", "--wrt", ""],
    ];
    for args in cases {
        let (code, _, err) = run_in(&dir, args);
        assert_eq!(code, 2, "slope {args:?}: {err}");
        assert!(
            err.contains("error") || err.contains("Usage"),
            "slope {args:?} says why: {err}"
        );
    }
    assert!(
        !dir.join("g.safetensors").exists(),
        "usage errors write nothing"
    );
}

#[test]
fn bad_input_exits_1_naming_the_file() {
    // Guards: each kind of bad input names its file (and, for text, the
    // line and column) and exits 1.
    let dir = scratch("input");
    weights(&dir);
    std::fs::write(dir.join("empty.nn"), "").expect("write");
    std::fs::write(dir.join("random.safetensors"), [7u8; 300]).expect("write");
    let w = "w.safetensors";
    let cases: &[(&[&str], &str)] = &[
        (&["check", "missing.nn"], "missing.nn"),
        (&["check", "."], "'.'"),
        (&["fmt", "."], "'.'"),
        (&["check", "empty.nn"], "empty.nn"),
        (&["train", "empty.nn"], "empty.nn"),
        (
            &["train", "xor.nn", "--init", "random.safetensors"],
            "random.safetensors",
        ),
        (&["train", "xor.nn", "--init", "."], "'.'"),
        (&["train", "xor.nn", "--out", "."], "'.'"),
        (
            &["train", "xor.nn", "--out", "no/such/dir/w.st"],
            "no/such/dir",
        ),
        (
            &[
                "predict",
                "xor.nn",
                "--weights",
                w,
                "--data",
                "header_only.csv",
            ],
            "header_only.csv",
        ),
        (
            &["predict", "xor.nn", "--weights", w, "--data", "ragged.csv"],
            "ragged.csv:3:1",
        ),
        (
            &[
                "predict",
                "xor.nn",
                "--weights",
                w,
                "--data",
                "nan_cell.csv",
            ],
            "nan_cell.csv:2:1",
        ),
        (
            &["predict", "xor.nn", "--weights", w, "--data", "latin1.csv"],
            "latin1.csv:2:3",
        ),
        (
            &["predict", "xor.nn", "--weights", w, "--data", "nope.csv"],
            "nope.csv",
        ),
        (
            &[
                "predict",
                "xor.nn",
                "--weights",
                "random.safetensors",
                "--data",
                "xor.csv",
            ],
            "random.safetensors",
        ),
        (
            &["gradcheck", "xor.nn", "--weights", "random.safetensors"],
            "random.safetensors",
        ),
        (&["bench", "missing.nn"], "missing.nn"),
        (&["diff", "foo(x)"], "<expr>:1:1"),
        (&["diff", "max(x)"], "<expr>:1:1"),
        (&["diff", ""], "<expr>:1:1"),
    ];
    for (args, names) in cases {
        let (code, _, err) = run_in(&dir, args);
        assert_eq!(code, 1, "slope {args:?}: {err}");
        assert!(err.contains(names), "slope {args:?} names {names}: {err}");
    }
}

#[test]
fn every_command_succeeds_on_good_input() {
    // Guards: the happy path of each subcommand, including the constant
    // activation (`f(x) = pi`) that used to panic with an ill-shaped matmul,
    // and bench with an enormous batch that used to abort on allocation.
    let dir = scratch("ok");
    weights(&dir);
    std::fs::write(
        dir.join("no_train.nn"),
        "model m {\n    input 3\n    dense 4 relu\n    dense 2 softmax\n    loss cross_entropy\n}\n",
    )
    .expect("scratch dir is writable");
    let w = "w.safetensors";
    let cases: &[&[&str]] = &[
        &["check", "xor.nn"],
        &["check", "xor.nn", "--json"],
        &["fmt", "xor.nn"],
        &["diff", "-x^2"],
        &["diff", "y^2", "--wrt", "x"],
        &["diff", "sin(x)*x", "--steps", "--latex"],
        &["grad", "xor.nn"],
        &["grad", "xor.nn", "--latex"],
        &["grad", "xor.nn", "--json"],
        &["graph", "xor.nn", "--grad"],
        &["graph", "two_models.nn", "--model", "b"],
        &[
            "grad",
            "xor.nn",
            "--weights",
            w,
            "--data",
            "quoted.csv",
            "--out",
            "g.st",
        ],
        &[
            "predict",
            "xor.nn",
            "--weights",
            w,
            "--data",
            "bom_crlf.csv",
        ],
        &[
            "predict",
            "xor.nn",
            "--weights",
            w,
            "--data",
            "xor.csv",
            "--json",
        ],
        &["gradcheck", "xor.nn"],
        &["gradcheck", "xor.nn", "--weights", w],
        &[
            "train",
            "xor.nn",
            "--quiet",
            "--epochs",
            "1",
            "--batch",
            "99999999",
            "--threads",
            "64",
        ],
        &[
            "train",
            "xor.nn",
            "--json",
            "--lr",
            "0.1",
            "--seed",
            "18446744073709551615",
        ],
        &["train", "const_act.nn", "--quiet"],
        &["grad", "const_act.nn"],
        &["graph", "const_act.nn", "--grad"],
        &["bench", "const_act.nn"],
        &["bench", "big_batch.nn"],
        &["bench", "xor.nn", "--batch", "3"],
        // No train block (so no data): bench times made-up rows.
        &["bench", "no_train.nn", "--batch", "5"],
    ];
    for args in cases {
        let (code, _, err) = run_in(&dir, args);
        assert_eq!(code, 0, "slope {args:?}: {err}");
    }
}

#[test]
fn failed_runs_leave_weights_unchanged_and_no_temp_files() {
    // Guards spec §7: "a failed run leaves an existing weights file
    // byte-for-byte unchanged", for the default output path, --out, and
    // grad --out, with failures in data, weights, flags and divergence.
    let dir = scratch("atomic");
    let old = b"previous weights, not safetensors at all".to_vec();
    std::fs::write(dir.join("xor.safetensors"), &old).expect("write");
    std::fs::write(dir.join("out.st"), &old).expect("write");
    std::fs::write(dir.join("g.st"), &old).expect("write");
    std::fs::write(dir.join("random.st"), [1u8; 64]).expect("write");
    let before = listing(&dir);
    let failing: &[&[&str]] = &[
        // Divergence: the loss becomes NaN in the second epoch.
        &["train", "xor.nn", "--quiet", "--lr", "1e308"],
        &[
            "train", "xor.nn", "--quiet", "--lr", "1e308", "--out", "out.st",
        ],
        // Bad initial weights.
        &["train", "xor.nn", "--quiet", "--init", "random.st"],
        &[
            "train",
            "xor.nn",
            "--quiet",
            "--init",
            "random.st",
            "--out",
            "out.st",
        ],
        // Bad flags.
        &[
            "train", "xor.nn", "--quiet", "--batch", "0", "--out", "out.st",
        ],
        &["train", "xor.nn", "--quiet", "--lr", "nan"],
        // Bad weights and bad data for the numeric gradient.
        &[
            "grad",
            "xor.nn",
            "--weights",
            "random.st",
            "--data",
            "xor.csv",
            "--out",
            "g.st",
        ],
        &[
            "grad",
            "xor.nn",
            "--weights",
            "xor.safetensors",
            "--data",
            "xor.csv",
            "--out",
            "g.st",
        ],
    ];
    for args in failing {
        let (code, _, err) = run_in(&dir, args);
        assert_ne!(code, 0, "slope {args:?} fails: {err}");
        for f in ["xor.safetensors", "out.st", "g.st"] {
            assert_eq!(
                std::fs::read(dir.join(f)).expect("still there"),
                old,
                "slope {args:?} changed {f}"
            );
        }
        assert_eq!(listing(&dir), before, "slope {args:?} left files behind");
    }
    // Bad data: the train block's CSV is ragged.
    std::fs::copy(dir.join("ragged.csv"), dir.join("xor.csv")).expect("copy");
    let (code, _, err) = run_in(&dir, &["train", "xor.nn", "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("xor.csv:3:1"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("xor.safetensors")).expect("read"),
        old
    );
    assert_eq!(listing(&dir), before);
}

#[test]
fn successful_train_replaces_the_file_and_leaves_no_temp_files() {
    // Guards: the atomic write renames over the old file and cleans up.
    let dir = scratch("replace");
    std::fs::write(dir.join("xor.safetensors"), b"old").expect("write");
    let before = listing(&dir);
    let (code, _, err) = run_in(&dir, &["train", "xor.nn", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        std::fs::read(dir.join("xor.safetensors")).expect("read"),
        b"old"
    );
    assert_eq!(listing(&dir), before);
}

#[test]
fn outputs_are_deterministic() {
    // Guards: same file, seed and flags give identical bytes; symbolic
    // outputs do not depend on hash-map order.
    let dir = scratch("determinism");
    for (out, extra) in [("a.st", "b.st"), ("c.st", "d.st")] {
        for o in [out, extra] {
            let (code, _, err) = run_in(
                &dir,
                &[
                    "train", "xor.nn", "--quiet", "--epochs", "7", "--seed", "11", "--out", o,
                ],
            );
            assert_eq!(code, 0, "{err}");
        }
    }
    let a = std::fs::read(dir.join("a.st")).expect("read");
    assert_eq!(a, std::fs::read(dir.join("b.st")).expect("read"));
    assert_eq!(a, std::fs::read(dir.join("c.st")).expect("read"));
    let twice = |args: &[&str]| {
        let first = run_in(&dir, args);
        let second = run_in(&dir, args);
        assert_eq!(first.0, 0, "{}", first.2);
        assert_eq!(first.1, second.1, "slope {args:?} differs between runs");
    };
    twice(&["grad", "xor.nn"]);
    twice(&["grad", "xor.nn", "--json"]);
    twice(&["grad", "two_models.nn", "--model", "b", "--latex"]);
    twice(&["graph", "xor.nn", "--grad"]);
    twice(&["diff", "x^x*sin(x)/y", "--steps"]);
    twice(&["check", "two_models.nn", "--model", "b"]);
    // The --json epoch lines differ only in their wall-clock seconds.
    let strip = |s: String| -> Vec<String> {
        s.lines()
            .map(|l| l.split(",\"seconds\"").next().unwrap_or(l).to_string())
            .collect()
    };
    let args = ["train", "xor.nn", "--json", "--out", "e.st"];
    let (c1, o1, _) = run_in(&dir, &args);
    let (c2, o2, _) = run_in(&dir, &args);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(strip(o1), strip(o2));
}
