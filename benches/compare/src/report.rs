//! Medians, spreads and ratios; the markdown table and the SVG chart.

use std::fmt::Write as _;
use std::time::Duration;

/// The runs of one side of one row.
pub struct Sample {
    /// Median time per operation, in nanoseconds.
    pub median_ns: f64,
    /// (max − min) / median of the per-run times, as a fraction.
    pub spread: f64,
}

impl Sample {
    pub fn new(runs: &[Duration], ops: usize) -> Sample {
        let mut per_op: Vec<f64> = runs.iter().map(|d| d.as_nanos() as f64 / ops as f64).collect();
        per_op.sort_by(|a, b| a.total_cmp(b));
        let median = per_op[per_op.len() / 2];
        let spread = (per_op[per_op.len() - 1] - per_op[0]) / median;
        Sample {
            median_ns: median,
            spread,
        }
    }
}

/// One line of the comparison.
pub struct Row {
    pub group: String,
    pub workload: &'static str,
    pub ours: String,
    pub peer: String,
    pub ours_sample: Sample,
    pub peer_sample: Option<Sample>,
    /// The median over runs of peer time ÷ our time, each run's two sides timed back to
    /// back (on disk, on directories made together): what the machine was doing at that
    /// moment weighs on both and cancels out.
    pub paired_ratio: Option<f64>,
}

/// The median of the per-run ratios `peer[i] / ours[i]`.
pub fn paired_ratio(ours: &[Duration], peer: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(peer)
        .map(|(a, b)| b.as_secs_f64() / a.as_secs_f64())
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    ratios[ratios.len() / 2]
}

impl Row {
    /// peer / ours: above 1 we are faster.
    pub fn ratio(&self) -> Option<f64> {
        self.paired_ratio
    }

    pub fn line(&self) -> String {
        let peer = match &self.peer_sample {
            Some(p) => format!("{} ±{:.0}%", human(p.median_ns), p.spread * 100.0),
            None => "unsupported".into(),
        };
        let ratio = self.ratio().map_or("—".into(), |r| format!("{r:.2}×"));
        format!(
            "| {} | {} | {} | {} ±{:.0}% | {} | {} | {} |",
            self.group,
            self.workload,
            self.ours,
            human(self.ours_sample.median_ns),
            self.ours_sample.spread * 100.0,
            self.peer,
            peer,
            ratio
        )
    }
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Prints the table and writes it and the chart under `target/bench-compare/`; `false` if
/// they could not be written.
pub fn write(rows: &[Row]) -> bool {
    let mut md = String::new();
    let _ = writeln!(md, "_{}_\n", provenance());
    let _ = writeln!(
        md,
        "| group | workload | ours | ours median/op ±spread | peer | peer median/op ±spread | peer/ours, median of runs |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(md, "{}", r.line());
    }
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-compare");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("report.md"), &md))
        .and_then(|()| std::fs::write(dir.join("ratios.svg"), svg(rows)))
    {
        eprintln!("cannot write the report under {}: {e}", dir.display());
        false
    } else {
        eprintln!("wrote {}/report.md and ratios.svg", dir.display());
        true
    }
}

/// When and where the figures were measured, for the report and the chart.
pub fn provenance() -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    format!(
        "measured {date} on {cores} cores, {mem_gib} GiB RAM (Linux), {} interleaved runs per side; \
         peer/ours is the median of the runs' ratios",
        crate::REPS
    )
}

/// A horizontal bar per row: log-scale ratio around the 1.0× line; unsupported rows greyed.
fn svg(rows: &[Row]) -> String {
    let (label_w, chart_w, bar_h, gap) = (470.0, 420.0, 16.0, 5.0);
    let height = 75.0 + rows.len() as f64 * (bar_h + gap);
    let width = label_w + chart_w + 70.0;
    // log2 scale from ¼× to 22×.
    let (lo, hi) = (-2.0_f64, 4.5_f64);
    let x_of = |ratio: f64| label_w + (ratio.log2().clamp(lo, hi) - lo) / (hi - lo) * chart_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">store vs peers: peer time / store time (log scale; right of 1× = store faster)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="34" fill="#555">{}</text>"##,
        escape(&provenance())
    );
    let top = 60.0;
    for (mark, label) in [
        (0.25, "¼×"),
        (0.5, "½×"),
        (1.0, "1×"),
        (2.0, "2×"),
        (4.0, "4×"),
        (8.0, "8×"),
        (16.0, "16×"),
    ] {
        let x = x_of(mark);
        let stroke = if mark == 1.0 { "black" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{stroke}" />"#,
            top - 8.0,
            height - 8.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" text-anchor="middle">{label}</text>"#,
            top - 11.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let label = format!("{}: {} — vs {}", r.group, r.workload, r.peer);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 12.0,
            escape(&label)
        );
        match r.ratio() {
            Some(ratio) => {
                let (x0, x1) = (x_of(1.0), x_of(ratio));
                let (left, w) = if x1 >= x0 { (x0, x1 - x0) } else { (x1, x0 - x1) };
                let color = if ratio >= 1.0 { "#3a7d44" } else { "#c0392b" };
                let _ = writeln!(
                    s,
                    r#"<rect x="{left}" y="{y}" width="{}" height="{bar_h}" fill="{color}"/>"#,
                    w.max(1.0)
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}">{ratio:.2}×</text>"#,
                    label_w + chart_w + 6.0,
                    y + 12.0
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{}" fill="#888">peer: unsupported (store: {})</text>"##,
                    x_of(1.0) + 6.0,
                    y + 12.0,
                    human(r.ours_sample.median_ns)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
