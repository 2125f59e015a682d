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

/// Models the loop found, kept as regressions: each must agree now.
#[test]
fn models_found_by_the_loop_agree() {
    let found: &[(&str, u64)] = &[
        // f32 tanh clamped at 9 never reached 1.0, so `1 - t²` was 1.2e-7
        // times a derivative of 1e23: gradients of 1e16 where f64 gives 0.
        (
            "activation act0(x) = tanh(gelu((pi/x*1)))\nloss custom(y, t) = y\n\
             model m {\n    input 1\n    dense 3 act0\n    loss custom\n}\n",
            182,
        ),
        // Near the poles of `1/x` central differences with one step size
        // were off by 1e-3: the oracle now compares only where two agree.
        (
            "activation act0(x) = (sigmoid(x)/sin(x)*(x/x/.75/x))\n\
             loss custom(y, t) = ((y + 3 + y))^(-1)\n\
             model m {\n    input 3\n    dense 4 act0\n    dense 3 act0\n    loss custom\n}\n",
            186,
        ),
        // gelu's `1 + tanh(u)` cancels in f32 under a large polynomial
        // derivative: the f32 check scales with the largest value.
        (
            "activation act0(x) = ((e + x + x)*-(x)*(x - 0.5 + 3 + x)*(x - x - pi - 2))\n\
             model m {\n    input 4\n    dense 4 act0\n    dense 1 gelu\n    dense 3 sigmoid\n    loss bce\n}\n",
            7,
        ),
        // Constant-only terms were computed in f32: `sin(pi)` is -8.7e-8
        // there (pi rounds up), so `log(sin(pi))` was NaN in the loss and
        // the gradient where f64 gives -36.6. Now folded in f64 first.
        (
            "activation act0(x) = x*log(sin(pi))\n\
             model m {\n    input 2\n    dense 2 act0\n    dense 1 identity\n    loss mse\n}\n",
            3,
        ),
        // sin of about 1e33: the f64 JIT multiplies in another order than
        // the interpreter, and the last-digit difference of the argument is
        // any difference of the sine. Compared within the f64 error bound.
        (
            "activation act0(x) = (0.25)^(-1)\n\
             loss custom(y, t) = sin((1e-1/t/t/t/t/t/t/t/t/t/t/t/t/t/t/t/y*t*t*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y))\n\
             model m {\n    input 1\n    dense 1 act0\n    loss custom\n}\n",
            0,
        ),
        // y^40 of a small y underflows in f32 (NaN where f64 is finite):
        // outside f32's range the error bound is infinite, nothing compared.
        (
            "activation act0(x) = -((x*x/1e-1))\nactivation act1(x) = 1e-1\n\
             loss custom(y, t) = mish((t/(t*y/t/t/y*0.5*t/t*y/t*y*t/1e-1/t*t/y/y*t*y*2*t/y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y)*y*y))\n\
             model m {\n    input 1\n    dense 1 act0\n    loss custom\n}\n",
            0,
        ),
        // `1 <= t/t` is true in f64 and false in f32 for some rows (t·(1/t)
        // rounds to 0.99999994): the condition's bound was 2, and 1 ± 2 is
        // still true, so the oracle missed the flip. A condition that may
        // flip now takes both truth values.
        (
            "activation act0(x) = where(x<x, relu(x), relu(softplus(x)))\n\
             loss custom(y, t) = where(elu(1)<=sqrt((t/t)), sigmoid((y*y*y)), -((t)^(-1)))\n\
             model m {\n    input 3\n    dense 4 act0\n    dense 1 act0\n    dense 1 act0\n    loss custom\n}\n",
            0,
        ),
        // The derivative of `x/x·c·x/x` is cancellation noise times
        // cancellation noise: 0 in f64, 2.4e-16 in f32. Perturbing one
        // factor at a time moves a product of zeros by nothing; the bound
        // of a product now moves all factors together.
        (
            "activation act0(x) = ((((x/x)/(.75 - 1e-1))*x)/x)\n\
             model m {\n    input 1\n    dense 3 act0\n    dense 1 act0\n    dense 3 sigmoid\n    loss bce\n}\n",
            101,
        ),
        // x^-80 leaves f32's range (inf, then 0·inf = NaN) where f64 gives
        // 0, and a sigmoid after it made the infinite bound finite again:
        // an operand that may be NaN now makes any op but a comparison
        // or a `where` unknown.
        (
            "activation act0(x) = (x/(((x)^3)^3)^3/(((x)^3)^3)^3/(((x)^3)^3)^3)\n\
             activation act1(x) = (((where(x>x, x, 0.25))^0.5)^2)^1.5\n\
             model m {\n    input 4\n    dense 3 act1\n    dense 2 act0\n    dense 1 sigmoid\n    loss bce\n}\n",
            109,
        ),
        // exp of 1/leaky_relu(x) near 0 overflows f32 (the same rule).
        (
            "activation act0(x) = exp((softsign(x)/max(.75, x)/leaky_relu(x)))\n\
             model m {\n    input 4\n    dense 1 act0\n    dense 3 act0\n    dense 3 sigmoid\n    loss bce\n}\n",
            48,
        ),
        // The simplified activation is c·(1/z)¹³·z¹³, multiplied left to
        // right: in f32 the partial (1/z)¹³ underflows to 0 for z ≈ 1e3,
        // where f64 gives 5100. A partial product out of range is unknown.
        (
            "activation act0(x) = ((x/x/x/x/x/x/x*e*x*x*x/x/x*x*1/x/x*x*x*x*x*2*x/x*x/.75*e/x*x/.75*e/x*x))^2\n\
             model m {\n    input 4\n    dense 2 act0\n    dense 1 act0\n    dense 4 softmax\n    loss cross_entropy\n}\n",
            0,
        ),
        // The activation keeps z·(1/z) pairs (x/x is not 1 at 0), whose
        // derivative 1/z - z/z² is cancellation noise where z is tiny:
        // -0.0015 against a central difference of exactly 0. The f64
        // gradient is now also judged by its own rounding bound.
        (
            "activation act0(x) = (x/x/1*x*x*x*x*x*x*x*0.5/x/1/1/1*3*0.25/x/x*x*x*x/x/1e-1/1/1/0.5*x/x/0.5/x*e*x)\n\
             activation act1(x) = -(e)\n\
             loss custom(y, t) = (1e-1 + (y)^1.5 - (1e-1/-(y)*(y + y + y)))\n\
             model m {\n    input 1\n    dense 1 act0\n    dense 2 act0\n    loss custom\n}\n",
            76,
        ),
        // `(z/z)^1.5` is 1 in f64, so both layers' `where`s select 0.1 and
        // every δ is 0; in f32 both flip and δ1 is not. Moving one operand
        // at a time saw nothing: a branch of 0 with a bound, and a flip
        // between branches that are both 0. A `where` that may flip now
        // moves by the farther branch plus that branch's own bound.
        (
            "activation act0(x) = gelu(where(1>((x*x/x/x))^1.5, x, 1e-1))\n\
             model m {\n    input 4\n    dense 4 act0\n    dense 3 act0\n    dense 3 sigmoid\n    loss bce\n}\n",
            220,
        ),
        // The interpreter gives NaN where the f64 JIT gives 1.63, behind
        // `x/x` chains whose bound is infinite: an unknown value on the way
        // is not compared, in f64 as in f32.
        (
            "activation act0(x) = where(relu(((x/x)/(x/x)))>=(((x/x)/(x/x))/((x/x)/(x/x))), ((3/(x/x))/((x/x)/(x/x))), (((x)^0.5 + (.75)^0.5 - x + -(x)) - 0.25))\n\
             model m {\n    input 4\n    dense 4 softsign\n    dense 1 act0\n    dense 2 sigmoid\n    loss bce\n}\n",
            32,
        ),
    ];
    for &(src, seed) in found {
        assert_eq!(outcome(src, seed, true), Outcome::Agreed, "{src}");
    }
}

