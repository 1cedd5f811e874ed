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
}
