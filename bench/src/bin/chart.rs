//! Draws the benchmark's charts from bench/results.json with plotters (bitmap backend).
//!
//! ```text
//! chart RESULTS_JSON OUT_DIR FONT_TTF
//! ```
//! Writes OUT_DIR/benchmarks-tools.png (every tool, every operation, at the default K and N,
//! log scale, with the lower bound) and OUT_DIR/benchmarks-scaling.png (maestro's time
//! against N for each K). The font is registered at run time (plotters' `ab_glyph` feature)
//! so no system font lookup is needed.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde_json::Value;

type Error = Box<dyn std::error::Error>;

const OPS: [(&str, &str); 5] = [
    ("status", "status"),
    ("start", "start (from nothing)"),
    ("noop_start", "start (no-op)"),
    ("restart", "restart web"),
    ("stop", "stop"),
];
const TOOLS: [&str; 8] = [
    "maestro",
    "maestro_warm",
    "maestrong",
    "maestrong_tunnel",
    "docker",
    "docker_cm",
    "compose",
    "compose_cm",
];
// One per tool, then the model's bound (grey).
const COLORS: [RGBColor; 9] = [
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x0b, 0x5e, 0x47),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0xa6, 0x76, 0x1d),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0xe6, 0xab, 0x02),
    RGBColor(0x66, 0x66, 0x66),
];
const BOUND: &str = "model bound (a login per command)";

fn main() {
    if let Err(e) = run() {
        eprintln!("chart: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [results, out_dir, font] = args.as_slice() else {
        return Err("usage: chart RESULTS_JSON OUT_DIR FONT_TTF".into());
    };
    let font_bytes: &'static [u8] = Box::leak(std::fs::read(font)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font_bytes)
        .map_err(|_| "the font file is not a usable TrueType font")?;
    let data: Value = serde_json::from_str(&std::fs::read_to_string(results)?)?;
    tools_chart(&data, &format!("{out_dir}/benchmarks-tools.png"))?;
    scaling_chart(&data, &format!("{out_dir}/benchmarks-scaling.png"))?;
    Ok(())
}

fn runs(data: &Value) -> Vec<&Value> {
    data["runs"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn median(run: &Value, op: &str) -> Option<f64> {
    run["ops"][op]["median_s"].as_f64()
}

fn tools_chart(data: &Value, path: &str) -> Result<(), Error> {
    let k = data["default"]["ships"].as_u64().unwrap_or(4);
    let n = data["default"]["instances"].as_u64().unwrap_or(40);
    let at_default: Vec<&Value> = runs(data)
        .into_iter()
        .filter(|r| r["ships"].as_u64() == Some(k) && r["instances"].as_u64() == Some(n))
        .collect();
    // Series: each tool present, then the model's bound for a tool that logs in (maestro's row).
    let mut series: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for tool in TOOLS {
        if let Some(r) = at_default.iter().find(|r| r["tool"] == tool) {
            let label = r["label"].as_str().unwrap_or(tool).to_string();
            series.push((label, OPS.iter().map(|(op, _)| median(r, op)).collect()));
        } else if tool == "maestro" {
            series.push(("maestro (pending)".into(), vec![None; OPS.len()]));
        }
    }
    let login_row = at_default
        .iter()
        .find(|r| r["tool"] == "maestro")
        .or(at_default.first());
    if let Some(r) = login_row {
        series.push((
            BOUND.into(),
            OPS.iter()
                .map(|(op, _)| r["bound_s"][op].as_f64())
                .collect(),
        ));
    }
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(1.0f64, |a, &b| a.max(b));
    // The axis starts below the shortest bar (a warm status is under 0.1 s), never at 0.
    let min = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .filter(|v| **v > 0.0)
        .fold(0.1f64, |a, &b| a.min(b));
    let root = BitMapBackend::new(path, (1200, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let delay = data["delay_ms"].as_f64().unwrap_or(25.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Whole commands, K={k} ships, N={n} instances, one-way delay {delay} ms (median, log scale)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..OPS.len() as f64, (min / 2.0..max * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(OPS.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < OPS.len() {
                OPS[i].1.to_string()
            } else {
                String::new()
            }
        })
        .y_desc("seconds")
        .y_label_formatter(&|y| format!("{y}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (si, (label, values)) in series.iter().enumerate() {
        let color = COLORS[if label == BOUND { 8 } else { si.min(7) }];
        let bars = values.iter().enumerate().filter_map(|(oi, v)| {
            v.map(|v| {
                let x0 = oi as f64 + 0.1 + si as f64 * width;
                let floor = min / 2.0;
                Rectangle::new(
                    [(x0, floor), (x0 + width * 0.9, v.max(floor))],
                    color.filled(),
                )
            })
        });
        chart
            .draw_series(bars)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}

fn scaling_chart(data: &Value, path: &str) -> Result<(), Error> {
    // (op, K) -> [(N, seconds)] for maestro.
    let mut curves: BTreeMap<(&str, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs(data).into_iter().filter(|r| r["tool"] == "maestro") {
        let (Some(k), Some(n)) = (r["ships"].as_u64(), r["instances"].as_u64()) else {
            continue;
        };
        for op in ["status", "start", "stop"] {
            if let Some(v) = median(r, op) {
                curves.entry((op, k)).or_default().push((n as f64, v));
            }
        }
    }
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = curves
        .values()
        .flatten()
        .fold(1.0f64, |a, &(_, v)| a.max(v));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "maestro: time against the number of instances N, for K = 1, 4, 16 ships",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..210f64, 0f64..max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("instances N")
        .y_desc("seconds")
        .label_style(("sans-serif", 15))
        .draw()?;
    if curves.is_empty() {
        root.draw(&Text::new(
            "maestro's rows are pending: run ./bench.sh once start/status are implemented",
            (200, 280),
            ("sans-serif", 20),
        ))?;
    }
    let styles = [("status", 0usize), ("start", 1), ("stop", 2)];
    // Colour says the operation, line width the number of ships.
    for ((op, k), points) in curves.iter_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let shade = styles.iter().find(|s| s.0 == *op).map_or(0, |s| s.1);
        let color = COLORS[shade];
        let width = match k {
            1 => 1u32,
            2..=4 => 3,
            _ => 5,
        };
        let style = ShapeStyle::from(color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(format!("{op}, K={k}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        )?;
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
