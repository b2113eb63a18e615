//! `liveup doctor`: the prerequisites, each with ✓ or ✗ and the fix, for the configuration given.

use anyhow::bail;

use super::DoctorArgs;
use crate::config::Config;
use crate::doctor;
use crate::media::Tools;

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let report = doctor::examine(&config, &Tools::from_env(), None);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if report.failed() {
        bail!(
            "liveup cannot run as configured (model {}, device {}): see the ✗ lines",
            config.model,
            config.device
        );
    }
    Ok(())
}
