//! The differential stress loop of `tests/fuzzgen`: a few hundred random
//! models per `cargo test`, more with `SLOPE_STRESS_ITERS=N` (and another
//! start with `SLOPE_STRESS_SEED=S`), e.g.
//! `SLOPE_STRESS_ITERS=100000 cargo test --release --test compiler_stress -- --nocapture`.

mod fuzzgen;

use fuzzgen::{Outcome, Rng, case, run};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_models_agree_with_every_oracle() {
    let iters = env("SLOPE_STRESS_ITERS", 400);
    let mut rng = Rng(env("SLOPE_STRESS_SEED", 12));
    let (mut agreed, mut refused, mut skipped) = (0u64, 0u64, 0u64);
    let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..iters {
        if i > 0 && i % 10_000 == 0 {
            eprintln!("{i} models: {agreed} agreed, {skipped} skipped, {refused} refused");
        }
        let c = case(&rng.bytes(96));
        match run(&c) {
            Outcome::Agreed => agreed += 1,
            Outcome::Skipped => skipped += 1,
            Outcome::Refused(why) => {
                refused += 1;
                *reasons.entry(why).or_default() += 1;
            }
        }
    }
    println!("{iters} models: {agreed} agreed, {skipped} skipped (not finite), {refused} refused");
    for (why, n) in &reasons {
        println!("  refused {n}x: {why}");
    }
    // The generator writes well-formed models: most must be compared.
    assert!(
        agreed * 2 > iters,
        "only {agreed} of {iters} models were compared"
    );
}
