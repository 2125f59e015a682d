//! Convolutional networks: conv and pooling ops (JIT f32/f64 and the
//! interpreter) against naive loops written here, every padding and stride,
//! odd sizes where `same` pads asymmetrically, several channels, ties in max
//! pooling; f64 gradients of whole CNNs against central differences for
//! every layer kind and every activation after a conv; the checker's
//! shapes and errors.

use slope::codegen::{Element, Jit, Signature};
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::{Dim, Graph, LeafKind, NodeId, Op, Shape, Window, WindowOp};
use slope::{check, data, diag, pipeline, syntax, train};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn values(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| 2.0 * self.next() - 1.0).collect()
    }
}

/// TensorFlow's `same` rule, written independently of slope's: output
/// ceil(n/s), padding max((out-1)·s + k - n, 0), the odd one after.
fn same(n: usize, k: usize, s: usize) -> (usize, usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (out, total / 2, total - total / 2)
}

/// The geometry of one case: (out, pad before, pad after) per axis.
fn axes(
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pad_same: bool,
) -> Option<[(usize, usize, usize); 2]> {
    let one = |n: usize| {
        if pad_same {
            Some(same(n, k, s))
        } else {
            (n >= k).then(|| ((n - k) / s + 1, 0, 0))
        }
    };
    Some([one(h)?, one(w)?])
}

fn window(h: usize, w: usize, k: usize, s: usize, ax: [(usize, usize, usize); 2]) -> Window {
    Window {
        input: [h as u32, w as u32],
        kernel: k as u32,
        stride: s as u32,
        pad_before: [ax[0].1 as u32, ax[1].1 as u32],
        pad_after: [ax[0].2 as u32, ax[1].2 as u32],
    }
}

/// `x[b, c, iy - pt, ix - pl]`, zero in the padding.
fn padded(x: &[f64], d: [usize; 4], b: usize, c: usize, iy: isize, ix: isize) -> Option<f64> {
    let (h, w) = (d[2] as isize, d[3] as isize);
    (iy >= 0 && ix >= 0 && iy < h && ix < w)
        .then(|| x[((b * d[1] + c) * d[2] + iy as usize) * d[3] + ix as usize])
}

