//! The tool's one error type: each variant says which stage of a run failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Aborted(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
