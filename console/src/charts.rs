//! The dashboard's charts: SVG drawn on the server with maud, a few dozen lines per shape.
//!
//! Why not a plotting crate: these are two shapes (columns over time, bars by category) on a
//! page whose CSP forbids inline style; plotters would add code to a function that must stay
//! small (issue 13's ≤ 6 MB) and write styles we would then have to allow. Here colours come
//! from classes in `console.css`, every chart is an `img` with a title, and every chart's
//! numbers are also a table (inside `<details>`) for screen readers and copying.

use maud::{html, Markup};

/// One set of values drawn across the buckets (one colour).
pub struct Series<'a> {
    pub name: &'a str,
    /// The CSS class that colours it (`in`, `out`, `ok`, `bad`, …).
    pub class: &'a str,
    pub values: Vec<f64>,
}

/// How values read on the axis and in the data table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scale {
    Count,
    /// 0.0–1.0, shown as per cent, axis fixed at 100 %.
    Share,
}

impl Scale {
    pub fn format(self, value: f64) -> String {
        match self {
            Scale::Count => format!("{}", value.round() as u64),
            Scale::Share => format!("{:.0} %", value * 100.0),
        }
    }

    /// The axis' top: 100 % for shares; for counts the smallest 1, 2 or 5 × 10ⁿ at or
    /// above the largest value, so ticks land on round numbers.
    fn top(self, max: f64) -> f64 {
        if self == Scale::Share {
            return 1.0;
        }
        let mut step = 1.0;
        loop {
            for m in [1.0, 2.0, 5.0] {
                if m * step >= max {
                    return m * step;
                }
            }
            step *= 10.0;
        }
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;
/// At most this many x labels, so they never overlap.
const MAX_LABELS: usize = 12;

/// Grouped columns, one group per bucket (`labels`), one column per series.
pub fn columns(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    scale: Scale,
) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let top = scale.top(max);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let group = plot_w / labels.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    let every = labels.len().div_ceil(MAX_LABELS).max(1);
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    html! {
        figure.chart {
            svg id=(id) role="img" aria-labelledby={ (id) "-title" } viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } {
                title id={ (id) "-title" } { (title) }
                @for tick in [0.0, top / 2.0, top] {
                    line.grid x1=(LEFT) x2=(WIDTH) y1=(y(tick)) y2=(y(tick)) {}
                    text.axis x=(LEFT - 6.0) y=(y(tick) + 4.0) text-anchor="end" { (scale.format(tick)) }
                }
                @for (i, label) in labels.iter().enumerate() {
                    @for (j, s) in series.iter().enumerate() {
                        @let value = s.values.get(i).copied().unwrap_or(0.0);
                        rect class=(s.class)
                            x=(LEFT + group * i as f64 + group * 0.1 + bar * j as f64)
                            y=(y(value)) width=(bar) height=(plot_h * value / top) {
                            title { (label) ", " (s.name) ": " (scale.format(value)) }
                        }
                    }
                    @if i % every == 0 {
                        text.axis x=(LEFT + group * (i as f64 + 0.5)) y=(HEIGHT - 6.0) text-anchor="middle" { (label) }
                    }
                }
            }
            @if series.len() > 1 {
                figcaption.legend {
                    @for s in series { span { span class={ "swatch " (s.class) } {} (s.name) } }
                }
            }
            details {
                summary { "Data: " (title) }
                table {
                    thead { tr { th scope="col" { "Bucket" } @for s in series { th scope="col" { (s.name) } } } }
                    tbody {
                        @for (i, label) in labels.iter().enumerate() {
                            tr {
                                th scope="row" { (label) }
                                @for s in series { td { (scale.format(s.values.get(i).copied().unwrap_or(0.0))) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Horizontal bars, one per category, largest first; `empty` when there are none.
pub fn bars(id: &str, title: &str, class: &str, rows: &[(String, u64)], empty: &str) -> Markup {
    const ROW: f64 = 22.0;
    const LABEL: f64 = 260.0;
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let height = ROW * rows.len() as f64 + 4.0;
    let room = WIDTH - LABEL - 60.0;
    html! {
        figure.chart {
            @if rows.is_empty() {
                p.empty id=(id) { (title) ": " (empty) }
            } @else {
                svg id=(id) role="img" aria-labelledby={ (id) "-title" } viewBox={ "0 0 " (WIDTH) " " (height) } {
                    title id={ (id) "-title" } { (title) }
                    @for (i, (label, n)) in rows.iter().enumerate() {
                        @let top = ROW * i as f64 + 2.0;
                        text.axis x=(LABEL - 8.0) y=(top + 15.0) text-anchor="end" { (label) }
                        rect class=(class) x=(LABEL) y=(top + 3.0) width=(room * *n as f64 / max) height=(ROW - 6.0) {
                            title { (label) ": " (n) }
                        }
                        text.axis x=(LABEL + room * *n as f64 / max + 6.0) y=(top + 15.0) { (n) }
                    }
                }
                details {
                    summary { "Data: " (title) }
                    table {
                        tbody { @for (label, n) in &rows { tr { th scope="row" { (label) } td { (n) } } } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_axes_end_on_round_numbers() {
        assert_eq!(Scale::Count.top(0.0), 1.0);
        assert_eq!(Scale::Count.top(1.0), 1.0);
        assert_eq!(Scale::Count.top(3.0), 5.0);
        assert_eq!(Scale::Count.top(17.0), 20.0);
        assert_eq!(Scale::Count.top(501.0), 1000.0);
        assert_eq!(Scale::Share.top(0.3), 1.0);
        assert_eq!(Scale::Share.format(0.875), "88 %");
    }

    #[test]
    fn a_column_is_as_tall_as_its_share_of_the_axis_and_says_its_value() {
        let labels = vec!["09:00".to_owned(), "10:00".to_owned()];
        let series = [Series {
            name: "in",
            class: "in",
            values: vec![2.0, 4.0],
        }];
        let svg = columns("c", "Texts", &labels, &series, Scale::Count).into_string();
        let plot_h = HEIGHT - BOTTOM - TOP;
        // Axis top is 5: the 4 column is 4/5 of the plot, the 2 column 2/5.
        assert!(
            svg.contains(&format!("height=\"{}\"", plot_h * 4.0 / 5.0)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!("height=\"{}\"", plot_h * 2.0 / 5.0)),
            "{svg}"
        );
        assert!(svg.contains("<title>10:00, in: 4</title>"));
        assert!(svg.contains("<th scope=\"row\">09:00</th><td>2</td>"));
    }

    #[test]
    fn bars_list_the_largest_first_and_escape_their_labels() {
        let rows = vec![("a<b".to_owned(), 1), ("c".to_owned(), 3)];
        let svg = bars("b", "Failures", "bad", &rows, "none").into_string();
        assert!(svg.find(">c<").unwrap() < svg.find("a&lt;b").unwrap());
        assert!(!svg.contains("a<b"));
        let none = bars("b", "Failures", "bad", &[], "none in this range").into_string();
        assert!(none.contains("none in this range") && !none.contains("<svg"));
    }
}
