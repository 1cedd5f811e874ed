//! Charts as inline SVG, drawn here so the HTML report needs no script
//! library and opens offline. Every label goes through [`escape`].

use std::fmt::Write;

/// Text made safe for HTML and SVG, in element content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One segment of a stacked bar: its value, its CSS class (colour) and its tooltip.
pub struct Segment {
    /// Its length in the chart's unit.
    pub value: f64,
    /// The CSS class that colours it.
    pub class: &'static str,
    /// Shown on hover.
    pub tip: String,
}

/// A labelled horizontal bar made of stacked segments.
pub struct Bar {
    /// The bar's name.
    pub label: String,
    /// Its segments, stacked left to right.
    pub segments: Vec<Segment>,
}

const LABEL_W: f64 = 260.0;
const ROW_H: f64 = 22.0;

/// Horizontal stacked bars, one row per bar, scaled to the longest; `unit`
/// formats the total printed after each bar.
pub fn stacked_bars(bars: &[Bar], width: f64, unit: impl Fn(f64) -> String) -> String {
    let max = bars.iter().map(|b| b.segments.iter().map(|s| s.value).sum::<f64>()).fold(0.0, f64::max);
    let plot_w = width - LABEL_W - 90.0;
    let height = ROW_H * bars.len() as f64 + 4.0;
    let mut svg = open(width, height, "bars");
    for (i, bar) in bars.iter().enumerate() {
        let y = i as f64 * ROW_H + 2.0;
        let _ = write!(
            svg,
            r#"<text class="label" x="{x}" y="{ty}" text-anchor="end">{label}</text>"#,
            x = LABEL_W - 6.0,
            ty = y + 15.0,
            label = escape(&crate::units::shorten(&bar.label, 38)),
        );
        let mut x = LABEL_W;
        for seg in &bar.segments {
            let w = if max > 0.0 { seg.value / max * plot_w } else { 0.0 };
            let _ = write!(
                svg,
                r#"<rect class="{c}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h}"><title>{tip}</title></rect>"#,
                c = seg.class,
                h = ROW_H - 6.0,
                tip = escape(&seg.tip),
            );
            x += w;
        }
        let total: f64 = bar.segments.iter().map(|s| s.value).sum();
        let _ = write!(
            svg,
            r#"<text class="value" x="{:.1}" y="{:.1}">{}</text>"#,
            x + 4.0,
            y + 15.0,
            escape(&unit(total))
        );
    }
    svg + "</svg>"
}

/// A point of a series; `flag` marks it (an outlier, a peak).
pub struct Point {
    /// Horizontal position, in data units.
    pub x: f64,
    /// Vertical position, in data units.
    pub y: f64,
    /// A note drawn at the point (the peak).
    pub flag: Option<String>,
}

