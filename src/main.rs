use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = liveup::cli::Cli::parse();
    liveup::cli::init_logging(cli.verbose);
    match liveup::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("liveup: {error:#}");
            ExitCode::FAILURE
        }
    }
}
