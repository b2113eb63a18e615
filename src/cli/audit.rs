//! `liveup audit`: is this machine fast enough to stream? `--output` times a finished or
//! growing output file; `--bench` measures each model and the pipeline here and says what can
//! stream live at which input size.

pub mod bench;
pub mod output;
pub mod verdict;

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use super::AuditArgs;
use crate::config::Config;
use crate::media::Tools;
use crate::upscale::{models, EngineOptions};
use bench::{BenchResults, BenchSettings};
use verdict::{cell, fps_text, Recommendation, Verdict};

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let tools = Tools::from_env();
    match (&args.output, args.bench) {
        (Some(output), false) => {
            // Only with --config: a daemon job that made this file is found through hls_root.
            let job = match &args.config {
                Some(file) => {
                    let config = Config::load(Some(file))?;
                    output::job_folder_for(&config.hls_root, output)
                }
                None => None,
            };
            let sample = Duration::from_secs_f64(args.sample_seconds.max(0.0));
            let audit = output::audit(&tools, output, sample, job.as_ref())
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("auditing {}", output.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&audit)?);
            } else {
                let fps = |v: Option<f64>| v.map_or("-".to_string(), fps_text);
                println!(
                    "Frames: {} | Sample FPS: {} | Avg FPS: {} | Multiplier: {} | {}{}",
                    audit.frames,
                    fps(audit.sampled_fps),
                    fps(audit.average_fps),
                    audit
                        .multiplier
                        .map_or("-".to_string(), |m| format!("{m:.3}x")),
                    audit.verdict,
                    if audit.growing {
                        " (still growing)"
                    } else {
                        ""
                    },
                );
            }
            Ok(())
        }
        (None, true) => bench(&args, &tools),
        _ => bail!("say what to audit: --output FILE or --bench"),
    }
}

fn bench(args: &AuditArgs, tools: &Tools) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let names: Vec<String> = match &args.models {
        Some(list) => list.clone(),
        None => models::catalogue().into_iter().map(|m| m.name).collect(),
    };
    for name in &names {
        models::find(name)?;
    }
    let pipeline_model = if names.contains(&config.model) {
        config.model.clone()
    } else {
        names.first().cloned().context("--models is empty")?
    };
    let settings = BenchSettings {
        models: names,
        heights: args.resolutions.clone(),
        budget: Duration::from_secs_f64(args.budget_seconds.max(1.0)),
        runs: args.runs.max(1),
        film_fps: args.film_fps,
        engine: EngineOptions {
            precision: args.precision.unwrap_or(config.precision),
            device: args.device.unwrap_or(config.device),
            ..config.engine_options()
        },
        pipeline_model: pipeline_model.clone(),
        clip_height: args.clip_height,
    };
    if !args.json {
        eprintln!(
            "measuring {} model(s) at {:?}p within about {:.0} s …",
            settings.models.len(),
            settings.heights,
            settings.budget.as_secs_f64()
        );
    }
    let results = bench::run(tools, &settings)
        .map_err(anyhow::Error::msg)
        .context("benchmark")?;
    let verdicts = verdict::verdicts(&results);
    let mut heights = settings.heights.clone();
    heights.sort_unstable();
    heights.dedup();
    let advice = verdict::recommend(&verdicts, &pipeline_model, &heights);
    if args.json {
        let mut value = serde_json::to_value(&results)?;
        value["verdicts"] = json!(verdicts);
        value["recommendations"] = json!(advice);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&results, &verdicts, &advice, &heights));
    }
    Ok(())
}

fn render(
    results: &BenchResults,
    verdicts: &[Verdict],
    advice: &[Recommendation],
    heights: &[u32],
) -> String {
    let mut names: Vec<&str> = Vec::new();
    for figure in &results.models {
        if !names.contains(&figure.model.as_str()) {
            names.push(&figure.model);
        }
    }
    let width = names.iter().map(|n| n.len()).max().unwrap_or(5).max(5) + 2;
    let header = |title: &str| {
        let mut line = format!("{title:<width$}");
        for h in heights {
            line.push_str(&format!("{:>12}", format!("{h}p")));
        }
        line + "\n"
    };
    let mut text = format!(
        "audit --bench on {}: film at {} fps, {:.0} s spent of a {:.0} s budget\n\n",
        results.device, results.film_fps, results.spent_seconds, results.budget_seconds
    );
    text.push_str(
        "model alone, frames per second (~ = extrapolated by pixel count from a smaller frame)\n",
    );
    text.push_str(&header("model"));
    for name in &names {
        let mut line = format!("{name:<width$}");
        for h in heights {
            let figure = results
                .models
                .iter()
                .find(|f| f.model == *name && f.height == *h);
            line.push_str(&format!("{:>12}", cell(figure)));
        }
        text.push_str(&line);
        text.push('\n');
        if let Some(note) = results
            .models
            .iter()
            .find(|f| f.model == *name && f.fps.is_none())
            .and_then(|f| f.note.as_ref())
        {
            text.push_str(&format!("  ({name}: {note})\n"));
        }
    }
    text.push('\n');
    for p in &results.pipeline {
        let alone = match (p.model_fps, p.efficiency) {
            (Some(m), Some(e)) => format!(
                " (model alone ~{} fps: the pipeline keeps {:.0} %)",
                fps_text(m),
                e * 100.0
            ),
            _ => String::new(),
        };
        text.push_str(&format!(
            "pipeline, {} on a generated {}x{} clip: {} frames at {} fps{alone}\n",
            p.model,
            p.width,
            p.height,
            p.frames,
            fps_text(p.fps)
        ));
    }
    text.push_str("\ncan stream live at (realtime multiplier through the pipeline, ≥ 1.0x streams smoothly)\n");
    text.push_str(&header("model"));
    for name in &names {
        let mut line = format!("{name:<width$}");
        for h in heights {
            let cell = match verdicts.iter().find(|v| v.model == *name && v.height == *h) {
                Some(Verdict {
                    multiplier: Some(m),
                    live,
                    extrapolated,
                    ..
                }) => format!(
                    "{}{:.3}x {}",
                    if *extrapolated { "~" } else { "" },
                    m,
                    if *live { "yes" } else { "no" }
                ),
                Some(_) => "n/a".to_string(),
                None => String::new(),
            };
            line.push_str(&format!("{cell:>12}"));
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("\nrecommendation (what the daemon should run)\n");
    for a in advice {
        text.push_str(&format!("  {}p: {}\n", a.height, a.text));
    }
    text
}
