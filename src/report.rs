//! Stage 8a: the gradient-flow report (spec §8) as pure functions from
//! recorded numbers to SVG and HTML text, so every picture can be
//! snapshot-tested; `cli` writes the files.
//!
//! The pictures are drawn with `plotters`' SVG backend (text stays text: no
//! system fonts are read). One run draws a line per layer; several runs
//! (`slope compare`) draw a line per run on shared axes.
//!
//! **Architecture Invariant:** `report` uses `train`'s records only; it
//! never trains, prints or touches files.

use crate::train::EpochReport;
use crate::train::flow::FlowReport;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One training run's records.
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// The run's name in legends (an activation in `slope compare`).
    pub label: &'a str,
    /// Every epoch's report, epoch 1 first.
    pub epochs: &'a [EpochReport],
    /// Every probe measurement, epoch 0 first.
    pub flow: &'a [FlowReport],
}

/// A drawing failed (a bug: the backend writes to a string).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportError(pub String);

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot draw the report: {}", self.0)
    }
}

impl std::error::Error for ReportError {}

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
type Result<T> = std::result::Result<T, ReportError>;

fn fail(e: impl std::fmt::Display) -> ReportError {
    ReportError(e.to_string())
}

const SIZE: (u32, u32) = (800, 500);

/// The colour of series `i`.
fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLOURS[i % COLOURS.len()]
}

/// One line: its legend label, colour, width and points.
struct Line {
    label: String,
    colour: RGBAColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// The range of the finite (and, for a log axis, positive) values.
fn y_range(lines: &[Line], log: bool) -> (f64, f64) {
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    match (lo.is_finite() && hi.is_finite(), log) {
        (false, true) => (1e-3, 1.0),
        (false, false) => (0.0, 1.0),
        (true, true) => (lo / 1.5, hi * 1.5),
        (true, false) if hi - lo < 1e-12 => (lo - 0.5, hi + 0.5),
        (true, false) => (lo.min(0.0), hi + 0.05 * (hi - lo)),
    }
}

/// Drops the points a chart cannot show (non-finite, or ≤ 0 on a log axis).
fn keep(points: impl IntoIterator<Item = (f64, f64)>, log: bool) -> Vec<(f64, f64)> {
    let ok = |y: f64| y.is_finite() && (!log || y > 0.0);
    points.into_iter().filter(|p| ok(p.1)).collect()
}

/// Axes, labels and lines of one chart on `area`.
struct Chart<'t> {
    title: &'t str,
    x_desc: &'t str,
    y_desc: &'t str,
    x: (f64, f64),
    log: bool,
    /// Draw the legend (once per picture).
    legend: bool,
}

impl Chart<'_> {
    fn draw(&self, area: &Area<'_>, lines: &[Line]) -> Result<()> {
        let (lo, hi) = y_range(lines, self.log);
        let mut b = ChartBuilder::on(area);
        b.caption(self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        let x = self.x.0..self.x.1.max(self.x.0 + 1.0);
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(self.x_desc)
                    .y_desc(self.y_desc)
                    .x_labels(self.x.1 as usize - self.x.0 as usize + 1)
                    // Epochs and layers are whole numbers: no label between them.
                    .x_label_formatter(&|v| {
                        if (v - v.round()).abs() < 1e-9 {
                            format!("{v:.0}")
                        } else {
                            String::new()
                        }
                    })
                    .draw()
                    .map_err(fail)?;
                for l in lines {
                    let style = l.colour.stroke_width(l.width);
                    let s = chart
                        .draw_series(LineSeries::new(l.points.iter().copied(), style))
                        .map_err(fail)?;
                    if !l.label.is_empty() {
                        let c = l.colour;
                        s.label(l.label.as_str()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                        });
                    }
                }
                if self.legend && lines.iter().any(|l| !l.label.is_empty()) {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .position(SeriesLabelPosition::UpperRight)
                        .draw()
                        .map_err(fail)?;
                }
            }};
        }
        if self.log {
            finish!(
                b.build_cartesian_2d(x, (lo..hi).log_scale())
                    .map_err(fail)?
            );
        } else {
            finish!(b.build_cartesian_2d(x, lo..hi).map_err(fail)?);
        }
        Ok(())
    }
}

/// Draws `paint` on a fresh SVG of `size` and returns the text.
fn svg(size: (u32, u32), paint: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        paint(&root)?;
        root.present().map_err(fail)?;
    }
    Ok(text)
}

