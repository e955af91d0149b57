//! Output of the topology benchmarks: trial lines, summaries, the comparison table, the
//! HdrHistogram percentile-distribution text (`.hgrm`) and SVG latency plots.

use crate::agent::ping::PingReport;
use crate::rig::{Target, TrialResult};
use crate::throughput::{Outcome, LOSS_THRESHOLD};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::Path;

/// One line per trial.
pub fn trial_line(target: Target, label: &str, t: &TrialResult) -> String {
    let requested = if t.load.rate > 0.0 {
        format!("{:>9.0} pps", t.load.rate)
    } else {
        "      max    ".to_string()
    };
    let verdict = if t.loss() < LOSS_THRESHOLD {
        "pass"
    } else {
        "FAIL"
    };
    let mut line = format!(
        "  [{target}] trial {label:>3}: requested {requested}  offered {:>9.0} pps  forwarded {:>9.0} pps  loss {:>7.3}%  {verdict}",
        t.offered_pps(),
        t.forwarded_pps(),
        t.loss() * 100.0
    );
    if t.generator_limited() {
        line.push_str("  (generator below the requested rate)");
    }
    if t.sink_drops() > 0 {
        let _ = write!(
            line,
            "  ({} dropped by the sinks' own buffers)",
            t.sink_drops()
        );
    }
    if let Some(back) = t.replies_returned {
        let _ = write!(line, "  (replies {} sent, {back} back)", t.replies_sent());
    }
    if t.bad_checksums() > 0 {
        let _ = write!(line, "  ({} bad checksums)", t.bad_checksums());
    }
    let drops = t.drops.describe();
    if !drops.is_empty() {
        let _ = write!(line, "  (drops: {drops})");
    }
    line
}

/// The counts of one trial, for whoever checks them (the TCP smoke test does).
pub fn trial_summary(target: Target, t: &TrialResult) -> String {
    let mut s = format!(
        "{target}: {} packets offered {}, forwarded {}, loss {:.3}%",
        t.load.family.traffic(t.load.proto),
        t.offered(),
        t.forwarded(),
        t.loss() * 100.0
    );
    if let Some(back) = t.replies_returned {
        let _ = write!(
            s,
            "; replies {} sent, {back} back; {} bad checksums",
            t.replies_sent(),
            t.bad_checksums()
        );
    }
    s.push('\n');
    s
}

pub fn throughput_summary(target: Target, o: &Outcome) -> String {
    let m = &o.max_trial;
    let mut s = format!(
        "{target}: max-rate trial offered {:.0} pps, forwarded {:.0} pps, loss {:.3}%\n",
        m.offered_pps(),
        m.forwarded_pps(),
        m.loss() * 100.0
    );
    if o.generator_bound {
        let _ = writeln!(
            s,
            "{target}: throughput >= {:.0} pps at < {}% loss: the generator could not saturate the target (offered rate was the limit)",
            o.throughput_pps,
            LOSS_THRESHOLD * 100.0
        );
    } else {
        let _ = writeln!(
            s,
            "{target}: throughput {:.0} pps at < {}% loss ({} search trial(s))",
            o.throughput_pps,
            LOSS_THRESHOLD * 100.0,
            o.trials.len()
        );
    }
    s
}

pub fn latency_summary(target: Target, r: &PingReport) -> String {
    format!(
        "{target}: {} sent, {} received, {} lost at {:.0} req/s; latency p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us (send lag max {:.1} us)\n",
        r.sent, r.received, r.lost, r.rate, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us, r.send_lag_max_us
    )
}

/// Median (mean of the two middle values for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// HdrHistogram's percentile distribution text (what `outputPercentileDistribution` writes
/// and the online plotter reads), values in microseconds from a nanosecond histogram.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut last = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            last += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {last:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {last:10}");
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        // HdrHistogram's sub-bucket count: 2 * 10^digits rounded up to a power of two.
        (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
    );
    s
}

pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<()> {
    std::fs::write(path, hgrm(h)).with_context(|| format!("writing {}", path.display()))
}

/// Points of a latency-by-percentile curve: x = log10(1 / (1 - q)) (0 = p0, 2 = p99,
/// 3 = p99.9 ...), y = microseconds.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let max_x = ((h.len() as f64).log10()).clamp(1.0, 6.0);
    let mut pts = Vec::new();
    let steps = 200;
    for i in 0..=steps {
        let x = max_x * i as f64 / steps as f64;
        let q = 1.0 - 10f64.powf(-x);
        pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
    }
    pts
}

/// An SVG plot of the latency distribution of each (name, histogram): latency against
/// percentile on a log scale, as HdrHistogram's plotter draws it.
pub fn write_svg(path: &Path, title: &str, series: &[(String, Histogram<u64>)]) -> Result<()> {
    use plotters::prelude::*;
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, h)| (n.clone(), percentile_curve(h)))
        .collect();
    let max_x = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(2.0f64, f64::max);
    let max_y = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (us)")
            .x_labels(max_x.ceil() as usize + 1)
            .x_label_formatter(&|x| {
                let p = 100.0 * (1.0 - 10f64.powf(-x));
                if p < 99.0 {
                    format!("{p:.0}%")
                } else {
                    let digits = (x - 2.0).round().max(0.0) as usize;
                    format!("{p:.digits$}%")
                }
            })
            .draw()?;
        let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ping::new_histogram;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap(); // 1 .. 1000 us
        }
        h
    }

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let text = hgrm(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First row: the minimum at percentile 0.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first[0], "1.000");
        assert_eq!(first[1], "0.000000000000");
        // The last data row reaches percentile 1 and the total count.
        let last_row = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let cols: Vec<&str> = last_row.split_whitespace().collect();
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "1000");
        assert!(
            text.contains("#[Max     =      1000.447, Total count    =         1000]")
                || text.contains("Total count    =         1000]")
        );
    }

    #[test]
    fn svg_is_written() {
        let dir = std::env::temp_dir().join(format!("xvs-bench-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.svg");
        write_svg(
            &p,
            "test",
            &[("a".into(), sample()), ("b".into(), new_histogram())],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
