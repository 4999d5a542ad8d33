//! The ways browsers connect. Each transport authenticates the client, asks
//! the hub for subscriptions and implements the hub's [`Sink`](crate::hub::Sink)
//! over its own wire format. Transports never touch the store.

pub mod socketio;