/// A line over time with its flagged points circled and labelled; `x_unit`
/// and `y_unit` format the axis ends.
pub fn line_chart(
    points: &[Point],
    width: f64,
    height: f64,
    x_unit: impl Fn(f64) -> String,
    y_unit: impl Fn(f64) -> String,
) -> String {
    let (left, bottom, top) = (70.0, 22.0, 10.0);
    let (x0, x1) = bounds(points.iter().map(|p| p.x));
    let (_, y1) = bounds(points.iter().map(|p| p.y));
    let sx = |x: f64| left + (x - x0) / (x1 - x0).max(f64::MIN_POSITIVE) * (width - left - 10.0);
    let sy = |y: f64| height - bottom - y / y1.max(f64::MIN_POSITIVE) * (height - bottom - top);
    let mut svg = open(width, height, "line");
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{left}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{b}"/>"#,
        b = height - bottom,
        r = width - 10.0,
    );
    let _ = write!(
        svg,
        r#"<text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{}" text-anchor="end">0</text>"#,
        left - 4.0,
        top + 8.0,
        escape(&y_unit(y1)),
        left - 4.0,
        height - bottom,
    );
    let _ = write!(
        svg,
        r#"<text class="tick" x="{left}" y="{}">{}</text><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
        height - 6.0,
        escape(&x_unit(x0)),
        width - 10.0,
        height - 6.0,
        escape(&x_unit(x1)),
    );
    svg.push_str(r#"<polyline class="series" points=""#);
    for p in points {
        let _ = write!(svg, "{:.1},{:.1} ", sx(p.x), sy(p.y));
    }
    svg.push_str(r#""/>"#);
    for p in points.iter().filter(|p| p.flag.is_some()) {
        let _ = write!(
            svg,
            r#"<circle class="flag" cx="{:.1}" cy="{:.1}" r="4"><title>{}</title></circle>"#,
            sx(p.x),
            sy(p.y),
            escape(p.flag.as_deref().unwrap_or_default()),
        );
    }
    svg + "</svg>"
}

fn open(width: f64, height: f64, class: &str) -> String {
    format!(
        r#"<svg class="chart {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}">"#
    )
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// At most `max` characters, with an ellipsis where cut.
/// Bins of a per-call distribution sketch.
const DIST_BINS: usize = 24;

/// A per-call duration distribution as a small inline sketch: a histogram
/// of `values` on a log scale from the shortest call to the longest (linear
/// where they are within a factor of two), or, where the values were not
/// kept, a box from p50 to p95 with whiskers to the extremes and a tick at p99.
/// The figures are in its tooltip; it scales to whatever size CSS gives it.
pub fn distribution(values: &[u64], stats: &stageprof_analysis::DurationStats) -> String {
    let (lo, hi) = (stats.min_ns.max(1) as f64, stats.max_ns.max(1) as f64);
    let log = hi / lo > 2.0;
    let at = |v: u64| -> f64 {
        let v = (v.max(1) as f64).clamp(lo, hi);
        let f = if hi <= lo {
            0.5
        } else if log {
            (v / lo).ln() / (hi / lo).ln()
        } else {
            (v - lo) / (hi - lo)
        };
        f * DIST_BINS as f64
    };
    let tip = format!(
        "{} calls: min {}, p50 {}, p95 {}, p99 {}, max {}{}",
        stats.count,
        crate::units::duration(stats.min_ns),
        crate::units::duration(stats.p50_ns),
        crate::units::duration(stats.p95_ns),
        crate::units::duration(stats.p99_ns),
        crate::units::duration(stats.max_ns),
        if log { " (log scale)" } else { "" }
    );
    let mut svg = format!(
        r#"<svg class="dist" viewBox="0 0 {DIST_BINS} 10" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(&tip)
    );
    if values.is_empty() {
        let (p50, p95, p99) = (at(stats.p50_ns), at(stats.p95_ns), at(stats.p99_ns));
        let _ = write!(
            svg,
            r#"<path class="whisker" d="M0 5H{DIST_BINS}M{p99:.2} 2V8"/><rect class="box" x="{p50:.2}" y="2" width="{:.2}" height="6"/>"#,
            (p95 - p50).max(0.2)
        );
    } else {
        let mut bins = [0u32; DIST_BINS];
        for &v in values {
            bins[(at(v) as usize).min(DIST_BINS - 1)] += 1;
        }
        let most = f64::from(*bins.iter().max().unwrap_or(&1).max(&1));
        svg.push_str(r#"<path class="hist" d="M0 10"#);
        for (i, &n) in bins.iter().enumerate() {
            let _ = write!(svg, "V{:.2}H{}", 10.0 - 10.0 * f64::from(n) / most, i + 1);
        }
        svg.push_str(r#"V10Z"/>"#);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape(r#"<script>"a"&'b'</svg>]]>"#),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/svg&gt;]]&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn bars_scale_to_the_longest() {
        let bar = |label: &str, v: f64| Bar {
            label: label.into(),
            segments: vec![Segment { value: v, class: "cpu", tip: label.into() }],
        };
        let svg = stacked_bars(&[bar("a", 2.0), bar("b", 1.0)], 650.0, |v| format!("{v}"));
        // Plot width 650 - 260 - 90 = 300: the longest bar fills it, the other half.
        assert!(svg.contains(r#"width="300.0""#), "{svg}");
        assert!(svg.contains(r#"width="150.0""#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn a_distribution_bins_every_call_or_draws_a_box() {
        let values = [10, 10, 10, 20, 40, 40];
        let stats = stageprof_analysis::DurationStats {
            count: 6,
            min_ns: 10,
            max_ns: 40,
            p50_ns: 10,
            p95_ns: 40,
            p99_ns: 40,
            ..Default::default()
        };
        let svg = distribution(&values, &stats);
        // Log scale over 10..40: 10 falls in the first bin (the tallest), 40 in the last (two thirds as tall).
        let path = svg.split("d=\"").nth(1).unwrap();
        assert!(path.starts_with("M0 10V0.00H1V10.00H2"), "{path}");
        assert!(path.contains("V3.33H24V10Z"), "{path}");
        assert!(svg.contains("6 calls: min 10 ns") && svg.contains("(log scale)"), "{svg}");
        let boxed = distribution(&[], &stats);
        assert!(boxed.contains("class=\"box\"") && !boxed.contains("hist"), "{boxed}");
    }
}
