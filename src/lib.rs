//! statushub: a realtime status broadcast hub.
//!
//! Data flows one way: the HTTP [`api`] and the [`heartbeat`] hand drafts to
//! the [`hub`], which appends them to the [`store`] (sequence, persistence,
//! snapshot, idempotency in one atomic step); the store feeds committed events
//! back to the hub in sequence order, and the hub fans them out to the
//! [`transport`] connections subscribed to the account. Transports never touch
//! the store.

pub mod admission;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod disconnect;
pub mod event;
pub mod filter;
pub mod heartbeat;
pub mod http;
pub mod hub;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub mod page;
pub mod parse;
pub mod presence;
pub mod rate_limit;
pub mod server;
pub mod store;
pub mod subscribe;
pub mod transport;
pub mod uptime;
pub mod webhooks;

pub use server::{Server, run};
