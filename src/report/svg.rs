//! Small inline-SVG charts for the HTML report: time series on a shared time axis with the fault
//! windows shaded, and stacked bars. Hand-written so the report needs no script and no network.

use std::fmt::Write;

use super::junit::escape;

/// Chart geometry: the plot area inside the margins.
const WIDTH: f64 = 1180.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A shaded window (a fault) on the time axis.
pub struct Band {
    /// Start, ms.
    pub start_ms: u64,
    /// End, ms.
    pub end_ms: u64,
    /// Label drawn at the top of the band.
    pub label: String,
}

/// One line of a time-series chart.
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// Points (time ms, value); `None` breaks the line.
    pub points: Vec<(u64, Option<f64>)>,
}

fn x(t_ms: u64, span_ms: u64) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * t_ms as f64 / span_ms.max(1) as f64
}

fn y(value: f64, max: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - value / max.max(f64::MIN_POSITIVE))
}

/// A "nice" axis maximum at or above `value`.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|m| *m >= value).unwrap_or(10.0 * magnitude)
}

fn frame(svg: &mut String, span_ms: u64, max: f64, unit: &str, bands: &[Band]) {
    for (i, band) in bands.iter().enumerate() {
        let (x0, x1) = (x(band.start_ms, span_ms), x(band.end_ms.min(span_ms), span_ms));
        let _ = write!(
            svg,
            r##"<rect class="band" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}"/><text class="band-label" x="{:.1}" y="{:.1}">{}</text>"##,
            (x1 - x0).max(1.0),
            HEIGHT - TOP - BOTTOM,
            x0 + 3.0,
            TOP + 11.0 + 11.0 * (i % 3) as f64,
            escape(&band.label)
        );
    }
    for i in 0..=4 {
        let value = max * i as f64 / 4.0;
        let py = y(value, max);
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            py + 3.0,
            format_value(value, unit)
        );
    }
    let steps = 10;
    for i in 0..=steps {
        let t = span_ms * i / steps;
        let _ = write!(
            svg,
            r##"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}s</text>"##,
            x(t, span_ms),
            HEIGHT - 8.0,
            t / 1000
        );
    }
}

fn format_value(value: f64, unit: &str) -> String {
    if value >= 100.0 || value == 0.0 {
        format!("{value:.0}{unit}")
    } else if value >= 10.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.2}{unit}")
    }
}

fn open(title: &str) -> String {
    format!(
        r##"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"##,
        escape(title)
    )
}

/// A line chart of several series over `0..span_ms`, fault windows shaded.
pub fn lines(title: &str, unit: &str, span_ms: u64, series: &[Series], bands: &[Band]) -> String {
    let peak = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0, f64::max);
    let max = nice_max(peak);
    let mut svg = open(title);
    frame(&mut svg, span_ms, max, unit, bands);
    for s in series {
        let mut path = String::new();
        let mut pen_down = false;
        for &(t, value) in &s.points {
            match value {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(t, span_ms),
                        y(v, max)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg,
            r##"<path d="{path}" fill="none" stroke="{}" stroke-width="1.6"><title>{}</title></path>"##,
            s.color,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Stacked bars per time bucket: each bucket's values, bottom to top, with their colours.
pub fn stacked(
    title: &str,
    span_ms: u64,
    bucket_ms: u64,
    buckets: &[(u64, Vec<f64>)],
    colors: &[&str],
    bands: &[Band],
) -> String {
    let peak = buckets.iter().map(|(_, v)| v.iter().sum::<f64>()).fold(0.0, f64::max);
    let max = nice_max(peak);
    let mut svg = open(title);
    frame(&mut svg, span_ms, max, "", bands);
    let bar = (x(bucket_ms, span_ms) - x(0, span_ms) - 1.0).max(0.5);
    for (start_ms, values) in buckets {
        let mut base = 0.0;
        for (value, color) in values.iter().zip(colors) {
            if *value > 0.0 {
                let (top, bottom) = (y(base + value, max), y(base, max));
                let _ = write!(
                    svg,
                    r##"<rect x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{color}"/>"##,
                    x(*start_ms, span_ms),
                    (bottom - top).max(0.5)
                );
            }
            base += value;
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(2400.0), 2500.0);
    }

    #[test]
    fn a_chart_is_svg_with_its_bands_and_lines() {
        let series = [Series {
            name: "p99".into(),
            color: "#c00",
            points: vec![(0, Some(5.0)), (1000, None), (2000, Some(9.0))],
        }];
        let bands = [Band { start_ms: 500, end_ms: 1500, label: "crash <db>".into() }];
        let svg = lines("latency", "ms", 3000, &series, &bands);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("crash &lt;db&gt;"), "labels are escaped");
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 2, "a gap breaks the line: {svg}");
    }
}