/// Whether the generated model `src` with inputs and weights from `seed`
/// passes every check (central differences only when `smooth`).
fn outcome(src: &str, seed: u64, smooth: bool) -> Outcome {
    let case = fuzzgen::Case {
        src: src.to_string(),
        smooth,
        seed,
    };
    run(&case)
}

/// Found by the compile_models fuzzer (seed 185): a condition comparing
/// two computations of z² (`exp(log(z²)) >= z³/z`) flips in both layers,
/// and a gradient differed from the interpreter's by 257 where the bound
/// allowed 2·49.8. The JIT's f64 `exp` and `log` match the standard
/// library's to the bit; the bound was at fault: an infinite bound on the
/// way (a NaN operand) was made finite again by a later op. Since such an
/// operand makes any op but a comparison or a `where` unknown, it agrees.
#[test]
fn a_flip_in_two_layers_is_within_the_bound() {
    let src = "activation act0(x) = where(exp(log((x)^2))>=(((x*x)/where(x>=x, x, 2))*x), x, ((abs(x) - gelu(x) + exp(x))/x))\n\
              model m {\n    input 4\n    dense 1 act0\n    dense 2 act0\n    dense 3 sigmoid\n    loss bce\n}\n";
    assert_eq!(outcome(src, 185, false), Outcome::Agreed);
}

/// Found by the compile_models fuzzer (seed 101): y is NaN in f64 (a
/// negative base under `^1.5`) but finite in f32 (its cubes overflow
/// otherwise), so `relu`'s `y > 0` selects the NaN branch of the gradient
/// in f32 only. The bound compared NaN ± its infinite bound, NaN again,
/// and saw no flip; a comparison of an unknown operand now may go either
/// way.
#[test]
fn a_comparison_of_a_nan_may_flip() {
    let src = "activation act0(x) = ((-(x) + (-(2) - (x*x*x) - gelu(x) - (x)^0.5) - gelu(x)))^1.5\n\
              activation act1(x) = (exp(x))^2\n\
              loss custom(y, t) = relu(y)\n\
              model m {\n    input 1\n    dense 1 act1\n    dense 3 act1\n    dense 1 act0\n    loss custom\n}\n";
    assert_eq!(outcome(src, 101, false), Outcome::Agreed);
}

/// Found by the compile_models fuzzer (seed 176): the activation divides
/// by `x + -x`, so before simplification y is ±inf and the loss
/// `t/(2t)·(-y)/y` NaN at every point. The simplifier's policy lets a
/// rewrite change a value only where it was NaN or ±inf, so it folded the
/// loss to `mean(0)` while the gradient, simplified along another path,
/// was `1/(4·z2) + …` (0.42 against central differences of 0). slope now
/// refuses a denominator that simplifies to 0 (`pipeline::lower`).
#[test]
fn a_division_by_an_identically_zero_expression_is_refused() {
    let src = "activation act0(x) = (-(pi)/softplus((1e-1/x/x/x))/(x + -(x))*identity(-(x)))\n\
              activation act1(x) = x\n\
              loss custom(y, t) = (t/(t + t + t - t)*-(y)/y)\n\
              model m {\n    input 4\n    dense 1 gelu\n    dense 2 act0\n    loss custom\n}\n";
    assert_eq!(outcome(src, 176, true), Outcome::Refused("compile".into()));
}
