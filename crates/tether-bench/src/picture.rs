//! The latency distributions as a picture: one cumulative curve per series (x: latency in
//! milliseconds, log scale; y: share of changes at or below it), written as a small SVG so it
//! renders anywhere without a plotting dependency.

use std::fmt::Write;
use std::time::Duration;

const COLORS: [&str; 4] = ["#2b6cb0", "#c05621", "#276749", "#6b46c1"];

pub fn cdf_svg(title: &str, series: &[(&str, Vec<Duration>)]) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 440.0, 60.0, 90.0, 40.0, 20.0);
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().map(|d| d.as_secs_f64() * 1000.0)).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.1).log10().floor();
    let hi = all.iter().copied().fold(0.0, f64::max).max(1.0).log10().ceil().max(lo + 1.0);
    let x = |ms: f64| left + (ms.max(0.1).log10() - lo) / (hi - lo) * (w - left - right);
    let y = |q: f64| h - bottom - q * (h - bottom - top);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="#fff"/>
<text x="{left}" y="22" font-size="15">{title}</text>
"##
    );
    // Axes, decades and quartiles.
    let mut d = lo;
    while d <= hi {
        let px = x(10f64.powf(d));
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{top}" stroke="#e2e8f0"/>"##, h - bottom);
        let _ = writeln!(
            s,
            r##"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            h - bottom + 16.0,
            fmt_ms(10f64.powf(d))
        );
        d += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.99] {
        let label = if q == 0.99 { "p99".to_string() } else { format!("{:.0}%", q * 100.0) };
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e2e8f0"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            w - right,
            left - 6.0,
            y(q) + 4.0,
            py = y(q)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">latency (ms, log scale); share of requests at or below</text>"##,
        (w + left) / 2.0,
        h - bottom + 34.0
    );
    for (i, (name, v)) in series.iter().enumerate() {
        let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len().max(1) as f64;
        let points: Vec<String> =
            ms.iter().enumerate().map(|(k, m)| format!("{:.1},{:.1}", x(*m), y((k + 1) as f64 / n))).collect();
        let c = COLORS[i % COLORS.len()];
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#, points.join(" "));
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{c}">■ {name} (n={})</text>"#,
            left,
            h - bottom + 56.0 + 16.0 * i as f64,
            ms.len()
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_curve_per_series() {
        let d = |ms| std::time::Duration::from_millis(ms);
        let svg = super::cdf_svg("t", &[("a", vec![d(1), d(10), d(100)]), ("b", vec![d(5)])]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a (n=3)") && svg.contains("b (n=1)"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
