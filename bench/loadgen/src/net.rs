//! Where connections go and where they come from.
//!
//! One source address has about 28,000 ephemeral ports, and ports of closed
//! connections linger in TIME_WAIT between runs; spreading connections over
//! several 127.0.0.x source addresses (bound before connecting) keeps a
//! 20,000-connection run from running out of them.
//!
//! A plain `bind(ip, 0)` makes the kernel pick a port that is free for every
//! destination, scanning the range past ports still held (TIME_WAIT from the
//! previous run included). With tens of thousands held, one idle run in a
//! dozen crawled at ~250 connections a second with the tool's core at 100 %
//! and the server idle. `IP_BIND_ADDRESS_NO_PORT` defers the choice to
//! `connect`, which only needs the 4-tuple to be unique.

use crate::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// The server under test, from `--url http://host:port`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as given, for `Host` headers and WebSocket URLs.
    pub authority: String,
}

impl Target {
    pub async fn resolve(url: &str) -> Result<Self, Error> {
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Config(format!("--url {url:?} must start with http://")))?
            .trim_end_matches('/')
            .to_owned();
        if authority.contains('/') || authority.is_empty() {
            return Err(Error::Config(format!(
                "--url {url:?} must be http://host:port with no path"
            )));
        }
        let with_port = if authority.contains(':') {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| Error::Config(format!("cannot resolve {authority}: {e}")))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| Error::Config(format!("{authority} has no IPv4 address")))?;
        Ok(Target { addr, authority })
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{path_and_query}", self.authority)
    }
}

/// Source addresses 127.0.0.1 ..= 127.0.0.N for loopback targets; the
/// system's choice otherwise.
#[derive(Clone, Debug)]
pub struct Sources {
    ips: Vec<Ipv4Addr>,
}

impl Sources {
    pub fn new(count: u8, target: &Target) -> Self {
        let ips = if target.addr.ip().is_loopback() {
            (1..=count.max(1))
                .map(|i| Ipv4Addr::new(127, 0, 0, i))
                .collect()
        } else {
            Vec::new()
        };
        Sources { ips }
    }

    /// The source address of connection number `i`, round robin.
    pub fn pick(&self, i: usize) -> Option<Ipv4Addr> {
        (!self.ips.is_empty()).then(|| self.ips[i % self.ips.len()])
    }

    /// Opens a TCP connection to `target`, from `source` when given.
    pub async fn connect(&self, i: usize, target: &Target) -> Result<TcpStream, Error> {
        let socket = TcpSocket::new_v4().map_err(Error::Io)?;
        if let Some(ip) = self.pick(i) {
            defer_port_choice(&socket);
            socket
                .bind(SocketAddr::new(IpAddr::V4(ip), 0))
                .map_err(|e| Error::Connect(format!("bind {ip}: {e}")))?;
        }
        let stream = socket
            .connect(target.addr)
            .await
            .map_err(|e| Error::Connect(format!("connect to {}: {e}", target.addr)))?;
        stream.set_nodelay(true).map_err(Error::Io)?;
        Ok(stream)
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2+); where it is refused the bind
/// still works, only slower, so the error is ignored.
fn defer_port_choice(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to a live c_int of the given size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_urls_and_spreads_sources() {
        let t = Target::resolve("http://127.0.0.1:8080/").await.unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.ws_url("/ws?token=x"), "ws://127.0.0.1:8080/ws?token=x");
        assert!(Target::resolve("https://127.0.0.1:1").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:1/v1").await.is_err());

        let s = Sources::new(3, &t);
        let picked: Vec<_> = (0..4).map(|i| s.pick(i).unwrap().octets()[3]).collect();
        assert_eq!(picked, [1, 2, 3, 1]);
    }
}
