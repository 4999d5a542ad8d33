use clap::Parser;
use statushub::cli::{Cli, Command, LogFormat, dev_banner};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => match args.mint() {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Serve(args) => {
            init_logging(args.log_format);
            let (config, generated) = match args.into_config() {
                Ok(parsed) => parsed,
                Err(e) => return fail(e),
            };
            let dev =
                generated.jwt_secret || generated.api_key || std::env::args().any(|a| a == "--dev");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(config.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        return fail(format!(
                            "cannot bind STATUSHUB_LISTEN (--listen) {}: {e}",
                            config.listen
                        ));
                    }
                };
                let url = match listener.local_addr() {
                    Ok(addr) => format!("http://{addr}"),
                    Err(e) => return fail(e),
                };
                if dev {
                    println!("{}", dev_banner(&config, &url, &generated));
                }
                println!("statushub listening on {url}");
                match statushub::run(listener, config, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            })
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("statushub: error: {e}");
    ExitCode::FAILURE
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,socketioxide=warn,engineioxide=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
