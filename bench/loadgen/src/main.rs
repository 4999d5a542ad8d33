//! loadgen: measures a statushub-compatible server side by side with others.
//!
//! A separate workspace member so that its client stack (tungstenite client,
//! hyper client) never becomes a dependency of the hub. It drives the server
//! only through its public protocols, so the same run works against the
//! reference Node peer in bench/peer-socketio.

mod cli;
mod client;
mod error;
mod histogram;
mod monitor;
mod net;
mod procstat;
mod protocol;
mod publisher;
mod report;
mod scenario;
mod token;
mod track;

pub use error::Error;

use clap::Parser;
use cli::{Cli, Command, Common};
use report::RunResult;
use scenario::Env;
use std::{future::Future, io::Write, process::ExitCode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Report(args) => return report_files(&args),
        Command::Fanout(args) => run(args.common.clone(), |env| scenario::fanout::run(env, args)),
        Command::Idle(args) => run(args.common.clone(), |env| scenario::idle::run(env, args)),
        Command::Publish(args) => run(args.common.clone(), |env| scenario::publish::run(env, args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one scenario under the --max-duration bound, prints its table and
/// appends its JSON line.
fn run<F, Fut>(common: Common, scenario: F) -> Result<(), Error>
where
    F: FnOnce(std::sync::Arc<Env>) -> Fut,
    Fut: Future<Output = Result<RunResult, Error>>,
{
    let runtime = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(common.threads)
            .enable_all()
            .build()
    }?;
    let limit = common.max_duration;
    let json = common.json.clone();
    let result = runtime.block_on(async move {
        let env = Env::new(common).await?;
        tokio::time::timeout(limit, scenario(env))
            .await
            .map_err(|_| Error::Aborted(format!("gave up after --max-duration {limit:?}")))?
    });
    // Client tasks still winding down must not keep the process alive.
    runtime.shutdown_background();
    let result = result?;
    println!("{}", report::console_table(&result));
    if let Some(path) = json {
        let line = serde_json::to_string(&result).map_err(|e| Error::Config(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn report_files(args: &cli::ReportArgs) -> ExitCode {
    let mut results = Vec::new();
    for path in &args.files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("loadgen: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str::<RunResult>(line) {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("loadgen: {}:{}: not a result: {e}", path.display(), i + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    print!(
        "{}",
        report::markdown(&results, &args.hub, &args.peer, &args.ceiling)
    );
    ExitCode::SUCCESS
}
