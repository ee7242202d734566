use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ivt::cli::Cli::parse();
    ivt::cli::init_logging(cli.json_logs);
    match ivt::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
