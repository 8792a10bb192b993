//! The scorecard as a picture: per scenario, one bar per approach for the
//! mean steps (with the shortest honest episode marked) and one for the
//! fix rate. SVG or PNG, chosen by the file's extension; text is drawn
//! with the DejaVu Sans font built into the binary, so no system font is
//! needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::scorecard::Scorecard;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("--plot {0}: the file name must end in .svg or .png")]
    Extension(String),
    #[error("nothing to plot: no approach ran")]
    Empty,
    #[error("cannot draw the plot: {0}")]
    Draw(String),
    #[error("cannot load the built-in font: {0}")]
    Font(String),
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x9e, 0x9e, 0x9e),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xd6, 0x27, 0x28),
];

fn font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "DejaVu Sans is not a font ab_glyph can read".to_string())
    })
    .clone()
    .map_err(PlotError::Font)
}

/// One approach: its mean steps and fix rate per scenario.
type Series = (String, Vec<Option<f64>>, Vec<Option<f64>>);

struct Data {
    scenarios: Vec<String>,
    series: Vec<Series>,
    shortest: Vec<Option<f64>>,
    title: String,
}

fn data(card: &Scorecard) -> Result<Data, PlotError> {
    let ran: Vec<_> = card.approaches.iter().filter(|a| a.all.is_some()).collect();
    if ran.is_empty() || card.scenarios.is_empty() {
        return Err(PlotError::Empty);
    }
    let cell = |a: &super::scorecard::ApproachResult, s: &str| {
        a.scenarios.iter().find(|c| c.scenario == s).cloned()
    };
    let series = ran
        .iter()
        .map(|a| {
            let steps = card
                .scenarios
                .iter()
                .map(|s| cell(a, s).and_then(|c| c.mean_steps))
                .collect();
            let fix = card
                .scenarios
                .iter()
                .map(|s| cell(a, s).and_then(|c| c.fix_rate))
                .collect();
            (a.name.clone(), steps, fix)
        })
        .collect();
    let shortest = card
        .scenarios
        .iter()
        .map(|s| cell(ran[0], s).and_then(|c| c.shortest))
        .collect();
    let missing: Vec<&str> = card
        .approaches
        .iter()
        .filter(|a| a.all.is_none())
        .map(|a| a.name.as_str())
        .collect();
    let title = format!(
        "scorecard {}: split {}, {} repeat(s), {} brain{}",
        card.run_id,
        card.split,
        card.repeats,
        card.brain,
        if missing.is_empty() {
            String::new()
        } else {
            format!("; not available: {}", missing.join(", "))
        }
    );
    Ok(Data {
        scenarios: card.scenarios.clone(),
        series,
        shortest,
        title,
    })
}

/// Size in pixels for a scorecard's plot.
fn size(d: &Data) -> (u32, u32) {
    let band = (d.series.len() as u32 * 9 + 10).max(24);
    (1280, 150 + band * d.scenarios.len() as u32)
}

/// Writes the plot to `path` (`.svg` or `.png`).
pub fn write(card: &Scorecard, path: &Path) -> Result<(), PlotError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let d = data(card)?;
    font()?;
    let dims = size(&d);
    match ext.as_deref() {
        Some("svg") => draw(SVGBackend::new(path, dims).into_drawing_area(), &d),
        Some("png") => draw(BitMapBackend::new(path, dims).into_drawing_area(), &d),
        _ => Err(PlotError::Extension(path.display().to_string())),
    }
}

/// The plot as an SVG document.
pub fn svg(card: &Scorecard) -> Result<String, PlotError> {
    let d = data(card)?;
    font()?;
    let mut out = String::new();
    draw(
        SVGBackend::with_string(&mut out, size(&d)).into_drawing_area(),
        &d,
    )?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &Data) -> Result<(), PlotError> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| PlotError::Draw(format!("{e:?}"));
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(70);
    top.draw(&Text::new(
        d.title.clone(),
        (12, 10),
        ("sans-serif", 18).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    // Legend: one swatch per approach.
    let mut x = 12;
    for (i, (name, _, _)) in d.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        top.draw(&Rectangle::new([(x, 42), (x + 14, 56)], color.filled()))
            .map_err(err)?;
        top.draw(&Text::new(name.clone(), (x + 20, 42), ("sans-serif", 14)))
            .map_err(err)?;
        x += 30 + 9 * name.len() as i32;
    }
    top.draw(&Text::new(
        "| shortest honest episode (oracle fix + 2)",
        (x + 10, 42),
        ("sans-serif", 14).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    let (width, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally((width as f64 * 0.64) as u32);
    let n = d.scenarios.len();
    let max_steps = d
        .series
        .iter()
        .flat_map(|(_, s, _)| s.iter().flatten())
        .chain(d.shortest.iter().flatten())
        .fold(1.0f64, |m, v| m.max(*v));
    let names = d.scenarios.clone();
    let label = move |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    };
    let bands = d.series.len() as f64;
    let bar = |scenario: usize, k: usize| {
        let height = 0.8 / bands;
        let y0 = scenario as f64 - 0.4 + k as f64 * height;
        (y0, y0 + height * 0.9)
    };
    // Scenarios top to bottom: y runs from n-0.5 down to -0.5.
    let y_range = (n as f64 - 0.5)..-0.5;
    let mut steps = ChartBuilder::on(&left)
        .margin(10)
        .caption("mean steps", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..max_steps * 1.1, y_range.clone())
        .map_err(err)?;
    steps
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&label)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("steps")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (k, (_, values, _)) in d.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        steps
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let (y0, y1) = bar(i, k);
                v.map(|v| Rectangle::new([(0.0, y0), (v, y1)], color.filled()))
            }))
            .map_err(err)?;
    }
    steps
        .draw_series(d.shortest.iter().enumerate().filter_map(|(i, v)| {
            v.map(|v| {
                PathElement::new(
                    vec![(v, i as f64 - 0.45), (v, i as f64 + 0.45)],
                    BLACK.stroke_width(2),
                )
            })
        }))
        .map_err(err)?;
    let mut fix = ChartBuilder::on(&right)
        .margin(10)
        .caption("fix rate (verified by the probe)", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..100.0, y_range)
        .map_err(err)?;
    fix.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("% fixed")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (k, (_, _, values)) in d.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        fix.draw_series(values.iter().enumerate().filter_map(|(i, v)| {
            let (y0, y1) = bar(i, k);
            v.map(|v| Rectangle::new([(0.0, y0), (v * 100.0, y1)], color.filled()))
        }))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
