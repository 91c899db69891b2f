//! Client-side networking: loopback source addresses, a minimal HTTP/1.1 client (login,
//! pages), and WebSocket connects that speak the chat's contract.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Loopback source addresses 127.0.0.2, 127.0.0.3, …: each gives its own ~28k ephemeral ports.
pub struct Sources {
    addrs: Vec<Ipv4Addr>,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(count: usize) -> Sources {
        let count = count.clamp(1, 250);
        Sources {
            addrs: (0..count)
                .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn pick(&self) -> Ipv4Addr {
        self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()]
    }
}

/// Opens a TCP connection from `source` (port picked by the kernel) to `server`.
pub async fn tcp_connect(source: Ipv4Addr, server: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Lets a run reuse ports that the previous run left in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What the client keeps of a response head.
#[derive(Debug, Default)]
pub struct Head {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
}

/// One keep-alive HTTP/1.1 connection. Only what the benchmark needs: `Content-Length` and
/// chunked bodies, no pipelining.
pub struct HttpConn {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    server: SocketAddr,
}

impl HttpConn {
    pub async fn open(source: Ipv4Addr, server: SocketAddr) -> io::Result<HttpConn> {
        let stream = tcp_connect(source, server).await?;
        Ok(HttpConn {
            reader: BufReader::with_capacity(64 * 1024, stream),
            line: Vec::with_capacity(256),
            server,
        })
    }

    /// GET `path`, body into `body` (cleared first).
    pub async fn get(
        &mut self,
        path: &str,
        cookie: Option<&str>,
        body: &mut Vec<u8>,
    ) -> anyhow::Result<Head> {
        self.get_with(path, cookie, "", body).await
    }

    /// GET with extra header lines (each ending in `\r\n`).
    pub async fn get_with(
        &mut self,
        path: &str,
        cookie: Option<&str>,
        extra_headers: &str,
        body: &mut Vec<u8>,
    ) -> anyhow::Result<Head> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.server);
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str(extra_headers);
        request.push_str("Accept: text/html\r\n\r\n");
        self.exchange(request.as_bytes(), body).await
    }

    /// POST a urlencoded form, as a browser on the server's own origin does.
    pub async fn post_form(
        &mut self,
        path: &str,
        cookie: Option<&str>,
        form: &str,
        body: &mut Vec<u8>,
    ) -> anyhow::Result<Head> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len(),
            host = self.server
        );
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(form);
        self.exchange(request.as_bytes(), body).await
    }

    async fn exchange(&mut self, request: &[u8], body: &mut Vec<u8>) -> anyhow::Result<Head> {
        self.reader.get_mut().write_all(request).await?;
        body.clear();
        let mut head = Head::default();
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut first = true;
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                bail!("connection closed before the response head ended");
            }
            let line = std::str::from_utf8(&self.line)
                .context("response head is not UTF-8")?
                .trim_end();
            if first {
                first = false;
                head.status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
                continue;
            }
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("set-cookie") {
                head.set_cookies.push(value.to_owned());
            } else if name.eq_ignore_ascii_case("location") {
                head.location = Some(value.to_owned());
            }
        }
        if chunked {
            loop {
                self.line.clear();
                self.reader.read_until(b'\n', &mut self.line).await?;
                let size_text = std::str::from_utf8(&self.line)?.trim();
                let size_text = size_text.split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size_text, 16)
                    .with_context(|| format!("bad chunk size {size_text:?}"))?;
                if size == 0 {
                    // Trailers end with an empty line.
                    loop {
                        self.line.clear();
                        self.reader.read_until(b'\n', &mut self.line).await?;
                        if self.line.trim_ascii().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..]).await?;
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf).await?;
            }
        } else if let Some(length) = content_length {
            body.resize(length, 0);
            self.reader.read_exact(body).await?;
        }
        Ok(head)
    }
}

/// The `chat_session=…` pair from a login response.
pub fn session_cookie(head: &Head) -> Option<String> {
    head.set_cookies.iter().find_map(|c| {
        let pair = c.split(';').next()?.trim();
        pair.starts_with("chat_session=").then(|| pair.to_owned())
    })
}

/// `POST /login` with a nickname; the answer must be 303 with a session cookie.
pub async fn login(
    source: Ipv4Addr,
    server: SocketAddr,
    nickname: &str,
    limit: Duration,
) -> anyhow::Result<String> {
    let attempt = async {
        let mut conn = HttpConn::open(source, server).await?;
        let mut body = Vec::new();
        let head = conn
            .post_form("/login", None, &format!("nickname={nickname}"), &mut body)
            .await?;
        if head.status != 303 {
            bail!("login answered {}", head.status);
        }
        session_cookie(&head).ok_or_else(|| anyhow!("login set no chat_session cookie"))
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| anyhow!("login timed out"))?
}

/// Opens the room socket with the session cookie and the server's own `Origin`.
pub async fn ws_connect(
    source: Ipv4Addr,
    server: SocketAddr,
    slug: &str,
    cookie: &str,
) -> anyhow::Result<Ws> {
    let stream = tcp_connect(source, server).await?;
    let mut request = format!("ws://{server}/rooms/{slug}/ws").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("Cookie", HeaderValue::from_str(cookie)?);
    headers.insert(
        "Origin",
        HeaderValue::from_str(&format!("http://{server}"))?,
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// Short reason for a failed connect, for the failure tally.
pub fn failure_kind(error: &anyhow::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as WsError;
    if let Some(ws) = error.downcast_ref::<WsError>() {
        return match ws {
            WsError::Http(response) => format!("http {}", response.status().as_u16()),
            WsError::Io(e) => format!("io {:?}", e.kind()),
            other => format!("ws {other}").chars().take(40).collect::<String>(),
        };
    }
    if let Some(io) = error.downcast_ref::<io::Error>() {
        return format!("io {:?}", io.kind());
    }
    error.to_string().chars().take(40).collect()
}

/// The highest `msg-{id}` in an HTML page or fragment.
pub fn newest_message_id(html: &str) -> u64 {
    let mut newest = 0;
    let mut rest = html;
    while let Some(at) = rest.find("id=\"msg-") {
        rest = &rest[at + 8..];
        let digits: &str = &rest[..rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len())];
        if let Ok(id) = digits.parse::<u64>() {
            newest = newest.max(id);
        }
    }
    newest
}

/// The lowest `msg-{id}` in an HTML fragment, if any.
pub fn oldest_message_id(html: &str) -> Option<u64> {
    let mut oldest = None;
    let mut rest = html;
    while let Some(at) = rest.find("id=\"msg-") {
        rest = &rest[at + 8..];
        let digits: &str = &rest[..rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len())];
        if let Ok(id) = digits.parse::<u64>() {
            oldest = Some(oldest.map_or(id, |o: u64| o.min(id)));
        }
    }
    oldest
}
