//! The report's pictures: each SVG renders with a real renderer (resvg) to
//! a non-blank image, has its title, axes and legend as text, and the page
//! shows them without scripts. With `SLOPE_PNG_DIR` set, the renders are
//! also written there as PNG (to look at them), and with `SLOPE_SVG_DIR`
//! set the SVGs of that directory are rendered too.

use slope::report::{self, Run};
use slope::train::EpochReport;
use slope::train::flow::{FlowReport, LayerFlow};

fn epochs(n: usize, shift: f64) -> Vec<EpochReport> {
    (1..=n)
        .map(|e| EpochReport {
            epoch: e,
            loss: 2.0 / (e as f64 + shift),
            accuracy: Some(1.0 - 0.5 / e as f64),
            val_loss: Some(2.2 / (e as f64 + shift)),
            val_accuracy: Some(1.0 - 0.6 / e as f64),
            seconds: 0.1,
        })
        .collect()
}

fn flow(n: usize, gain: f64) -> Vec<FlowReport> {
    (0..=n)
        .map(|e| {
            let layers: Vec<LayerFlow> = (0..4)
                .map(|l| LayerFlow {
                    name: format!("dense{}", l + 1),
                    delta_rms: gain.powi(3 - l) * (1.0 + 0.1 * e as f64),
                    grad_rms: 0.01,
                    grad_max_abs: 0.1,
                    act_mean: 0.1,
                    act_std: 0.5,
                    saturated: (l < 3).then_some(0.3 / (1.0 + e as f64)),
                    dead: (l < 3).then_some(0.05),
                    update_ratio: (e > 0).then_some(0.01),
                })
                .collect();
            FlowReport {
                epoch: e,
                flow: layers[0].delta_rms / layers[3].delta_rms,
                probe_loss: 1.0,
                layers,
            }
        })
        .collect()
}

/// The share of pixels that are not white.
fn ink(svg: &str, name: &str) -> f64 {
    let mut opt = resvg::usvg::Options::default();
    let fonts = opt.fontdb_mut();
    fonts.load_system_fonts();
    // fontdb's default sans-serif is Arial; use a font this machine may have.
    fonts.set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_str(svg, &opt).expect("the SVG parses");
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    if let Ok(dir) = std::env::var("SLOPE_PNG_DIR") {
        pixmap.save_png(format!("{dir}/{name}.png")).unwrap();
    }
    let px = pixmap.pixels();
    let inked = px
        .iter()
        .filter(|p| p.red() < 240 || p.green() < 240 || p.blue() < 240)
        .count();
    inked as f64 / px.len() as f64
}

fn check_pictures(runs: &[Run<'_>], tag: &str, legend: &[&str]) {
    let pictures = report::pictures(runs).unwrap();
    let names: Vec<&str> = pictures.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["loss.svg", "flow.svg", "depth.svg", "saturation.svg"]
    );
    for (name, svg) in &pictures {
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(!svg.contains("<script"), "{name}");
        let share = ink(svg, &format!("{tag}-{name}"));
        assert!(
            share > 0.01 && share < 0.6,
            "{name}: {share} of the pixels are inked"
        );
        // One run names its layers in flow.svg and saturation.svg only.
        let names_layers = runs.len() > 1 || name == "flow.svg" || name == "saturation.svg";
        for word in legend.iter().filter(|_| names_layers) {
            assert!(svg.contains(word), "{name} names {word}");
        }
    }
    let text = |n: usize| pictures[n].1.as_str();
    assert!(text(0).contains("Loss by epoch") && text(0).contains("epoch"));
    assert!(text(1).contains("log scale") && text(1).contains("Back-propagated signal"));
    assert!(text(2).contains("layer (1 = first)"));
    assert!(text(3).contains("Saturated and dead units") && text(3).contains("dense4: none"));
}

#[test]
fn one_run_draws_every_picture() {
    let (e, f) = (epochs(6, 0.5), flow(6, 0.3));
    let runs = [Run {
        label: "deep",
        epochs: &e,
        flow: &f,
    }];
    check_pictures(&runs, "one", &["dense1", "dense4"]);
}

#[test]
fn several_runs_share_the_axes() {
    let (e1, f1) = (epochs(5, 0.5), flow(5, 0.2));
    let (e2, f2) = (epochs(5, 2.0), flow(5, 1.0));
    let runs = [
        Run {
            label: "sigmoid",
            epochs: &e1,
            flow: &f1,
        },
        Run {
            label: "relu",
            epochs: &e2,
            flow: &f2,
        },
    ];
    check_pictures(&runs, "two", &["sigmoid", "relu"]);
}

#[test]
fn non_finite_values_are_left_out() {
    let e = epochs(3, 1.0);
    let mut f = flow(3, 0.5);
    f[1].layers[0].delta_rms = f64::NAN;
    f[2].layers[1].delta_rms = 0.0;
    let runs = [Run {
        label: "x",
        epochs: &e,
        flow: &f,
    }];
    for (name, svg) in report::pictures(&runs).unwrap() {
        assert!(!svg.contains("NaN"), "{name}");
        assert!(ink(&svg, &format!("nan-{name}")) > 0.01);
    }
}

#[test]
fn the_page_needs_no_script_and_escapes_text() {
    let html = report::index_html("a <b>", &[("Model", "x < y & z")], &["loss.svg"]);
    assert!(html.contains("<img src=\"loss.svg\""));
    assert!(html.contains("x &lt; y &amp; z"));
    assert!(html.contains("a &lt;b&gt;"));
    assert!(!html.contains("<script") && !html.contains("http"));
}

#[test]
fn svg_files_of_a_directory_render() {
    let Ok(dir) = std::env::var("SLOPE_SVG_DIR") else {
        return;
    };
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "svg") {
            let svg = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                ink(&svg, &format!("dir-{name}")) > 0.01,
                "{}",
                path.display()
            );
        }
    }
}
