//! Adversarial input through the real binary: nothing panics, overflows the
//! stack, aborts on allocation or hangs; every failure is a diagnostic with
//! exit status 1 (or 2 for usage). Each run has a timeout.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A fresh directory with the xor data.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slope-robust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    std::fs::copy("tests/fixtures/robust/xor.csv", dir.join("xor.csv")).expect("copy");
    dir
}

/// Runs slope in `dir`; asserts it ends within `secs` without crashing.
fn run(dir: &Path, args: &[&str], secs: u64) -> (i32, String, String) {
    let start = Instant::now();
    let out = Command::cargo_bin("slope")
        .expect("the slope binary is built for integration tests")
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(secs))
        .output()
        .expect("slope runs");
    let shown: Vec<String> = args.iter().map(|a| a.chars().take(60).collect()).collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // A timeout kills the process: no exit code.
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "slope {shown:?} was killed after {:?}: {stderr}",
            start.elapsed()
        )
    });
    assert!(
        code <= 2 && !stderr.contains("panicked") && !stderr.contains("overflow"),
        "slope {shown:?} crashed with {code}: {stderr}"
    );
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Writes `text` to `dir/name` and returns the name.
fn file<'a>(dir: &Path, name: &'a str, text: &str) -> &'a str {
    std::fs::write(dir.join(name), text).expect("write");
    name
}

/// The symbolic commands every `.nn` file is attacked with.
fn symbolic_commands(dir: &Path, nn: &str) -> Vec<(i32, String)> {
    [
        vec!["check", nn],
        vec!["grad", nn],
        vec!["graph", nn, "--grad"],
    ]
    .iter()
    .map(|args| {
        let (code, _, err) = run(dir, args, 30);
        (code, err)
    })
    .collect()
}

