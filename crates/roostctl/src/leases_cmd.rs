//! `roostctl leases`: the dhcp daemon's leases (`GET /state` on its control API) as a table.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use roost_config::{Service, Settings};
use roost_lab::{Lab, LabOptions};

/// How long the control API may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(crate) struct LeasesArgs {
    /// The dhcp control API, e.g. `http://10.254.0.10:9100`; default from `--settings`.
    #[arg(long)]
    url: Option<String>,
    /// File holding the dhcp control API's bearer token; default `services.token_dir/dhcp`.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The settings file the defaults come from.
    #[arg(long, default_value = "/etc/roost/roost.toml")]
    settings: PathBuf,
    /// Ask the lab instance PREFIX's dhcp daemon, from inside its namespace.
    #[arg(
        long,
        value_name = "PREFIX",
        num_args = 0..=1,
        default_missing_value = "roost",
        conflicts_with_all = ["url", "token_file"]
    )]
    lab: Option<String>,
    /// The lab's state directory; default /var/lib/roost-lab/PREFIX.
    #[arg(long, requires = "lab")]
    state_dir: Option<PathBuf>,
    /// Print the daemon's whole `/state` as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: LeasesArgs) -> anyhow::Result<ExitCode> {
    let (status, body) = match &args.lab {
        Some(prefix) => from_lab(prefix, args.state_dir.clone())?,
        None => {
            let (url, token_file) = endpoint(&args)?;
            let token = std::fs::read_to_string(&token_file)
                .with_context(|| format!("reading the token {}", token_file.display()))?;
            get(&url, "/state", token.trim())?
        }
    };
    if status != 200 {
        bail!(
            "the dhcp control API answered HTTP {status}: {}",
            body.trim()
        );
    }
    let state: serde_json::Value =
        serde_json::from_str(&body).context("the dhcp control API's /state is not JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        print!("{}", table(&state));
    }
    Ok(ExitCode::SUCCESS)
}

/// URL and token file: the flags, else what the settings file says.
fn endpoint(args: &LeasesArgs) -> anyhow::Result<(String, PathBuf)> {
    if let (Some(url), Some(token)) = (&args.url, &args.token_file) {
        return Ok((url.clone(), token.clone()));
    }
    let settings = Settings::load(&args.settings).with_context(|| {
        format!(
            "loading {} for the dhcp control API's address (or give --url and --token-file)",
            args.settings.display()
        )
    })?;
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.control_addr(Service::Dhcp)));
    let token = args
        .token_file
        .clone()
        .unwrap_or_else(|| settings.services.token_dir.join(Service::Dhcp.name()));
    Ok((url, token))
}

fn from_lab(prefix: &str, state_dir: Option<PathBuf>) -> anyhow::Result<(u16, String)> {
    let state_dir = state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/roost-lab").join(prefix));
    let settings = roost_lab::recorded_settings(&state_dir).with_context(|| {
        format!(
            "no lab `{prefix}` in {} (roostctl lab up first)",
            state_dir.display()
        )
    })?;
    let lab = Lab::new(LabOptions {
        prefix: prefix.to_owned(),
        state_dir,
        bin_dir: PathBuf::new(),
        settings,
    })?;
    Ok(lab.control_get(Service::Dhcp, "/state")?)
}

/// `GET path` on `url` (`http://ADDRESS:PORT`) with the bearer token: status and body.
fn get(url: &str, path: &str, token: &str) -> anyhow::Result<(u16, String)> {
    let authority = url
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .with_context(|| format!("--url {url}: only http://ADDRESS:PORT is supported"))?;
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("--url {url}: not an address and port"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to the dhcp control API at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer from {addr}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr} sent no HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{addr} sent no HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// Joins an HTTP/1.1 chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The leases of a dhcp `/state` as a table, by zone and address.
pub(crate) fn table(state: &serde_json::Value) -> String {
    let now = state["now"].as_u64().unwrap_or(0);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut leases: Vec<&serde_json::Value> =
        state["leases"].as_array().into_iter().flatten().collect();
    leases.sort_by_key(|l| {
        let ip: Option<std::net::Ipv4Addr> = l["ip"].as_str().and_then(|s| s.parse().ok());
        (text(&l["zone"]), ip)
    });
    let mut rows = vec![[
        "MAC".to_owned(),
        "IP".to_owned(),
        "HOSTNAME".to_owned(),
        "ZONE".to_owned(),
        "STATE".to_owned(),
        "EXPIRES".to_owned(),
    ]];
    for l in leases {
        let state = text(&l["state"]);
        let expires = l["expires"].as_u64().unwrap_or(0);
        let shown_state = if state == "bound" && expires <= now {
            "expired".to_owned()
        } else {
            state.clone()
        };
        // The name published in dns, else what the client claimed.
        let name = l["name"]
            .as_str()
            .or_else(|| l["hostname"].as_str())
            .unwrap_or("-")
            .to_owned();
        let expiry = if state == "released" {
            "-".to_owned()
        } else if expires > now {
            format!(
                "in {}",
                humantime::format_duration(Duration::from_secs(expires - now))
            )
        } else {
            format!(
                "{} ago",
                humantime::format_duration(Duration::from_secs(now - expires))
            )
        };
        rows.push([
            text(&l["mac"]),
            text(&l["ip"]),
            name,
            text(&l["zone"]),
            shown_state,
            expiry,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_leases_by_zone_and_address_with_name_state_and_expiry() {
        let state = serde_json::json!({
            "now": 1000,
            "leases": [
                {"ip": "192.168.1.100", "zone": "lan", "mac": "02:00:00:00:00:01",
                 "hostname": "Laptop", "name": "laptop", "state": "bound", "expires": 4600},
                {"ip": "192.168.20.5", "zone": "iot", "mac": "02:00:00:00:00:03",
                 "state": "bound", "expires": 900},
                {"ip": "192.168.1.9", "zone": "lan", "mac": "02:00:00:00:00:02",
                 "state": "released", "expires": 1000},
            ]
        });
        let t = table(&state);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("MAC "), "{t}");
        assert!(
            lines[1].contains("192.168.20.5") && lines[1].contains("expired"),
            "{t}"
        );
        assert!(lines[1].ends_with("1m 40s ago"), "{t}");
        assert!(
            lines[2].contains("192.168.1.9") && lines[2].contains("released"),
            "{t}"
        );
        assert!(
            lines[3].contains("laptop") && lines[3].ends_with("in 1h"),
            "{t}"
        );
        // Columns line up.
        let col = lines[0].find("IP").unwrap();
        assert!(
            lines.iter().skip(1).all(|l| l[col..].starts_with("192.")),
            "{t}"
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
