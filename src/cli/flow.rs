//! `slope train --flow` and `--report`: the probe's per-layer table, the
//! warnings on vanishing or exploding signal, and the report directory
//! (written whole, by a rename, or not at all).

use super::common::{Loaded, LoadedData};
use super::{Failure, PathArg};
use crate::data::Dataset;
use crate::report::{self, Run};
use crate::train::flow::{DEFAULT_PROBE, FlowReport, Probe, ProbeLayer};
use crate::train::{Outcome, Settings, TrainError};
use clap::Args;
use std::path::Path;

/// The gradient-flow options of `slope train`.
#[derive(Args, Debug, Default, Clone)]
pub struct FlowArgs {
    /// Measure gradient flow (spec §8) at the initial weights and after every epoch.
    #[arg(long)]
    pub flow: bool,
    /// Probe rows for --flow (default 512; at most the training rows).
    #[arg(long, value_name = "N")]
    pub probe: Option<usize>,
    /// Write DIR/index.html with the gradient-flow pictures (implies --flow).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathArg>,
}

impl FlowArgs {
    /// True when the probe runs.
    pub fn enabled(&self) -> bool {
        self.flow || self.report.is_some()
    }

    /// Rejects bad usage (exit 2) and a report path that cannot be a
    /// directory (exit 1), before any work.
    pub fn check(&self) -> Result<(), Failure> {
        if self.probe == Some(0) {
            return Err(Failure::Usage(
                "error: invalid value for '--probe': must be at least 1\n".into(),
            ));
        }
        if self.probe.is_some() && !self.enabled() {
            return Err(Failure::Usage(
                "error: '--probe' needs '--flow' (or '--report')\n".into(),
            ));
        }
        match &self.report {
            Some(dir) => check_report_dir(dir),
            None => Ok(()),
        }
    }
}

/// Fails early when `dir` is a file or its parent is not a directory.
pub fn check_report_dir(dir: &Path) -> Result<(), Failure> {
    let bad = |why: String| {
        Failure::Input(format!(
            "error: cannot write the report to '{}': {why}\n",
            dir.display()
        ))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("it is a file, not a directory".into()));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad(format!(
            "the directory '{}' does not exist",
            parent.display()
        )));
    }
    if dir.file_name().is_none() {
        return Err(bad("the path names no directory".into()));
    }
    Ok(())
}

