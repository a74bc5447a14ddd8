use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vantus::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vantus: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(vantus::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem (a configuration load reports all of them), each prefixed.
            for line in e.to_string().lines() {
                eprintln!("vantus: {line}");
            }
            e.exit_code()
        }
    }
}
