//! Same-origin checks and the secret-handling primitives: hex, constant-time comparison.

use axum::http::{HeaderMap, header};

/// The server's own origin: `--public-url` when set, otherwise whatever `Host` the request
/// came to.
#[derive(Debug, Clone)]
pub struct OwnOrigin {
    public: Option<String>,
}

impl OwnOrigin {
    pub fn new(public_url: Option<&str>) -> Self {
        OwnOrigin {
            public: public_url.map(|url| url.trim_end_matches('/').to_ascii_lowercase()),
        }
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
