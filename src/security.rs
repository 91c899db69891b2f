//! Same-origin checks, which hosts the server answers to, and the secret-handling
//! primitives: hex, constant-time comparison.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::uri::Authority;
use axum::http::{HeaderMap, header};

/// The address a connection came in on (this server's side of it), put on every request by
/// the serve loop.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// The host names that are this machine whatever DNS says: a page elsewhere can't get its
/// browser to send them in `Host`, as it can its own name pointed at 127.0.0.1 (DNS
/// rebinding).
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The server's own origin: `--public-url` when set, otherwise whatever `Host` the request
/// came to, once [`OwnOrigin::accepts_host`] has let it through.
#[derive(Debug, Clone)]
pub struct OwnOrigin {
    /// `--public-url` as a browser serializes an origin (`https://chat.example.com`).
    public: Option<String>,
    /// Its host (lower case, IPv6 in brackets), its port, and whether that port is the
    /// scheme's own (then `Host` may leave it out).
    public_host: Option<(String, u16, bool)>,
    /// The port the server listens on.
    listen_port: u16,
}

impl OwnOrigin {
    /// `public_url` must be an origin: `http(s)://host[:port]`, nothing after it but `/`.
    pub fn new(public_url: Option<&str>, listening: SocketAddr) -> Result<Self, String> {
        let mut origin = OwnOrigin {
            public: None,
            public_host: None,
            listen_port: listening.port(),
        };
        let Some(text) = public_url else {
            return Ok(origin);
        };
        let refused = || {
            format!(
                "--public-url {text:?} is not an origin: give the scheme, host and port \
                 people open, such as https://chat.example.com or http://localhost:3000"
            )
        };
        let url = url::Url::parse(text.trim()).map_err(|_| refused())?;
        if !matches!(url.scheme(), "http" | "https")
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(refused());
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(refused());
        };
        origin.public_host = Some((host.to_ascii_lowercase(), port, url.port().is_none()));
        origin.public = Some(url.origin().ascii_serialization());
        Ok(origin)
    }

    /// Whether a request's `Host` names this server: a loopback name, or the address the
    /// connection came in on, at the listening port; or the `--public-url` host. Anything
    /// else may be a name some other site points at this machine.
    pub fn accepts_host(&self, host: &str, local: Option<IpAddr>) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if let Some((public, public_port, default_port)) = &self.public_host
            && name == *public
            && (port == Some(*public_port) || port.is_none() && *default_port)
        {
            return true;
        }
        if port.unwrap_or(80) != self.listen_port {
            return false;
        }
        LOOPBACK_NAMES.contains(&name.as_str())
            || local.is_some_and(|local| {
                let literal = name.trim_start_matches('[').trim_end_matches(']');
                IpAddr::from_str(literal).is_ok_and(|ip| ip.to_canonical() == local)
            })
    }

    /// This server's own origin as a person's browser reaches it: `--public-url`, or the
    /// request's `Host` (https when cookies are marked Secure).
    pub fn base_url(&self, headers: &HeaderMap, https: bool) -> String {
        match &self.public {
            Some(public) => public.clone(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost");
                format!("{}://{host}", if https { "https" } else { "http" })
            }
        }
    }

    /// Whether `Origin` names this server. A missing `Origin` is not a match.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        match &self.public {
            Some(public) => origin == *public,
            None => {
                let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
                    return false;
                };
                let host = host.to_ascii_lowercase();
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
        }
    }
}

/// A `Host` header's host (lower case) and port, if it is a plain `host[:port]`.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    if host.contains('@') {
        return None;
    }
    let authority = Authority::from_str(host).ok()?;
    Some((authority.host().to_ascii_lowercase(), authority.port_u16()))
}

/// A per-response nonce for the one inline `<style>` a page carries.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Lower-case hex of `bytes`: tokens, nonces, content hashes. A table rather than a
/// `format!` per byte, since the nonce is made for every response.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    hex
}

/// What is kept of a random token (a bot's, a device link's): a salt adds nothing to a
/// hash of random bytes, since there is nothing to guess.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(token.as_bytes()))
}

/// Compares secrets without stopping at the first difference, so timing says little about
/// how much of a guess was right. (Lengths may show; they are no secret.)
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn without_a_public_url_only_loopback_names_at_the_port_are_this_server() {
        let origin = OwnOrigin::new(None, listening(3000)).unwrap();
        let local = Some(IpAddr::from([127, 0, 0, 1]));
        for host in [
            "localhost:3000",
            "LOCALHOST:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
        ] {
            assert!(origin.accepts_host(host, local), "{host}");
        }
        for host in [
            "evil.example:3000",
            "localhost.evil.example:3000",
            "localhost:3001",
            "localhost",
            "127.0.0.2:3000",
            "user@localhost:3000",
            "",
            "localhost:3000/x",
        ] {
            assert!(!origin.accepts_host(host, local), "{host}");
        }
    }

    #[test]
    fn the_address_a_connection_came_in_on_is_this_server() {
        let origin = OwnOrigin::new(Some("https://chat.example.com"), listening(3000)).unwrap();
        let lan = Some(IpAddr::from([192, 168, 1, 5]));
        assert!(origin.accepts_host("192.168.1.5:3000", lan));
        assert!(!origin.accepts_host("192.168.1.6:3000", lan));
        assert!(!origin.accepts_host("192.168.1.5:3001", lan));
    }

    #[test]
    fn with_a_public_url_its_host_is_this_server_too() {
        let origin = OwnOrigin::new(Some("https://Chat.Example.com/"), listening(3000)).unwrap();
        for host in ["chat.example.com", "chat.example.com:443", "localhost:3000"] {
            assert!(origin.accepts_host(host, None), "{host}");
        }
        for host in [
            "chat.example.com:3000",
            "evil.example",
            "chat.example.com.evil.example",
        ] {
            assert!(!origin.accepts_host(host, None), "{host}");
        }
        let with_port = OwnOrigin::new(Some("http://localhost:8080"), listening(3000)).unwrap();
        assert!(with_port.accepts_host("localhost:8080", None));
        assert!(!with_port.accepts_host("localhost", None));
    }

    #[test]
    fn a_public_url_must_be_an_origin() {
        let origin = OwnOrigin::new(Some("https://chat.example.com:443/"), listening(1)).unwrap();
        assert_eq!(origin.public.as_deref(), Some("https://chat.example.com"));
        for bad in [
            "chat.example.com",
            "ftp://chat.example.com",
            "https://chat.example.com/chat",
            "https://chat.example.com/?x=1",
            "https://user@chat.example.com",
            "https://",
        ] {
            assert!(OwnOrigin::new(Some(bad), listening(1)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn only_the_whole_secret_matches() {
        assert!(same_secret(b"s3cret-token", b"s3cret-token"));
        assert!(!same_secret(b"s3cret-tokeN", b"s3cret-token"));
        assert!(!same_secret(b"s3cret", b"s3cret-token"));
        assert!(!same_secret(b"", b"s3cret-token"));
    }
}
