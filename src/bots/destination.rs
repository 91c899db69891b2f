//! Where webhooks may go: public addresses only, unless the operator allows the server's own
//! networks with `--allow-private-webhooks`. Otherwise anyone who can make a bot could have
//! the server POST to its loopback, its LAN or a cloud metadata address.
//!
//! A URL is checked when it is set, and again at every delivery: names are resolved by
//! [`PublicOnly`], which hands the HTTP client only addresses it has checked, so a name can't
//! answer the check with a public address and the connection with a private one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long a check at save time waits for DNS; a name that takes longer is checked when
/// delivered to.
const SAVE_TIME_LOOKUP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("{}", not_public(host, address))]
    NotPublic { host: String, address: IpAddr },
    #[error("{host} could not be resolved: {reason}")]
    Unresolved { host: String, reason: String },
}

fn not_public(host: &str, address: &IpAddr) -> String {
    let named = match host == address.to_string() {
        true => address.to_string(),
        false => format!("{host} ({address})"),
    };
    format!(
        "{named} is a loopback, private or otherwise non-public address, and webhooks go only \
         to public ones unless the server runs with --allow-private-webhooks"
    )
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local,
/// unspecified, shared (CGNAT), multicast, broadcast, documentation, benchmarking or
/// reserved, nor an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let not_public = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !not_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address inside them.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let not_public = s[..6] == [0, 0, 0, 0, 0, 0] // ::, ::1, IPv4-compatible
        || s[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
        || s[0] & 0xffc0 == 0xfe80 // link-local
        || s[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x64 && s[1] == 0xff9b) // local-use NAT64 (64:ff9b:1::/48)
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments, Teredo included
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || s[0] == 0x3fff; // documentation (RFC 9637)
    !not_public
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn check_address(host: &str, address: IpAddr) -> Result<(), DestinationError> {
    if is_public(address) {
        Ok(())
    } else {
        Err(DestinationError::NotPublic {
            host: host.to_owned(),
            address,
        })
    }
}

/// Every address `host` resolves to, if all of them are public.
async fn public_addresses(host: &str) -> Result<Vec<SocketAddr>, DestinationError> {
    let unresolved = |reason: String| DestinationError::Unresolved {
        host: host.to_owned(),
        reason,
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(unresolved("no addresses".into()));
    }
    for address in &addresses {
        check_address(host, address.ip())?;
    }
    Ok(addresses)
}

/// Checks where `url` leads: its address, or every address its name resolves to, must be
/// public.
pub async fn check(url: &Url) -> Result<(), DestinationError> {
    match url.host() {
        Some(Host::Ipv4(ip)) => check_address(&ip.to_string(), ip.into()),
        Some(Host::Ipv6(ip)) => check_address(&ip.to_string(), ip.into()),
        Some(Host::Domain(name)) => public_addresses(name).await.map(drop),
        None => Err(DestinationError::Unresolved {
            host: String::new(),
            reason: "the URL has no host".into(),
        }),
    }
}

/// The check when a URL is set: a non-public address is refused; a name that doesn't
/// resolve (yet, or not in time) is let through, as every delivery checks it again.
pub async fn check_when_set(url: &Url) -> Result<(), DestinationError> {
    match tokio::time::timeout(SAVE_TIME_LOOKUP, check(url)).await {
        Ok(Err(refused @ DestinationError::NotPublic { .. })) => Err(refused),
        Ok(_) | Err(_) => Ok(()),
    }
}

/// The webhook client's resolver: a name resolves only to public addresses, or not at all.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = public_addresses(&host).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn loopback_private_and_other_local_addresses_are_not() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_the_address_they_lead_to() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "http://0x7f.1/hook",
            "http://2130706433/hook",
            "http://localhost/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(
                matches!(check(&url).await, Err(DestinationError::NotPublic { .. })),
                "{url}"
            );
            assert!(check_when_set(&url).await.is_err(), "{url}");
        }
        let public = Url::parse("https://93.184.216.34/hook").unwrap();
        assert!(check(&public).await.is_ok());
    }
}
