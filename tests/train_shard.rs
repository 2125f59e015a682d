//! Training on two threads by splitting each batch into shares
//! (`train::shard`): deterministic for a thread count, and the same
//! training as one thread up to f32 rounding, with uneven shares weighted
//! by their rows (the oracle is the single-thread fused step).

use slope::train::shard;
use slope::{check, data, diag, pipeline, syntax, train};

/// A model with enough work per row that a batch of 64 splits in two.
const SRC: &str = "model wide {\n input 64\n dense 256 relu\n dense 256 tanh\n dense 10 softmax\n loss cross_entropy\n}\n";

/// Trains the model on `rows` of synthetic 10-class data with `threads`
/// threads, `batch` rows per batch and `optimizer`; returns the weights'
/// values and the epoch losses.
fn run(threads: usize, batch: usize, rows: usize, optimizer: &str) -> (Vec<Vec<f32>>, Vec<f64>) {
    let src = format!(
        "{SRC}train {{\n data \"d.csv\" target=y\n optimizer {optimizer}\n batch {batch}\n}}\n"
    );
    let (file, diags) = syntax::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let (program, diags) = check::check(&file);
    assert!(diags.is_empty(), "{diags:?}");
    let model = &program.models[0];
    let config = program.train.as_ref().unwrap();
    let mut csv: String = (0..64).map(|i| format!("f{i},")).collect();
    csv.push_str("y\n");
    for r in 0..rows {
        for c in 0..64 {
            csv.push_str(&format!("{},", ((r * 31 + c * 17) % 23) as f32 / 23.0));
        }
        csv.push_str(&format!("{}\n", (r * 7) % 10));
    }
    let spec = config.data.as_ref().unwrap();
    let data = data::load(&csv, diag::FileId(1), spec, model).unwrap();
    let (net, _) = pipeline::compile(&program, model).unwrap();
    let settings = train::Settings {
        epochs: 2,
        batch,
        shuffle: true,
        seed: 3,
        validation: 0.0,
        optimizer: config.optimizer,
        threads,
    };
    let w = train::weights::init(model, 3);
    let out = train::train(model, net, &settings, &data, w, &mut |_| {}).unwrap();
    let values = out.weights.tensors.iter().map(|t| t.data.clone()).collect();
    (values, out.epochs.iter().map(|e| e.loss).collect())
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let pairs = a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y));
    pairs.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_wide_model_splits_in_two_and_small_ones_do_not() {
    // 64 + 256·64 … : 6·64·(64·256 + 256·256 + 256·10) flop per step.
    let macs = 64 * 256 + 256 * 256 + 256 * 10;
    assert_eq!(shard::shares(2, 64, macs), 2);
    assert_eq!(shard::shares(1, 64, macs), 1);
    assert_eq!(shard::shares(2, 1, macs), 1, "one row cannot split");
    // The 64-32-10 digits network: split at batch 32, not at batch 8.
    assert_eq!(shard::shares(2, 32, 64 * 32 + 32 * 10), 2);
    assert_eq!(shard::shares(2, 8, 64 * 32 + 32 * 10), 1);
}

#[test]
fn two_threads_give_the_same_bits_twice() {
    let a = run(2, 64, 200, "sgd lr=0.05 momentum=0.9");
    let b = run(2, 64, 200, "sgd lr=0.05 momentum=0.9");
    assert_eq!(a, b);
}

#[test]
fn shares_train_like_one_thread_even_when_uneven() {
    // 200 rows at batch 63: three batches of 63 split 32 + 31, and a last
    // batch of 11 split 6 + 5. Each share's
    // gradient weighs its rows: weighing 32 and 31 rows ½ each would move
    // the weights by ~1e-3 here, far above the tolerance.
    for opt in [
        "sgd lr=0.05 momentum=0.9",
        "adam lr=0.001",
        "rmsprop lr=0.001",
    ] {
        let (w1, l1) = run(1, 63, 200, opt);
        let (w2, l2) = run(2, 63, 200, opt);
        let d = max_abs_diff(&w1, &w2);
        assert!(d < 2e-5, "{opt}: weights differ by {d}");
        for (a, b) in l1.iter().zip(&l2) {
            assert!(
                (a - b).abs() < 1e-5 * a.abs().max(1.0),
                "{opt}: loss {a} vs {b}"
            );
        }
    }
}
