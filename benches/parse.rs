//! Parse (and parse + check) speed: a generated 1 MB `.nn` file of
//! activations, losses, models and train blocks.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// About `bytes` of varied, valid `.nn` text.
fn one_megabyte(bytes: usize) -> String {
    let mut src = String::with_capacity(bytes + 512);
    let mut k = 0;
    while src.len() < bytes {
        src.push_str(&format!(
            "# block {k}\nactivation act{k}(x) = 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))) - where(x > {k}, x, 1e-3*x)\n\
             loss l{k}(y, t) = -(t*log(y) + (1 - t)*log(1 - y))\n\
             model m{k} {{\n    input 4\n    dense 16 relu init=he name=h{k}\n    dense 3 softmax # out\n    loss cross_entropy\n}}\n\n"
        ));
        k += 1;
    }
    // A file has at most one train block.
    src.push_str("train { data \"d.csv\" target=[a, b, c]; optimizer adam lr=1e-3; epochs 10 }\n");
    src
}

fn bench_parse(c: &mut Criterion) {
    let src = one_megabyte(1 << 20);
    let (_, diags) = slope::syntax::parse(&src);
    assert!(diags.is_empty(), "the generated file is valid");
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(src.len() as u64));
    group.sample_size(20);
    group.bench_function("1MB", |b| b.iter(|| slope::syntax::parse(black_box(&src))));
    group.bench_function("parse+check 1MB", |b| {
        b.iter(|| {
            let (file, _) = slope::syntax::parse(black_box(&src));
            slope::check::check(&file)
        })
    });
    let (file, _) = slope::syntax::parse(&src);
    group.bench_function("fmt 1MB", |b| {
        b.iter(|| slope::syntax::fmt::format(black_box(&file), &src))
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
