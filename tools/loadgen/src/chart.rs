//! An SVG chart of the timeline: throughput (accepted and completed per second) above, latency
//! percentiles below, phases marked.

use std::path::Path;

use plotters::prelude::*;

use crate::report::TimelinePoint;

/// A line: its label, colour and value per second.
type Series = (&'static str, RGBColor, fn(&TimelinePoint) -> f64);

/// Draws `timeline` into `path`.
pub fn draw(path: &Path, title: &str, timeline: &[TimelinePoint]) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("chart: {e}");
    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (upper, lower) = root.split_vertically(380);
    let t_max = (timeline.len().max(2) - 1) as f64;

    let throughput_max = timeline
        .iter()
        .map(|p| p.accepted.max(p.completed))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(&upper)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..t_max, 0f64..throughput_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("per second")
        .draw()
        .map_err(|e| err(&e))?;
    let series: [Series; 3] = [
        ("orders accepted/s", BLUE, |p| p.accepted as f64),
        ("sagas completed/s", GREEN, |p| p.completed as f64),
        ("errors/s", RED, |p| p.errors as f64),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|p| (p.t as f64, value(p))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    phase_marks(&mut chart, timeline, throughput_max)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let latency_max = timeline
        .iter()
        .map(|p| p.post_p99_ms.max(p.e2e_p99_ms))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..t_max, 0f64..latency_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| err(&e))?;
    let series: [Series; 5] = [
        ("POST p50", RGBColor(120, 160, 255), |p| p.post_p50_ms),
        ("POST p95", RGBColor(40, 90, 230), |p| p.post_p95_ms),
        ("POST p99", RGBColor(10, 30, 140), |p| p.post_p99_ms),
        ("accept→terminal p50", RGBColor(255, 170, 80), |p| {
            p.e2e_p50_ms
        }),
        ("accept→terminal p99", RGBColor(200, 60, 0), |p| {
            p.e2e_p99_ms
        }),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|p| (p.t as f64, value(p))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    phase_marks(&mut chart, timeline, latency_max)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A grey line where each phase starts, with its name.
fn phase_marks(
    chart: &mut Chart<'_, '_>,
    timeline: &[TimelinePoint],
    y_max: f64,
) -> anyhow::Result<()> {
    let mut last: Option<&str> = None;
    for p in timeline {
        let name = p.phase.as_deref();
        if name != last {
            if let Some(name) = name {
                let x = p.t as f64;
                chart
                    .draw_series(LineSeries::new(
                        [(x, 0.0), (x, y_max)],
                        RGBColor(150, 150, 150).stroke_width(1),
                    ))
                    .map_err(|e| anyhow::anyhow!("chart: {e}"))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        name.to_owned(),
                        (x + 0.3, y_max * 0.97),
                        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
                    )))
                    .map_err(|e| anyhow::anyhow!("chart: {e}"))?;
            }
            last = name;
        }
    }
    Ok(())
}