#[test]
fn activation_chains_are_bounded_diagnostics() {
    // Guards the inlining limits: a 1,000-item chain of `tanh(previous)`
    // overflowed the stack, `a(x) = b(b(x))` and `a(x) = b(x) + b(x)*x`
    // grew exponentially, nested gelu tripled per level.
    let dir = scratch("chains");
    let chain = |n: usize, body: &dyn Fn(usize) -> String| {
        let mut s = String::from("activation a1(x) = tanh(x)\n");
        for i in 2..=n {
            s.push_str(&format!("activation a{i}(x) = {}\n", body(i - 1)));
        }
        s.push_str(&format!(
            "model m {{ input 2; dense 4 a{n}; dense 1 sigmoid; loss bce }}\n\
             train {{ data \"xor.csv\" target=y; epochs 2 }}\n"
        ));
        s
    };
    let cases = [
        (
            "deep.nn",
            chain(1000, &|p| format!("tanh(a{p}(x))")),
            "levels deep",
        ),
        (
            "double.nn",
            chain(500, &|p| format!("a{p}(a{p}(x))")),
            "levels deep",
        ),
        (
            "wide.nn",
            chain(500, &|p| format!("a{p}(x) + a{p}(x)*x")),
            "operations",
        ),
        (
            "gelu.nn",
            chain(12, &|p| format!("gelu(a{p}(x))")),
            "operations",
        ),
    ];
    for (name, text, message) in &cases {
        let nn = file(&dir, name, text);
        for (code, err) in symbolic_commands(&dir, nn) {
            assert_eq!(code, 1, "{name}: {err}");
            assert!(err.contains(message), "{name}: {err}");
            assert!(
                err.contains(&format!("{name}:")),
                "{name} names FILE:LINE:COL: {err}"
            );
        }
        let (code, _, err) = run(&dir, &["train", nn, "--quiet"], 30);
        assert_eq!(code, 1, "{err}");
    }
    // Within the limits, a chain still works end to end.
    let nn = file(&dir, "ok.nn", &chain(40, &|p| format!("tanh(a{p}(x))")));
    for (code, err) in symbolic_commands(&dir, nn) {
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = run(&dir, &["train", nn, "--quiet"], 30);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn huge_numbers_in_files_are_diagnostics() {
    // Guards: widths, counts and numbers beyond their ranges name the value.
    let dir = scratch("numbers");
    let model = |body: &str| format!("model m {{ {body} }}\n");
    let train = |stmt: &str| {
        format!(
            "model m {{ input 2; dense 1 sigmoid; loss bce }}\ntrain {{ data \"xor.csv\" target=y; {stmt} }}\n"
        )
    };
    let cases = [
        model("input 2; dense 1e30; loss mse"),
        model("input 99999999999999999999; dense 1; loss mse"),
        model("input 1000000; dense 1000000; dense 1000000; dense 1000000; loss mse"),
        model("input 30000; dense 30000; loss mse"),
        model("input 0; dense 1; loss mse"),
        model("input 2; dense 0.5; loss mse"),
        train("epochs 1e12"),
        train("batch 0"),
        train("seed 1e30"),
        train("seed -1"),
        train("optimizer sgd lr=1e400"),
        train("optimizer sgd lr=-1"),
        train("optimizer adam beta1=1"),
        train("validation 1"),
    ];
    for (i, text) in cases.iter().enumerate() {
        let name = format!("n{i}.nn");
        let nn = file(&dir, &name, text);
        for args in [
            vec!["check", nn],
            vec!["train", nn, "--quiet"],
            vec!["bench", nn],
        ] {
            let (code, _, err) = run(&dir, &args, 30);
            assert_eq!(code, 1, "{text}: {err}");
            assert!(
                err.contains(&format!("{name}:1:")) || err.contains(&format!("{name}:2:")),
                "{text}: {err}"
            );
        }
    }
    assert!(!dir.join("m.safetensors").exists());
}

#[test]
fn hostile_bytes_in_source_files() {
    // Guards: NUL bytes, invalid UTF-8, a directory, an empty file and
    // binary garbage reach every command as exit-1 diagnostics.
    let dir = scratch("bytes");
    std::fs::write(dir.join("nul.nn"), b"model m {\n input 2\0\n}\n").expect("write");
    std::fs::write(
        dir.join("latin1.nn"),
        b"# caf\xe9\nmodel m { input 2; dense 1; loss mse }\n",
    )
    .expect("write");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("garbage.nn"), garbage).expect("write");
    std::fs::write(dir.join("empty.nn"), b"").expect("write");
    std::fs::create_dir_all(dir.join("dir.nn")).expect("mkdir");
    for nn in [
        "nul.nn",
        "latin1.nn",
        "garbage.nn",
        "empty.nn",
        "dir.nn",
        "missing.nn",
    ] {
        for cmd in [
            "check",
            "fmt",
            "grad",
            "graph",
            "train",
            "gradcheck",
            "bench",
        ] {
            if (cmd, nn) == ("fmt", "empty.nn") {
                // An empty file is a valid, already formatted file.
                assert_eq!(run(&dir, &[cmd, nn], 30).0, 0);
                continue;
            }
            let (code, _, err) = run(&dir, &[cmd, nn], 30);
            assert_eq!(code, 1, "{cmd} {nn}: {err}");
            assert!(err.contains(nn), "{cmd} {nn} names the file: {err}");
        }
    }
    let (_, _, err) = run(&dir, &["check", "nul.nn"], 30);
    assert!(err.contains("nul.nn:2:9"), "{err}");
    let (_, _, err) = run(&dir, &["check", "latin1.nn"], 30);
    assert!(err.contains("latin1.nn:1:6"), "{err}");
}

#[test]
fn hostile_csv_files() {
    // Guards: every malformed CSV is a diagnostic naming the file, row and
    // column; odd but valid CSVs (BOM, CRLF, quotes, blank tail) train.
    let dir = scratch("csv");
    let nn = "model m { input 2; dense 2 tanh; dense 1 sigmoid; loss bce }\n\
              train { data \"d.csv\" target=y; epochs 2; batch 2 }\n";
    file(&dir, "m.nn", nn);
    let ce = "model c { input 2; dense 10 softmax; loss cross_entropy }\n\
              train { data \"d.csv\" target=y; epochs 2 }\n";
    file(&dir, "c.nn", ce);
    let bad: &[(&str, &[u8], &str)] = &[
        ("m.nn", b"", "is empty"),
        ("m.nn", b"x1,x2,y\n", "no data rows"),
        ("m.nn", b"x1,x2,y\n0,0,0\n0,1\n", "d.csv:3:1"),
        ("m.nn", b"x1,x2,y\n0,abc,1\n", "d.csv:2:3"),
        ("m.nn", b"x1,x2,y\nNaN,0,1\n", "d.csv:2:1"),
        ("m.nn", b"x1,x2,y\n0,inf,1\n", "d.csv:2:3"),
        ("m.nn", b"x1,x2,y\n0,1e39,1\n", "d.csv:2:3"),
        ("m.nn", b"x1,x2,y\n0,\0,1\n", "d.csv:2:3"),
        ("m.nn", b"x1,x2,y\n0,\xff,1\n", "d.csv:2:3"),
        ("m.nn", b"x1,x1,y\n0,0,1\n", "d.csv:1:4"),
        ("m.nn", b"x1,x2,z\n0,0,1\n", "m.nn:2:"),
        ("m.nn", b"x1,x2,x3,y\n0,0,0,1\n", "m.nn:1:"),
        ("c.nn", b"x1,x2,y\n0,0,3.5\n", "d.csv:2:5"),
        ("c.nn", b"x1,x2,y\n0,0,10\n", "d.csv:2:5"),
        ("c.nn", b"x1,x2,y\n0,0,-1\n", "d.csv:2:5"),
    ];
    for (nn, csv, place) in bad {
        std::fs::write(dir.join("d.csv"), csv).expect("write");
        for args in [vec!["train", nn, "--quiet"], vec!["gradcheck", nn]] {
            let cmd = args[0];
            let (code, _, err) = run(&dir, &args, 30);
            assert_eq!(code, 1, "{cmd} {:?}: {err}", String::from_utf8_lossy(csv));
            assert!(
                err.contains(place),
                "{cmd} {:?} names {place}: {err}",
                String::from_utf8_lossy(csv)
            );
        }
    }
    let good: &[&[u8]] = &[
        b"\xef\xbb\xbfx1,x2,y\r\n0,0,0\r\n0,1,1\r\n",
        b"\"x1\",\"x2\",\"y\"\n\"0\",\"1\",\"1\"\n1,1,0\n",
        b"x1,x2,y\n0,0,0\n1,1,0\n\n\n\n",
        b"y,x2,x1\n1,0,1\n0,1,1\n",
        b" x1 , x2 ,y\n 0 , 1 ,1\n",
    ];
    for csv in good {
        std::fs::write(dir.join("d.csv"), csv).expect("write");
        let (code, _, err) = run(&dir, &["train", "m.nn", "--quiet"], 30);
        assert_eq!(code, 0, "{:?}: {err}", String::from_utf8_lossy(csv));
    }
    // A wide CSV (100,000 columns) is read and rejected quickly.
    let mut wide = (0..100_000)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",");
    wide.push_str(",y\n");
    wide.push_str(&"0,".repeat(100_000));
    wide.push_str("1\n");
    std::fs::write(dir.join("d.csv"), wide).expect("write");
    let (code, _, err) = run(&dir, &["train", "m.nn", "--quiet"], 30);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("100000 feature columns"), "{err}");
}

