//! Who is asking, by network address, and the budget of wrong guesses each address has at
//! the server's secrets (the admin token, the setup link, the join code).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::rate_limit::Guesses;
use crate::state::AppState;

/// The client's address: the connection's peer, or, when the peer is a `--trusted-proxy`,
/// the nearest address in `X-Forwarded-For` that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    pub fn of(parts: &Parts, trusted_proxies: &[IpAddr]) -> ClientAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| {
                info.0.ip().to_canonical()
            });
        ClientAddr(forwarded_client(peer, &parts.headers, trusted_proxies))
    }

    /// What limits count under: the address, or for IPv6 its /64, which one host usually
    /// holds whole.
    pub fn rate_key(&self) -> String {
        match self.0 {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => {
                let [a, b, c, d, ..] = ip.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        }
    }
}

/// Walks `X-Forwarded-For` from the right (each proxy appends the address it was reached
/// from) past the trusted proxies: the first other address is the client. Entries to its
/// left were written by the client and prove nothing.
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted_proxies.contains(&client) {
                    break;
                }
            }
            // Not something a proxy of ours wrote: stop at the last hop we can vouch for.
            Err(_) => break,
        }
    }
    client
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(ClientAddr::of(parts, &state.config.trusted_proxy))
    }
}

/// One try at a secret. Starting it spends one of the client's wrong guesses, so tries sent
/// all at once can't each pass a check made before any of them failed; a right guess gives
/// it back. Dropped without [`Guess::right`], it stays spent.
#[must_use = "a guess is spent unless it is found right"]
pub struct Guess<'a> {
    guesses: &'a Guesses,
    key: String,
}

impl<'a> Guess<'a> {
    /// A try for `client`, or [`TooManyGuesses`] when its wrong guesses are used up.
    pub async fn start(
        state: &'a AppState,
        client: ClientAddr,
    ) -> Result<Guess<'a>, TooManyGuesses> {
        Guess::start_for(state, client.rate_key()).await
    }

    /// A try counted under `key` (say, the nickname whose password is guessed), from the
    /// same budget.
    pub async fn start_for(state: &'a AppState, key: String) -> Result<Guess<'a>, TooManyGuesses> {
        if state.guesses.allow(&key).await {
            Ok(Guess {
                guesses: &state.guesses,
                key,
            })
        } else {
            // Not a warning: a guesser could then fill the log as fast as it is refused.
            tracing::debug!(key, "too many wrong guesses at a secret");
            Err(TooManyGuesses {
                retry_after: state.guesses.seconds_per_token(),
            })
        }
    }

    /// The secret was right: this try costs nothing.
    pub async fn right(self) {
        self.guesses.give_back(&self.key).await;
    }
}

/// A client address that used up its wrong guesses.
#[derive(Debug)]
pub struct TooManyGuesses {
    retry_after: u64,
}

impl TooManyGuesses {
    /// For machines (a bearer token): 429 in plain text.
    pub fn plain(self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, self.retry_after.to_string())],
            "Too many wrong tokens from this address: wait a minute, then try again.",
        )
            .into_response()
    }
}

/// For people: the 429 page.
impl From<TooManyGuesses> for AppError {
    fn from(too_many: TooManyGuesses) -> Self {
        AppError::TooManyGuesses(too_many.retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let headers = forwarded("198.51.100.1, 203.0.113.7");
        assert_eq!(forwarded_client(proxy, &headers, &[proxy]), client);
        assert_eq!(
            forwarded_client(proxy, &headers, &[]),
            proxy,
            "an untrusted peer's header is ignored"
        );
        assert_eq!(forwarded_client(client, &headers, &[proxy]), client);
    }

    #[test]
    fn chained_proxies_are_walked_past_and_lies_to_their_left_ignored() {
        let outer: IpAddr = "10.0.0.2".parse().unwrap();
        let inner: IpAddr = "127.0.0.1".parse().unwrap();
        let headers = forwarded("1.1.1.1, 203.0.113.7, 10.0.0.2");
        assert_eq!(
            forwarded_client(inner, &headers, &[inner, outer]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let garbage = forwarded("not-an-ip, 10.0.0.2");
        assert_eq!(forwarded_client(inner, &garbage, &[inner, outer]), outer);
        assert_eq!(
            forwarded_client(inner, &HeaderMap::new(), &[inner]),
            inner,
            "no header: the proxy itself"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a = ClientAddr("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddr("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientAddr("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.rate_key(), b.rate_key());
        assert_ne!(a.rate_key(), c.rate_key());
        assert_eq!(ClientAddr([192, 0, 2, 1].into()).rate_key(), "192.0.2.1");
    }
}