/// The last epoch across runs (at least 1).
fn last_epoch(runs: &[Run<'_>]) -> f64 {
    let last = runs.iter().filter_map(|r| r.flow.last().map(|f| f.epoch));
    last.chain(runs.iter().map(|r| r.epochs.len()))
        .max()
        .unwrap_or(1) as f64
}

/// A line of run or layer `i`; `faint` ones (validation, the last epoch)
/// are lighter and thinner.
fn line(label: String, i: usize, faint: bool, points: Vec<(f64, f64)>) -> Line {
    let (colour, width) = match faint {
        false => (colour(i).to_rgba(), 2),
        true => (colour(i).mix(0.45), 2),
    };
    Line {
        label,
        colour,
        width,
        points,
    }
}

/// `label, ` before a series name when several runs share a chart.
fn prefix(runs: &[Run<'_>], r: &Run<'_>) -> String {
    if runs.len() == 1 {
        String::new()
    } else {
        format!("{}, ", r.label)
    }
}

type Metric = fn(&EpochReport) -> Option<f64>;

/// Training and validation lines of one metric, for every run.
fn epoch_lines(runs: &[Run<'_>], metric: &str, train: Metric, val: Metric) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let pts = |f: Metric| {
            keep(
                r.epochs
                    .iter()
                    .filter_map(|e| Some((e.epoch as f64, f(e)?))),
                false,
            )
        };
        let name = prefix(runs, r);
        lines.push(line(
            format!("{name}training {metric}"),
            i,
            false,
            pts(train),
        ));
        let v = pts(val);
        if !v.is_empty() {
            lines.push(line(format!("{name}validation {metric}"), i, true, v));
        }
    }
    lines
}

/// `loss.svg`: training and validation loss by epoch, and accuracy (a
/// second panel) where there is one.
pub fn loss_svg(runs: &[Run<'_>]) -> Result<String> {
    let accuracy = runs
        .iter()
        .any(|r| r.epochs.iter().any(|e| e.accuracy.is_some()));
    let x = (1.0, last_epoch(runs));
    svg(SIZE, |root| {
        let panels = if accuracy {
            root.split_evenly((1, 2))
        } else {
            vec![root.clone()]
        };
        let losses = epoch_lines(runs, "loss", |e| Some(e.loss), |e| e.val_loss);
        let chart = Chart {
            title: "Loss by epoch",
            x_desc: "epoch",
            y_desc: "loss (mean per row)",
            x,
            log: false,
            legend: true,
        };
        chart.draw(&panels[0], &losses)?;
        if accuracy {
            let acc = epoch_lines(runs, "accuracy", |e| e.accuracy, |e| e.val_accuracy);
            let chart = Chart {
                title: "Accuracy by epoch",
                y_desc: "accuracy (fraction correct)",
                ..chart
            };
            chart.draw(&panels[1], &acc)?;
        }
        Ok(())
    })
}

/// `delta_rms` of layer `l` by epoch.
fn delta_by_epoch(r: &Run<'_>, l: usize) -> Vec<(f64, f64)> {
    keep(
        r.flow
            .iter()
            .filter_map(|f| Some((f.epoch as f64, f.layers.get(l)?.delta_rms))),
        true,
    )
}

/// `flow.svg`: `delta_rms` by epoch on a log scale, one line per layer (one
/// run) or the first layer's, one line per run (several).
pub fn flow_svg(runs: &[Run<'_>]) -> Result<String> {
    let mut lines = Vec::new();
    let title = match runs {
        [r] => {
            let names = r
                .flow
                .first()
                .map(|f| f.layers.iter().map(|l| l.name.clone()).collect())
                .unwrap_or_else(Vec::new);
            for (l, name) in names.into_iter().enumerate() {
                lines.push(line(name, l, false, delta_by_epoch(r, l)));
            }
            "Back-propagated signal by epoch, per layer"
        }
        _ => {
            for (i, r) in runs.iter().enumerate() {
                lines.push(line(r.label.to_string(), i, false, delta_by_epoch(r, 0)));
            }
            "Back-propagated signal at the first layer, by epoch"
        }
    };
    let chart = Chart {
        title,
        x_desc: "epoch",
        y_desc: "δ rms per example (log scale)",
        x: (0.0, last_epoch(runs)),
        log: true,
        legend: true,
    };
    svg(SIZE, |root| chart.draw(root, &lines))
}

/// `delta_rms` by layer (from 1) at one measurement.
fn delta_by_layer(f: &FlowReport) -> Vec<(f64, f64)> {
    keep(
        f.layers
            .iter()
            .enumerate()
            .map(|(l, s)| ((l + 1) as f64, s.delta_rms)),
        true,
    )
}

/// `depth.svg`: `delta_rms` by layer on a log scale, at epoch 0, the middle
/// epoch and the last (one run), or at epoch 0 and the last, per run.
pub fn depth_svg(runs: &[Run<'_>]) -> Result<String> {
    let mut lines = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let n = r.flow.len();
        let picks: Vec<usize> = match (runs.len(), n) {
            (_, 0) => vec![],
            (1, _) => vec![0, (n - 1) / 2, n - 1],
            _ => vec![0, n - 1],
        };
        let mut seen = Vec::new();
        for (k, &p) in picks.iter().enumerate() {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            let f = &r.flow[p];
            let (colour_of, faint) = if runs.len() == 1 {
                (k, false)
            } else {
                (i, p != 0)
            };
            let label = format!("{}epoch {}", prefix(runs, r), f.epoch);
            lines.push(line(label, colour_of, faint, delta_by_layer(f)));
        }
    }
    let layers = runs
        .iter()
        .filter_map(|r| r.flow.first().map(|f| f.layers.len()))
        .max()
        .unwrap_or(1);
    let chart = Chart {
        title: "Back-propagated signal by depth",
        x_desc: "layer (1 = first)",
        y_desc: "δ rms per example (log scale)",
        x: (1.0, layers as f64),
        log: true,
        legend: true,
    };
    svg(SIZE, |root| chart.draw(root, &lines))
}

/// `saturation.svg`: `saturated` and `dead` by epoch, one panel per layer
/// (one run: both; several: `saturated`, one line per run).
pub fn saturation_svg(runs: &[Run<'_>]) -> Result<String> {
    let names: Vec<String> = runs
        .iter()
        .find_map(|r| r.flow.first())
        .map(|f| f.layers.iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default();
    let cols = names.len().clamp(1, 3);
    let rows = names.len().div_ceil(cols).max(1);
    let x = (0.0, last_epoch(runs));
    svg((SIZE.0, 60 + 260 * rows as u32), |root| {
        let root = root
            .titled("Saturated and dead units by epoch", ("sans-serif", 22))
            .map_err(fail)?;
        let panels = root.split_evenly((rows, cols));
        for (l, (name, area)) in names.iter().zip(&panels).enumerate() {
            let mut lines = Vec::new();
            for (i, r) in runs.iter().enumerate() {
                let stat = |f: fn(&crate::train::flow::LayerFlow) -> Option<f64>| {
                    keep(
                        r.flow
                            .iter()
                            .filter_map(|m| Some((m.epoch as f64, f(m.layers.get(l)?)?))),
                        false,
                    )
                };
                let who = prefix(runs, r);
                lines.push(line(
                    format!("{who}saturated"),
                    i,
                    false,
                    stat(|s| s.saturated),
                ));
                lines.push(line(format!("{who}dead"), i, true, stat(|s| s.dead)));
            }
            lines.retain(|l| !l.points.is_empty());
            let title = if lines.is_empty() {
                format!("{name}: none (identity/softmax)")
            } else {
                name.clone()
            };
            let chart = Chart {
                title: &title,
                x_desc: "epoch",
                y_desc: "fraction of units",
                x,
                log: false,
                legend: l == 0,
            };
            chart.draw(area, &lines)?;
        }
        Ok(())
    })
}

/// The four pictures of spec §8, as `(file name, SVG text)`.
pub fn pictures(runs: &[Run<'_>]) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("loss.svg".into(), loss_svg(runs)?),
        ("flow.svg".into(), flow_svg(runs)?),
        ("depth.svg".into(), depth_svg(runs)?),
        ("saturation.svg".into(), saturation_svg(runs)?),
    ])
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `index.html`: a static page (no scripts, no network) showing `sections`
/// (heading, preformatted text) and the pictures by file name.
pub fn index_html(title: &str, sections: &[(&str, &str)], pictures: &[&str]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}img{{max-width:100%;border:1px solid #ddd}}</style>\n\
         </head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    for (heading, text) in sections {
        h.push_str(&format!(
            "<h2>{}</h2>\n<pre>{}</pre>\n",
            escape(heading),
            escape(text)
        ));
    }
    h.push_str("<h2>Pictures</h2>\n");
    for p in pictures {
        h.push_str(&format!(
            "<figure><img src=\"{0}\" alt=\"{0}\"><figcaption>{0}</figcaption></figure>\n",
            escape(p)
        ));
    }
    h.push_str("</body>\n</html>\n");
    h
}