#[test]
fn hostile_weights_files() {
    // Guards: weights of another model, truncated, random, wrong dtype,
    // extra or missing tensors, NaN inside, absurd header length.
    let dir = scratch("weights");
    let nn = file(
        &dir,
        "m.nn",
        "model m { input 2; dense 4 tanh; dense 1 sigmoid; loss bce }\n\
        train { data \"xor.csv\" target=y; epochs 2 }\n",
    );
    file(
        &dir,
        "other.nn",
        "model o { input 2; dense 3 tanh; dense 1 sigmoid; loss bce }\n\
        train { data \"xor.csv\" target=y; epochs 2 }\n",
    );
    let (code, _, err) = run(&dir, &["train", "m.nn", "--quiet", "--out", "good.st"], 30);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &dir,
        &["train", "other.nn", "--quiet", "--out", "other.st"],
        30,
    );
    assert_eq!(code, 0, "{err}");
    let good = std::fs::read(dir.join("good.st")).expect("read");
    let header_len = u64::from_le_bytes(good[..8].try_into().expect("8 bytes")) as usize;
    let header = String::from_utf8(good[8..8 + header_len].to_vec()).expect("utf-8 header");
    let mut variants: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 3].to_vec(), "truncated.st"),
        ("short", good[..5].to_vec(), "short.st"),
        (
            "random",
            (0..500u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "random.st",
        ),
        ("empty", Vec::new(), "empty.st"),
        (
            "huge_header",
            {
                let mut v = (u64::MAX / 2).to_le_bytes().to_vec();
                v.extend(b"{}");
                v
            },
            "huge_header.st",
        ),
    ];
    // Same layout, but dtype F64, then a NaN in the first weight.
    let f64_header = header.replacen("\"F32\"", "\"F64\"", 1);
    let mut f64_file = (f64_header.len() as u64).to_le_bytes().to_vec();
    f64_file.extend(f64_header.as_bytes());
    f64_file.extend(&good[8 + header_len..]);
    variants.push(("f64", f64_file, "f64.st"));
    let mut nan = good.clone();
    // The first tensor in data order starts right after the header.
    nan[8 + header_len..8 + header_len + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    variants.push(("nan", nan, "nan.st"));
    variants.push((
        "other",
        std::fs::read(dir.join("other.st")).expect("read"),
        "other.st",
    ));
    for (what, bytes, name) in &variants {
        std::fs::write(dir.join(name), bytes).expect("write");
        let cases: [&[&str]; 4] = [
            &["predict", nn, "--weights", name, "--data", "xor.csv"],
            &["gradcheck", nn, "--weights", name],
            &["train", nn, "--quiet", "--init", name, "--out", "t.st"],
            &[
                "grad",
                nn,
                "--weights",
                name,
                "--data",
                "xor.csv",
                "--out",
                "g.st",
            ],
        ];
        for args in cases {
            let (code, _, err) = run(&dir, args, 30);
            assert_eq!(code, 1, "{what} {args:?}: {err}");
            assert!(err.contains(name), "{what} {args:?} names the file: {err}");
        }
    }
    assert!(!dir.join("t.st").exists() && !dir.join("g.st").exists());
}

