//! From bench figures to answers: at which input sizes each model streams live (a realtime
//! multiplier ≥ 1.0), and what the daemon should run at each size.

use serde::Serialize;

use super::bench::{BenchResults, ModelFigure};

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub model: String,
    pub height: u32,
    /// Film seconds made per second, through the whole pipeline (estimated).
    pub multiplier: Option<f64>,
    pub live: bool,
    pub extrapolated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub height: u32,
    /// What plays live.
    pub live_model: Option<String>,
    /// What makes the final file, when it is not the live model.
    pub final_model: Option<String>,
    /// How long making the final file takes, in film lengths.
    pub final_film_lengths: Option<f64>,
    pub text: String,
}

/// A model's speed inside the pipeline: its figure alone times the efficiency the pipeline run
/// measured (the AI models share the configured model's; lanczos, bound by the encoder, uses
/// its own pipeline run scaled by pixel count).
pub fn verdicts(results: &BenchResults) -> Vec<Verdict> {
    let ai_efficiency = results
        .pipeline
        .iter()
        .find(|p| p.model != "lanczos")
        .and_then(|p| p.efficiency)
        .map_or(1.0, |e| e.min(1.0));
    let lanczos_pipeline = results.pipeline.iter().find(|p| p.model == "lanczos");
    results
        .models
        .iter()
        .map(|figure| {
            let fps = figure
                .fps
                .map(|fps| match (figure.model.as_str(), lanczos_pipeline) {
                    ("lanczos", Some(p)) => {
                        let pixels =
                            f64::from(p.width * p.height) / f64::from(figure.width * figure.height);
                        fps.min(p.fps * pixels)
                    }
                    ("lanczos", None) => fps,
                    _ => fps * ai_efficiency,
                });
            let multiplier = fps.map(|fps| fps / results.film_fps);
            Verdict {
                model: figure.model.clone(),
                height: figure.height,
                multiplier,
                live: multiplier.is_some_and(|m| m >= 1.0),
                extrapolated: figure.extrapolated || figure.model == "lanczos",
            }
        })
        .collect()
}

/// Per input height: the configured model when it streams live, else another AI model that
/// does, else `lanczos` live with the configured model making the final file.
pub fn recommend(verdicts: &[Verdict], configured: &str, heights: &[u32]) -> Vec<Recommendation> {
    heights
        .iter()
        .map(|&height| {
            let at: Vec<&Verdict> = verdicts.iter().filter(|v| v.height == height).collect();
            let find = |name: &str| at.iter().find(|v| v.model == name).copied();
            let live_ai = find(configured)
                .filter(|v| v.live)
                .or_else(|| at.iter().find(|v| v.live && v.model != "lanczos").copied());
            let slow = find(configured).and_then(|v| v.multiplier);
            let lengths = slow.filter(|m| *m > 0.0).map(|m| 1.0 / m);
            if let Some(v) = live_ai {
                return Recommendation {
                    height,
                    live_model: Some(v.model.clone()),
                    final_model: None,
                    final_film_lengths: None,
                    text: format!("{} live ({:.2}x)", v.model, v.multiplier.unwrap_or(0.0)),
                };
            }
            let final_text = match lengths {
                Some(n) => format!("{configured} for the final file (~{n:.0}x the film's length)"),
                None => format!("{configured} for the final file"),
            };
            match find("lanczos").filter(|v| v.live) {
                Some(l) => Recommendation {
                    height,
                    live_model: Some("lanczos".into()),
                    final_model: Some(configured.to_string()),
                    final_film_lengths: lengths,
                    text: format!(
                        "lanczos live ({:.2}x), {final_text}",
                        l.multiplier.unwrap_or(0.0)
                    ),
                },
                None => Recommendation {
                    height,
                    live_model: None,
                    final_model: Some(configured.to_string()),
                    final_film_lengths: lengths,
                    text: format!("nothing streams live here: {final_text}, watch it afterwards"),
                },
            }
        })
        .collect()
}

/// The figure at `height` of `model`, formatted, `~` marking an extrapolated one.
pub fn cell(figure: Option<&ModelFigure>) -> String {
    match figure {
        Some(ModelFigure {
            fps: Some(fps),
            extrapolated,
            ..
        }) => format!("{}{}", if *extrapolated { "~" } else { "" }, fps_text(*fps)),
        Some(_) => "n/a".to_string(),
        None => String::new(),
    }
}

/// Three significant digits or so: 0.00123, 0.456, 12.3, 456.
pub fn fps_text(value: f64) -> String {
    match value {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v if v >= 1.0 => format!("{v:.2}"),
        v if v >= 0.01 => format!("{v:.3}"),
        v => format!("{v:.5}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(model: &str, height: u32, multiplier: f64) -> Verdict {
        Verdict {
            model: model.into(),
            height,
            multiplier: Some(multiplier),
            live: multiplier >= 1.0,
            extrapolated: false,
        }
    }

    #[test]
    fn lanczos_plays_live_when_no_ai_model_keeps_up() {
        let verdicts = vec![
            verdict("realesr-animevideov3-x2", 360, 0.02),
            verdict("lanczos", 360, 3.0),
            verdict("realesr-animevideov3-x2", 1080, 1.5),
            verdict("lanczos", 1080, 0.5),
        ];
        let advice = recommend(&verdicts, "realesr-animevideov3-x2", &[360, 1080]);
        assert_eq!(advice[0].live_model.as_deref(), Some("lanczos"));
        assert_eq!(
            advice[0].final_model.as_deref(),
            Some("realesr-animevideov3-x2")
        );
        assert_eq!(advice[0].final_film_lengths, Some(50.0));
        assert_eq!(
            advice[1].live_model.as_deref(),
            Some("realesr-animevideov3-x2")
        );
        assert!(advice[1].final_model.is_none());
    }
}
