//! `--outbound-deny-private`: for deployments where API keys are handed to
//! less trusted parties, webhook deliveries and monitor checks refuse
//! loopback, private and link-local destinations. The check runs on the addresses DNS returned
//! (a resolver for the HTTP client that refuses a name with any such
//! address), so a public name pointing inside is refused too, and on IP
//! literals in the URL, which never reach a resolver.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::{
    io,
    net::{IpAddr, SocketAddr},
};

/// The words an attempt refused by this rule carries (in `lastError`).
pub const REFUSED: &str = "refused: the destination is a loopback, private or link-local address (--outbound-deny-private)";

/// Loopback, private (RFC 1918, IPv6 unique local), link-local,
/// carrier-grade NAT, unspecified or broadcast; IPv4-mapped IPv6 as its IPv4.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Whether `url`'s host is an IP literal the rule refuses.
pub fn literal_refused(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(is_private)
}

/// A resolver that refuses names resolving to any refused address.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(
                    Box::new(io::Error::new(io::ErrorKind::PermissionDenied, REFUSED))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_and_literals() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        assert!(literal_refused("http://127.0.0.1:8080/x"));
        assert!(literal_refused("http://[::1]/x"));
        assert!(!literal_refused("https://example.com/x"));
    }
}