#[test]
fn huge_and_deep_expressions_in_diff() {
    // Guards: deep nesting, long chains and towers of powers end quickly as
    // a result or a depth diagnostic (the OS caps one argument at 128 KiB).
    let dir = scratch("diff");
    let cases = [
        format!("{}x{}", "(".repeat(60_000), ")".repeat(60_000)),
        vec!["x"; 10_000].join("^"),
        format!("{}x{}", "sin(".repeat(20_000), ")".repeat(20_000)),
        format!("{}x{}", "-".repeat(100_000), ""),
    ];
    for expr in &cases {
        for extra in [&[][..], &["--steps"][..], &["--latex"][..], &["--json"][..]] {
            let mut args = vec!["diff", expr.as_str()];
            args.extend(extra);
            let (code, _, err) = run(&dir, &args, 30);
            assert_eq!(code, 1, "{err}");
            assert!(err.contains("<expr>:1:"), "{err}");
        }
    }
    // A flat sum or product is not nesting: any length differentiates,
    // printed in every form, in a fraction of a second.
    let flat = [
        (vec!["x"; 60_000].join("+"), "60000"),
        (vec!["x"; 30_000].join("*"), "30000*x^29999"),
        (
            vec!["sin(x)"; 15_000].join("*"),
            "15000*cos(x)*sin(x)^14999",
        ),
    ];
    for (expr, want) in &flat {
        for extra in [&[][..], &["--steps"][..], &["--latex"][..], &["--json"][..]] {
            let mut args = vec!["diff", expr.as_str()];
            args.extend(extra);
            let (code, out, err) = run(&dir, &args, 30);
            assert_eq!(code, 0, "{err}");
            if extra.is_empty() {
                assert_eq!(out.trim(), *want);
            }
        }
    }
    // Built-in activations that use their argument several times multiply
    // the size when nested: gelu nested ten deep printed for hours.
    for f in ["gelu", "elu", "leaky_relu"] {
        let expr = format!("{}x{}", format!("{f}(").repeat(10), ")".repeat(10));
        let (code, _, err) = run(&dir, &["diff", &expr, "--steps"], 30);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("operations once built-in activations"),
            "{err}"
        );
    }
    // Allowed depths finish in seconds.
    let ok = [
        vec!["x"; 40].join("^"),
        format!("{}x{}", "sin(".repeat(250), ")".repeat(250)),
        format!("{}x{}", "tanh(".repeat(250), ")".repeat(250)),
        (0..200)
            .map(|i| format!("x^{i}"))
            .collect::<Vec<_>>()
            .join("+"),
    ];
    for expr in &ok {
        let (code, _, err) = run(&dir, &["diff", expr], 30);
        assert_eq!(code, 0, "{err}");
    }
    // Unknown functions, wrong arity, and a variable that is absent.
    for (expr, code) in [
        ("foo(x)", 1),
        ("max(x)", 1),
        ("where(x, 1)", 1),
        ("sin(x, y)", 1),
        ("1e400*x", 1),
    ] {
        assert_eq!(run(&dir, &["diff", expr], 30).0, code, "{expr}");
    }
    let (code, out, _) = run(&dir, &["diff", "y^2 + sin(z)", "--wrt", "x"], 30);
    assert_eq!((code, out.trim()), (0, "0"));
}

/// `slope predict ... | head -1`: a reader that goes away is not a crash
/// (std's `println!` panics on a closed pipe; ours stops writing).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("slope-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("d.safetensors");
    let bin = env!("CARGO_BIN_EXE_slope");
    let trained = Command::new(bin)
        .args([
            "train",
            "examples/digits.nn",
            "--epochs",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&w)
        .output()
        .unwrap();
    assert!(trained.status.success());
    let mut child = Command::new(bin)
        .args([
            "predict",
            "examples/digits.nn",
            "--data",
            "examples/digits.csv",
            "--weights",
        ])
        .arg(&w)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("y0,"), "{first}");
    // The reader is dropped here: the rest of the 1,797 rows meet a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
