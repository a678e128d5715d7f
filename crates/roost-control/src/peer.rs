//! The client side between daemons: one daemon `PUT`s JSON to another's control API (dhcp's
//! lease names and the firewall's neighbours to dns). A minimal HTTP/1.1 exchange: the peer is
//! an address literal on a service link (`PeerView.url`), the body a few kilobytes, the answer
//! read to at most 64 KiB, the whole exchange under one timeout; the token is read from its
//! file at each call (it may rotate).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A call did not reach the peer or was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer URL is not `http://ADDRESS:PORT[/base]`.
    #[error("peer url `{0}` is not http://ADDRESS:PORT")]
    Url(String),
    /// The token file could not be read.
    #[error("cannot read the peer's token {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection or the exchange failed.
    #[error("call to {addr}: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The peer took too long.
    #[error("call to {0} timed out")]
    Timeout(SocketAddr),
    /// The peer answered, but not 200.
    #[error("refused: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What it said.
        body: String,
    },
}

/// Splits `http://ADDRESS:PORT[/base]` into the socket address, the Host header and the base
/// path (without a trailing slash).
pub fn parse_url(url: &str) -> Result<(SocketAddr, &str, &str), PeerError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| PeerError::Url(url.to_owned()))?;
    let (authority, base) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let addr = authority
        .parse::<SocketAddr>()
        .map_err(|_| PeerError::Url(url.to_owned()))?;
    Ok((addr, authority, base.trim_end_matches('/')))
}

/// `PUT {url}{path}` with the JSON `body` and the bearer token read from `token_file`.
pub async fn put_json(
    url: &str,
    path: &str,
    token_file: &Path,
    body: &[u8],
    timeout: Duration,
) -> Result<(), PeerError> {
    let (addr, host, base) = parse_url(url)?;
    let token = std::fs::read_to_string(token_file).map_err(|source| PeerError::Token {
        path: token_file.to_owned(),
        source,
    })?;
    let head = format!(
        "PUT {base}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token.trim(),
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PeerError::Timeout(addr))?
        .map_err(|source| PeerError::Io { addr, source })?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    if status == 200 {
        return Ok(());
    }
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .chars()
        .take(200)
        .collect();
    Err(PeerError::Refused { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_must_be_an_address_literal() {
        let (addr, host, base) = parse_url("http://10.254.0.6:9100").unwrap();
        assert_eq!(addr.to_string(), "10.254.0.6:9100");
        assert_eq!((host, base), ("10.254.0.6:9100", ""));
        let (_, _, base) = parse_url("http://[fd00::6]:9100/api/").unwrap();
        assert_eq!(base, "/api");
        for bad in [
            "https://10.0.0.1:1",
            "http://dns.home.arpa:9100",
            "10.0.0.1:1",
        ] {
            assert!(matches!(parse_url(bad), Err(PeerError::Url(_))), "{bad}");
        }
    }
}