/// The naive convolution: `y[b,n,i,j] = Σ x[b,c,i·s+u-pt, j·s+v-pl]·w[n,c,u,v]`.
fn naive_conv(
    x: &[f64],
    d: [usize; 4],
    wt: &[f64],
    n: usize,
    k: usize,
    s: usize,
    ax: [(usize, usize, usize); 2],
) -> Vec<f64> {
    let [(oh, pt, _), (ow, pl, _)] = ax;
    let mut y = Vec::new();
    for b in 0..d[0] {
        for f in 0..n {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0;
                    for c in 0..d[1] {
                        for u in 0..k {
                            for v in 0..k {
                                let iy = (i * s + u) as isize - pt as isize;
                                let ix = (j * s + v) as isize - pl as isize;
                                if let Some(xv) = padded(x, d, b, c, iy, ix) {
                                    acc += xv * wt[((f * d[1] + c) * k + u) * k + v];
                                }
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// The naive pooling: the first largest (`max`) or the mean of each window.
fn naive_pool(x: &[f64], d: [usize; 4], k: usize, s: usize, max: bool) -> Vec<f64> {
    let (oh, ow) = ((d[2] - k) / s + 1, (d[3] - k) / s + 1);
    let mut y = Vec::new();
    for b in 0..d[0] {
        for c in 0..d[1] {
            for i in 0..oh {
                for j in 0..ow {
                    let vals: Vec<f64> = (0..k * k)
                        .map(|t| {
                            padded(
                                x,
                                d,
                                b,
                                c,
                                (i * s + t / k) as isize,
                                (j * s + t % k) as isize,
                            )
                            .expect("inside")
                        })
                        .collect();
                    y.push(if max {
                        vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        vals.iter().sum::<f64>() / (k * k) as f64
                    });
                }
            }
        }
    }
    y
}

fn leaf(g: &mut Graph, name: &str, dims: &[usize], batch: bool) -> NodeId {
    let mut shape: Vec<Dim> = dims.iter().map(|&d| Dim::Fixed(d)).collect();
    if batch {
        shape[0] = Dim::Batch;
    }
    g.leaf(name, LeafKind::Input, Shape(shape))
}

/// Runs `out` through the JIT in `T` with the leaves `inputs` set to `vals`.
fn jit<T: Element>(
    g: &Graph,
    inputs: &[NodeId],
    vals: &[&[f64]],
    out: NodeId,
    batch: usize,
) -> Vec<f64> {
    let sig = Signature {
        inputs: inputs.to_vec(),
        outputs: vec![out],
        updates: vec![],
    };
    let mut jit = Jit::new(1).expect("host JIT");
    let mut f = jit.compile::<T>(g, &sig, batch).expect("compiles");
    let data: Vec<Vec<T>> = vals
        .iter()
        .map(|v| v.iter().map(|&x| T::from_f64(x)).collect())
        .collect();
    let ins: Vec<&[T]> = data.iter().map(|d| d.as_slice()).collect();
    let mut outs = [vec![T::default(); f.output_lens()[0]]];
    let mut refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.call(&ins, &mut [], &mut refs).expect("buffers fit");
    outs[0].iter().map(|v| v.to_f64()).collect()
}

/// JIT f64, JIT f32 and the interpreter all equal `want`.
fn agree(
    what: &str,
    g: &Graph,
    inputs: &[NodeId],
    vals: &[&[f64]],
    out: NodeId,
    batch: usize,
    want: &[f64],
) {
    let mut env = Env::new();
    for (&n, v) in inputs.iter().zip(vals) {
        let Op::Leaf(id) = g.node(n).op else {
            unreachable!()
        };
        let shape = slope::graph::eval::concrete(&g.leaf_info(id).shape, batch);
        env.insert(
            g.leaf_info(id).name.clone(),
            Tensor::new(shape, v.to_vec()).expect("fits"),
        );
    }
    let interp = &eval(g, &[out], &env, batch).expect("evaluates")[0].data;
    let f64s = jit::<f64>(g, inputs, vals, out, batch);
    let f32s = jit::<f32>(g, inputs, vals, out, batch);
    assert_eq!(want.len(), f64s.len(), "{what}: size");
    for i in 0..want.len() {
        assert!(
            (interp[i] - want[i]).abs() < 1e-12,
            "{what}: interpreter [{i}] {} vs {}",
            interp[i],
            want[i]
        );
        assert!(
            (f64s[i] - want[i]).abs() < 1e-12,
            "{what}: f64 JIT [{i}] {} vs {}",
            f64s[i],
            want[i]
        );
        assert!(
            (f32s[i] - want[i]).abs() < 1e-4,
            "{what}: f32 JIT [{i}] {} vs {}",
            f32s[i],
            want[i]
        );
    }
}

#[test]
fn convolution_matches_a_naive_loop_for_every_padding_and_stride() {
    let mut rng = Rng(7);
    let mut cases = 0;
    for &(c, n) in &[(1, 2), (3, 4)] {
        for &(h, w) in &[(5, 7), (6, 6), (4, 9)] {
            for k in 1..=3 {
                for s in 1..=3 {
                    for pad_same in [false, true] {
                        let Some(ax) = axes(h, w, k, s, pad_same) else {
                            continue;
                        };
                        let batch = 2;
                        let mut g = Graph::new();
                        let x = leaf(&mut g, "x", &[batch, c, h, w], true);
                        let wt = leaf(&mut g, "w", &[n, c, k, k], false);
                        let win = window(h, w, k, s, ax);
                        let y = g.make(Op::Window(WindowOp::Conv, win), &[x, wt]);
                        let (xv, wv) = (rng.values(batch * c * h * w), rng.values(n * c * k * k));
                        let want = naive_conv(&xv, [batch, c, h, w], &wv, n, k, s, ax);
                        let what = format!("conv c{c} n{n} {h}x{w} k{k} s{s} same={pad_same}");
                        agree(&what, &g, &[x, wt], &[&xv, &wv], y, batch, &want);
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 80, "{cases} cases");
}

#[test]
fn same_padding_is_asymmetric_on_odd_sizes() {
    // 6 wide, stride 2, kernel 3: out 3, padding 1, all of it after.
    assert_eq!(same(6, 3, 2), (3, 0, 1));
    let geom = check::layer::geometry(6, 6, 3, 2, check::model::Padding::Same).expect("fits");
    assert_eq!(
        (geom.out, geom.pad_before, geom.pad_after),
        ([3, 3], [0, 0], [1, 1])
    );
    let geom = check::layer::geometry(5, 8, 4, 1, check::model::Padding::Same).expect("fits");
    assert_eq!(
        (geom.out, geom.pad_before, geom.pad_after),
        ([5, 8], [1, 1], [2, 2])
    );
}

#[test]
fn pooling_matches_a_naive_loop_with_ties() {
    let mut rng = Rng(11);
    for &(h, w) in &[(4, 4), (5, 7), (7, 6)] {
        for k in 2..=3 {
            for s in 1..=3 {
                let (batch, c) = (2, 3);
                // Values from {0, 1, 2}: many windows hold tied maxima.
                let xv: Vec<f64> = (0..batch * c * h * w)
                    .map(|_| (rng.next() * 3.0).floor())
                    .collect();
                let ax = axes(h, w, k, s, false).expect("fits");
                let win = window(h, w, k, s, ax);
                for (op, max) in [(WindowOp::MaxPool, true), (WindowOp::AvgPool, false)] {
                    let mut g = Graph::new();
                    let x = leaf(&mut g, "x", &[batch, c, h, w], true);
                    let y = if max {
                        g.maxpool(x, win)
                    } else {
                        g.make(Op::Window(op, win), &[x])
                    };
                    let want = naive_pool(&xv, [batch, c, h, w], k, s, max);
                    agree(
                        &format!("{op:?} {h}x{w} k{k} s{s}"),
                        &g,
                        &[x],
                        &[&xv],
                        y,
                        batch,
                        &want,
                    );
                }
            }
        }
    }
}

#[test]
fn max_pooling_routes_delta_to_the_first_tied_maximum() {
    // One 2x2 window of equal values: all of δ goes to the top-left element.
    let win = window(2, 2, 2, 2, [(1, 0, 0), (1, 0, 0)]);
    let mut g = Graph::new();
    let x = leaf(&mut g, "x", &[1, 1, 2, 2], true);
    let d = leaf(&mut g, "d", &[1, 1, 1, 1], true);
    let back = g.make(Op::Window(WindowOp::MaxPoolBack, win), &[x, d]);
    // The same gradient where the forward pooling is computed too (δ + y·0
    // reads it), so the gradient reuses the forward pass's arg-maxes.
    let y = g.make(Op::Window(WindowOp::MaxPool, win), &[x, x]);
    let zero = g.make(Op::Mul, &[y, y]);
    let zero = g.make(Op::Neg, &[zero]);
    let square = g.make(Op::Mul, &[y, y]);
    let zero = g.make(Op::Add, &[square, zero]);
    let d_after = g.make(Op::Add, &[d, zero]);
    let reused = g.make(Op::Window(WindowOp::MaxPoolBack, win), &[x, d_after]);
    for (what, out) in [("found again", back), ("recorded", reused)] {
        agree(
            &format!("tie, arg-max {what}"),
            &g,
            &[x, d],
            &[&[5.0, 5.0, 5.0, 5.0], &[3.0]],
            out,
            1,
            &[3.0, 0.0, 0.0, 0.0],
        );
        // The maximum after a tie for second place.
        agree(
            &format!("max, arg-max {what}"),
            &g,
            &[x, d],
            &[&[1.0, 4.0, 4.0, 9.0], &[2.0]],
            out,
            1,
            &[0.0, 0.0, 0.0, 2.0],
        );
    }
}

/// A model over 6 random 1x6x6 (or `input`) images with 3 classes, checked
/// and compiled; random weights with non-zero biases (so no relu sits on
/// its kink) and the f64 gradcheck's worst error.
fn gradcheck(model: &str, input: &str, features: usize) -> f64 {
    let src = format!(
        "model m {{\n input {input}\n{model}\n loss cross_entropy\n}}\n\
         train {{\n data \"d.csv\" target=class\n}}\n"
    );
    let (file, diags) = syntax::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let (program, diags) = check::check(&file);
    assert!(diags.is_empty(), "{model}: {diags:?}");
    let m = &program.models[0];
    let mut rng = Rng(3);
    let rows = 6;
    let mut csv = (0..features)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",class\n";
    for r in 0..rows {
        let xs: Vec<String> = rng
            .values(features)
            .iter()
            .map(|v| format!("{v}"))
            .collect();
        csv += &format!("{},{}\n", xs.join(","), r % 3);
    }
    let spec = program
        .train
        .as_ref()
        .and_then(|t| t.data.as_ref())
        .expect("data");
    let data = data::load(&csv, diag::FileId(1), spec, m).expect("valid CSV");
    let (net, _) = pipeline::compile(&program, m).expect("compiles");
    let mut w = train::weights::init(m, 1);
    for t in &mut w.tensors {
        for v in &mut t.data {
            *v = (0.6 * (2.0 * rng.next() - 1.0)) as f32;
        }
    }
    let x: Vec<f64> = data.features.iter().map(|&v| f64::from(v)).collect();
    let t: Vec<f64> = data.targets.iter().map(|&v| f64::from(v)).collect();
    let checks = train::tasks::gradcheck(&net, &w, x, t, data.rows).expect("gradcheck runs");
    checks.iter().map(|c| c.worst).fold(0.0, f64::max)
}

#[test]
fn cnn_gradients_match_central_differences_for_every_layer_kind() {
    let cases = [
        ("conv 2 3x3 tanh\n dense 3 softmax", "1x6x6", 36),
        (
            "conv 2 3x3 tanh padding=same stride=2\n dense 3 softmax",
            "1x6x6",
            36,
        ),
        (
            "conv 3 2x2 sigmoid stride=2 bias=false\n flatten\n dense 3 softmax",
            "2x5x5",
            50,
        ),
        (
            "conv 2 3x3 tanh padding=same\n maxpool 2x2\n dense 3 softmax",
            "1x6x6",
            36,
        ),
        (
            "conv 2 3x3 tanh padding=same\n avgpool 3x3 stride=1\n dense 3 softmax",
            "1x6x6",
            36,
        ),
        (
            "avgpool 2x2\n conv 2 2x2 tanh\n dense 3 softmax",
            "2x6x6",
            72,
        ),
        (
            "conv 4 3x3 tanh\n conv 2 3x3 tanh padding=same stride=2\n dense 3 softmax",
            "1x7x7",
            49,
        ),
    ];
    for (model, input, features) in cases {
        let worst = gradcheck(model, input, features);
        assert!(worst < 1e-5, "{model}: worst relative error {worst}");
    }
}

#[test]
fn every_activation_after_a_conv_has_the_right_gradient() {
    for act in [
        "identity",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "softplus",
        "softsign",
        "swish",
        "mish",
        "gelu",
    ] {
        let model = format!("conv 2 3x3 {act} padding=same\n maxpool 2x2\n dense 3 softmax");
        let worst = gradcheck(&model, "1x6x6", 36);
        assert!(worst < 1e-5, "{act}: worst relative error {worst}");
    }
}

/// The checker's diagnostics (message and help) for a model body.
fn errors(body: &str) -> Vec<(String, String)> {
    let src = format!("model m {{\n{body}\n loss mse\n}}\n");
    let (file, diags) = syntax::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let (_, diags) = check::check(&file);
    diags
        .iter()
        .map(|d| (d.message.clone(), d.help.join(" ")))
        .collect()
}

#[test]
fn image_layer_errors_say_where_and_what_to_do() {
    let cases = [
        (
            "input 64\n conv 4 3x3",
            "'conv' needs an image input",
            "input 1x8x8",
        ),
        (
            "input 1x8x8\n dense 8\n maxpool 2x2",
            "'maxpool' needs an image input",
            "before the dense layers",
        ),
        (
            "input 1x4x4\n conv 4 5x5",
            "the 5x5 kernel is larger than its 4x4 input",
            "padding=same",
        ),
        (
            "input 1x4x4\n maxpool 2x2\n maxpool 2x2\n avgpool 2x2",
            "leaves an empty output",
            "at most 1x1",
        ),
        (
            "input 1x8x8\n conv 4 3x3 stride=0",
            "invalid stride 0",
            "1 or more",
        ),
        (
            "input 1x8x8\n maxpool 2x2 stride=0",
            "invalid stride 0",
            "1 or more",
        ),
        (
            "input 1x8x8\n conv 4 3x3 softmax\n dense 2",
            "'softmax' is not allowed on a conv layer",
            "dense K softmax",
        ),
        (
            "input 1x8x8\n conv 4 3x5",
            "invalid kernel size 3x5",
            "square",
        ),
    ];
    for (body, message, help) in cases {
        let e = errors(body);
        assert_eq!(e.len(), 1, "{body}: {e:?}");
        assert!(e[0].0.contains(message), "{body}: {e:?}");
        assert!(e[0].1.contains(help), "{body}: {e:?}");
    }
}

#[test]
fn shapes_and_parameters_through_a_cnn() {
    let src = "model m {\n input 3x9x9\n conv 8 3x3 relu stride=2 padding=same\n maxpool 2x2 stride=1\n \
               conv 4 2x2 bias=false\n avgpool 2x2\n flatten\n dense 5\n loss mse\n}\n";
    let (file, _) = syntax::parse(src);
    let (program, diags) = check::check(&file);
    assert!(diags.is_empty(), "{diags:?}");
    let m = &program.models[0];
    let shapes: Vec<String> = m
        .layers
        .iter()
        .map(|l| l.output_shape().to_string())
        .collect();
    // 9 → ceil(9/2) = 5 → 5-2+1 = 4 → 4-2+1 = 3 → (3-2)/2+1 = 1.
    assert_eq!(shapes, ["8x5x5", "8x4x4", "4x3x3", "4x1x1", "4", "5"]);
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1", "maxpool1", "conv2", "avgpool1", "flatten1", "dense1"
        ]
    );
    let params: Vec<(String, Vec<usize>, usize, usize)> = m
        .params()
        .into_iter()
        .map(|p| (p.name, p.shape, p.fan_in, p.fan_out))
        .collect();
    assert_eq!(params[0], ("conv1.weight".into(), vec![8, 3, 3, 3], 27, 72));
    assert_eq!(params[2], ("conv2.weight".into(), vec![4, 8, 2, 2], 32, 16));
    assert_eq!(m.parameter_count(), 8 * 27 + 8 + 4 * 32 + 5 * 4 + 5);
}

/// The f32 host kernels take vector paths on planes of a multiple of 8
/// (im2col and col2im of `same` convolutions on the batch's middle images)
/// and the broadcast kernel for the kernel gradient: the forward pass and
/// both gradients, f64 and f32 JIT, against the interpreter on such
/// planes (4×4, 8×8, 2×4, 4×6), five images, several channels.
#[test]
fn convolution_gradients_on_vector_sized_planes_match_the_interpreter() {
    let mut rng = Rng(11);
    for &(h, w) in &[(4, 4), (8, 8), (2, 4), (4, 6)] {
        for &(c, n, k) in &[(2, 3, 3), (1, 16, 3), (3, 2, 1)] {
            let batch = 5;
            let Some(ax) = axes(h, w, k, 1, true) else {
                continue;
            };
            let mut g = Graph::new();
            let x = leaf(&mut g, "x", &[batch, c, h, w], true);
            let wt = leaf(&mut g, "w", &[n, c, k, k], false);
            let r = leaf(&mut g, "r", &[batch, n, h, w], true);
            let y = g.make(Op::Window(WindowOp::Conv, window(h, w, k, 1, ax)), &[x, wt]);
            let yr = g.mul2(y, r);
            let loss = g.sum_all(yr);
            let grads = slope::diff::grad(&mut g, loss, &[x, wt]).grads;
            let vals = [
                rng.values(batch * c * h * w),
                rng.values(n * c * k * k),
                rng.values(batch * n * h * w),
            ];
            let vals: Vec<&[f64]> = vals.iter().map(Vec::as_slice).collect();
            let mut env = Env::new();
            for (&id, v) in [x, wt, r].iter().zip(&vals) {
                let Op::Leaf(leaf) = g.node(id).op else {
                    unreachable!()
                };
                let shape = slope::graph::eval::concrete(&g.leaf_info(leaf).shape, batch);
                let name = g.leaf_info(leaf).name.clone();
                env.insert(name, Tensor::new(shape, v.to_vec()).expect("fits"));
            }
            for (what, out) in [("y", y), ("dx", grads[0]), ("dw", grads[1])] {
                let want = eval(&g, &[out], &env, batch).expect("evaluates")[0]
                    .data
                    .clone();
                let what = format!("{what} of conv c{c} n{n} {h}x{w} k{k}");
                agree(&what, &g, &[x, wt, r], &vals, out, batch, &want);
            }
        }
    }
}
