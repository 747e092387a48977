//! Charts drawn on the server as SVG: no chart library, nothing to load, printable, and
//! readable without colour (every bar and mark carries its value or a label).

use std::fmt::Write;

/// Escapes text for SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars, one per row: (label, value, text shown after the bar).
pub fn bars(title: &str, rows: &[(String, f64, String)], max: f64) -> String {
    let row_h = 26.0;
    let left = 150.0;
    let width = 720.0;
    let bar_w = width - left - 90.0;
    let height = 30.0 + row_h * rows.len() as f64;
    let max = if max > 0.0 { max } else { 1.0 };
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = 20.0 + row_h * i as f64;
        let w = (value / max).clamp(0.0, 1.0) * bar_w;
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end" class="lbl">{l}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{h}" class="bar"><title>{l}: {v}</title></rect><text x="{vx:.1}" y="{ty}" class="val">{v}</text>"#,
            lx = left - 8.0,
            ty = y + 15.0,
            l = esc(label),
            h = row_h - 8.0,
            vx = left + w + 6.0,
            v = esc(shown),
        );
    }
    s.push_str("</svg>");
    s
}

/// A line over labelled points (the 12-month trend), values from 0 to `max`.
pub fn line(title: &str, points: &[(String, Option<f64>)], max: f64) -> String {
    let (width, height, left, bottom, top) = (720.0, 240.0, 40.0, 40.0, 16.0);
    let plot_h = height - bottom - top;
    let step = if points.len() > 1 { (width - left - 20.0) / (points.len() - 1) as f64 } else { 0.0 };
    let max = if max > 0.0 { max } else { 1.0 };
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - frac);
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{x2}" y1="{y}" y2="{y}" class="grid"/><text x="{tx}" y="{ty}" text-anchor="end" class="lbl">{v:.0}</text>"#,
            x2 = width - 10.0,
            tx = left - 6.0,
            ty = y + 4.0,
            v = max * frac
        );
    }
    let mut path = String::new();
    for (i, (label, value)) in points.iter().enumerate() {
        let x = left + step * i as f64;
        let _ = write!(s, r#"<text x="{x}" y="{y}" text-anchor="middle" class="lbl">{l}</text>"#, y = height - 14.0, l = esc(label));
        if let Some(v) = value {
            let y = top + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
            let _ = write!(path, "{}{x:.1},{y:.1} ", if path.is_empty() { "M" } else { "L" });
            let _ = write!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" class="dot"><title>{l}: {v:.1}</title></circle><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" class="val">{v:.1}</text>"#,
                l = esc(label),
                ty = y - 8.0
            );
        }
    }
    if !path.is_empty() {
        let _ = write!(s, r#"<path d="{path}" class="trend"/>"#);
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_carry_their_values_and_escape_labels() {
        let s = bars("得分", &[("1 <SCJG>".into(), 80.0, "80.0".into()), ("2 ZRZY".into(), 40.0, "40.0".into())], 100.0);
        assert!(s.contains("&lt;SCJG&gt;") && !s.contains("<SCJG>"));
        assert!(s.contains(">80.0<") && s.contains(">40.0<"));
        assert!(s.contains(r#"role="img""#));
        let l = line("按时办结率", &[("26-01".into(), Some(50.0)), ("26-02".into(), None), ("26-03".into(), Some(100.0))], 100.0);
        assert_eq!(l.matches("<circle").count(), 2, "months without data have no point");
        assert!(l.contains("<path"));
    }
}