/// Writes `files` into `dir`: first into a temporary sibling, then renamed
/// into place (an existing report is replaced only once the new one is whole).
pub fn write_report_dir(dir: &Path, files: &[(String, String)]) -> Result<(), Failure> {
    check_report_dir(dir)?;
    let fail = |e: std::io::Error| {
        Failure::Input(format!(
            "error: cannot write the report to '{}': {}\n",
            dir.display(),
            super::source::io_message(&e)
        ))
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let sibling = |tag: &str| dir.with_file_name(format!(".{name}.{tag}{}", std::process::id()));
    let (tmp, old) = (sibling("tmp"), sibling("old"));
    let result = (|| {
        std::fs::create_dir(&tmp)?;
        for (file, text) in files {
            std::fs::write(tmp.join(file), text)?;
        }
        let existed = dir.is_dir();
        if existed {
            std::fs::rename(dir, &old)?;
        }
        if let Err(e) = std::fs::rename(&tmp, dir) {
            if existed {
                let _ = std::fs::rename(&old, dir);
            }
            return Err(e);
        }
        if existed {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map_err(fail)
}

/// A statistic for the table: 3 significant digits, `-` when absent.
fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => format!("{v}"),
        Some(v) if v != 0.0 && !(1e-2..1e4).contains(&v.abs()) => format!("{v:.2e}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// The per-layer table printed at the end of `slope train --flow`.
pub fn table(probe: &Probe) -> String {
    let (Some(first), Some(last)) = (probe.history.first(), probe.history.last()) else {
        return String::new();
    };
    let mut rows = vec![[
        "layer".to_string(),
        "activation".into(),
        "δ rms @0".into(),
        format!("δ rms @{}", last.epoch),
        "saturated".into(),
        "dead".into(),
        "update ratio".into(),
    ]];
    for (i, layer) in probe.layers.iter().enumerate() {
        let (a, b) = (&first.layers[i], &last.layers[i]);
        rows.push([
            layer.name.clone(),
            layer.activation.clone(),
            num(Some(a.delta_rms)),
            num(Some(b.delta_rms)),
            percent(b.saturated),
            percent(b.dead),
            num(b.update_ratio),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = format!(
        "gradient flow on {} probe rows (δ rms: the back-propagated signal per example)\n",
        probe.rows
    );
    for r in &rows {
        let cells: Vec<String> = (r.iter().zip(&widths))
            .map(|(c, &w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        s.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
    }
    s.push_str(&format!(
        "  flow (δ rms of the first layer / the last): {} at epoch 0, {} at epoch {}\n",
        num(Some(first.flow)),
        num(Some(last.flow)),
        last.epoch
    ));
    s
}

/// Why the signal shrinks or grows, in terms of the layers' derivatives.
fn reason(layers: &[&ProbeLayer], vanishing: bool) -> String {
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let Some(worst) = layers
        .iter()
        .filter_map(|l| l.bound.map(|g| (l, g)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
    else {
        return format!("layers {}", names.join(", "));
    };
    let (act, g) = (&worst.0.activation, worst.1);
    if !vanishing {
        return format!(
            "layers {}: the weights amplify the signal more than {act}′ ≤ {g:.3} damps it; try init=glorot or a lower lr",
            names.join(", ")
        );
    }
    if g < 0.9 {
        format!(
            "{act}′ ≤ {g:.3}: the signal shrinks about {:.0}× per {act} layer (layers {}); try relu with init=he",
            1.0 / g,
            names.join(", ")
        )
    } else {
        format!(
            "{act}′(z) → 0 for large |z| and the init keeps the gain per layer below 1 (layers {}); try relu with init=he",
            names.join(", ")
        )
    }
}

/// The warnings for `flow` < 1e-2 (vanishing) or > 1e2 (exploding), at
/// the initial weights or at the end.
pub fn warnings(probe: &Probe) -> Vec<String> {
    let hidden: Vec<&ProbeLayer> = match probe.layers.split_last() {
        Some((_, rest)) if !rest.is_empty() => rest.iter().collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let ends = [probe.history.first(), probe.history.last()];
    let mut seen = Vec::new();
    for r in ends.into_iter().flatten() {
        let FlowReport { epoch, flow, .. } = *r;
        let kind = if flow < 1e-2 {
            Some(true)
        } else if flow > 1e2 {
            Some(false)
        } else {
            None
        };
        if let Some(vanishing) = kind
            && !seen.contains(&vanishing)
        {
            seen.push(vanishing);
            let what = if vanishing { "vanishes" } else { "explodes" };
            out.push(format!(
                "warning: the back-propagated signal {what}: flow = {} at epoch {epoch}; {}",
                num(Some(flow)),
                reason(&hidden, vanishing)
            ));
        }
    }
    out
}

/// The compiled probe when `--flow` or `--report` asks for one.
pub fn probe(
    args: &FlowArgs,
    loaded: &Loaded,
    data: &Dataset,
    settings: &Settings,
) -> Result<Option<Probe>, TrainError> {
    if !args.enabled() {
        return Ok(None);
    }
    let rows = args.probe.unwrap_or(DEFAULT_PROBE);
    Probe::new(&loaded.program, loaded.model(), data, settings, rows).map(Some)
}

/// The model summary and gradient equations, as the report shows them.
pub fn model_text(loaded: &Loaded, data: Option<&LoadedData>) -> (String, String) {
    let summary = super::check::summary_text(loaded, data);
    let equations = match crate::pipeline::lower(&loaded.program, loaded.model()) {
        Ok(net) => {
            crate::equations::derive(net, loaded.model()).render(crate::graph::print::Style::Text)
        }
        Err(d) => d.message,
    };
    (summary, equations)
}

/// After training: the table and warnings on stderr, and the report.
pub fn finish(
    args: &FlowArgs,
    quiet: bool,
    loaded: &Loaded,
    data: &LoadedData,
    probe: &Probe,
    outcome: &Outcome,
) -> Result<(), Failure> {
    if !quiet {
        eprint!("{}", table(probe));
        eprintln!(
            "  probe: {:.1} ms to compile, {:.1} ms measuring ({:.1}% of the training time)",
            probe.jit_seconds * 1e3,
            probe.seconds * 1e3,
            100.0 * probe.seconds / outcome.train_seconds.max(1e-9)
        );
    }
    for w in warnings(probe) {
        eprintln!("{w}");
    }
    let Some(dir) = &args.report else {
        return Ok(());
    };
    let model = loaded.model();
    let runs = [Run {
        label: &model.name,
        epochs: &outcome.epochs,
        flow: &probe.history,
    }];
    let (summary, equations) = model_text(loaded, Some(data));
    let text = format!("{}{}", table(probe), warnings(probe).join("\n"));
    let sections = [
        ("Model", summary.as_str()),
        ("Gradient flow", text.as_str()),
        ("Gradient equations", equations.as_str()),
    ];
    write_report(
        dir,
        &format!("slope train: {}", model.name),
        &sections,
        &runs,
    )?;
    if !quiet {
        eprintln!("  report written to {}", dir.join("index.html").display());
    }
    Ok(())
}

/// Draws the pictures of `runs` and writes them with `index.html` to `dir`.
pub fn write_report(
    dir: &Path,
    title: &str,
    sections: &[(&str, &str)],
    runs: &[Run<'_>],
) -> Result<(), Failure> {
    let mut files = report::pictures(runs).map_err(|e| Failure::Input(format!("error: {e}\n")))?;
    let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    files.push((
        "index.html".into(),
        report::index_html(title, sections, &names),
    ));
    write_report_dir(dir, &files)
}
