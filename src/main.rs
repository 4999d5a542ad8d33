use clap::Parser;
use statushub::cli::{Cli, Command, LogFormat, dev_banner};
use std::{net::SocketAddr, process::ExitCode};
use tokio::net::{TcpListener, TcpSocket};
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
                let listener = match bind(config.listen) {
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
                let banner = dev.then(|| dev_banner(&config, &url, &generated));
                // Announced only once the store is open: start-up can no longer fail.
                let server = match statushub::Server::open(config).await {
                    Ok(server) => server,
                    Err(e) => return fail(e),
                };
                if let Some(banner) = banner {
                    println!("{banner}");
                }
                println!("statushub listening on {url}");
                match server.serve(listener, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            })
        }
    }
}

/// Connections the kernel queues for `accept` while the hub is busy. Rust's
/// `bind` listens with a queue of 128: a burst of reconnecting tabs (the idle
/// benchmark opens 256 at a time on one core) overflowed it, and each
/// dropped SYN costs its client a one-second retransmit. The kernel caps this
/// at `net.core.somaxconn`.
const ACCEPT_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted hub can take its port back while old
    // connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("statushub: error: {e}");
    ExitCode::FAILURE
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,socketioxide=warn,engineioxide=warn"));
    // Colour only a terminal: escape codes in a log file or a journal are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
