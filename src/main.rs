use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ivt::cli::Cli::parse();
    let telemetry = match ivt::cli::init_logging(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot set up span export: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = ivt::cli::run(cli);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
