//! `atserver`: thin entry point. CLI → telemetry → run.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = atserver::cli::Cli::parse();
    atserver::telemetry::init();
    let result = match cli.command {
        atserver::cli::Command::Serve(args) => atserver::app::serve(args),
        atserver::cli::Command::Directory(args) => atserver::app::directory(args),
        atserver::cli::Command::Dev(args) => atserver::app::dev(args),
        atserver::cli::Command::Certs(args) => atserver::app::certs(args),
        atserver::cli::Command::CheckStore(args) => atserver::app::check_store(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("atserver: {error}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
