//! `roostctl generations list|status|pin N|unpin|rollback [N]`: the update agent's generations,
//! through its control API (`GET /state`, `POST /pin/{n}`, `POST /unpin`, `POST /rollback[/{n}]`)
//! with the update link's token. A small blocking HTTP/1.1 client: the agent is on a service
//! link, plain HTTP, one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use roost_config::View;
use roost_config::views::UpdateView;

/// `roostctl generations ...`.
#[derive(Debug, Args)]
pub(crate) struct GenerationsArgs {
    /// The update agent's view (its control address and token file).
    #[arg(long, default_value = "/etc/roost/update.toml")]
    view: PathBuf,
    /// Control API address instead of the view's, e.g. 10.254.0.22:9100.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Token file instead of the view's.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: GenerationsCommand,
}

#[derive(Debug, Subcommand)]
enum GenerationsCommand {
    /// Installed and published generations, which one runs, which is pinned or failed.
    List,
    /// The running generation and the update in progress (step, bytes, paths), last failure.
    Status,
    /// Stay on generation N: auto-update never passes it and it is never collected.
    Pin {
        /// The generation.
        generation: u64,
    },
    /// Follow the channel again.
    Unpin,
    /// Go back to generation N (default: the newest installed one older than the running
    /// one); pins it.
    Rollback {
        /// The generation.
        generation: Option<u64>,
    },
}

struct Api {
    addr: SocketAddr,
    token: String,
}

impl Api {
    fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to the update agent at {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        )?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .context("reading the agent's answer")?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("the agent's answer has no header end")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("the agent's answer has no status")?;
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

    fn state(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.request("GET", "/state")?;
        if status != 200 {
            bail!("GET /state: {status} {}", body.trim());
        }
        serde_json::from_str(&body).context("the agent's /state is not JSON")
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

fn gen_of(v: &serde_json::Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |g| g.to_string())
}

pub(crate) fn run(args: GenerationsArgs) -> anyhow::Result<ExitCode> {
    let (addr, token_file) = match (args.addr, args.token_file) {
        (Some(a), Some(t)) => (a, t),
        (addr, token) => {
            let view = UpdateView::load(&args.view)?;
            (
                addr.unwrap_or(view.control.listen.into()),
                token.unwrap_or(view.control.token_file),
            )
        }
    };
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading token {}", token_file.display()))?
        .trim()
        .to_owned();
    let api = Api { addr, token };
    match args.command {
        GenerationsCommand::List => {
            let s = api.state()?;
            let current = s["current"]["generation"].as_u64();
            let pinned = s["pinned"].as_u64();
            let mut all: Vec<u64> = s["available"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            if let Some(installed) = s["installed"].as_object() {
                all.extend(installed.keys().filter_map(|k| k.parse::<u64>().ok()));
            }
            all.sort_unstable();
            all.dedup();
            println!(
                "{:>10}  {:<9}  {:<9}  notes",
                "generation", "published", "installed"
            );
            for g in all {
                let key = g.to_string();
                let mut notes = Vec::new();
                if current == Some(g) {
                    notes.push("running".to_owned());
                }
                if pinned == Some(g) {
                    notes.push("pinned".to_owned());
                }
                if let Some(why) = s["failed"][&key].as_str() {
                    notes.push(format!("failed: {why}"));
                }
                let published = s["available"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.as_u64() == Some(g)));
                let installed = !s["installed"][&key].is_null();
                println!(
                    "{g:>10}  {:<9}  {:<9}  {}",
                    if published { "yes" } else { "no" },
                    if installed { "yes" } else { "no" },
                    notes.join(", ")
                );
            }
        }
        GenerationsCommand::Status => {
            let s = api.state()?;
            println!(
                "running: generation {} ({})",
                gen_of(&s["current"]["generation"]),
                s["current"]["toplevel"].as_str().unwrap_or("-")
            );
            println!("pinned: {}", gen_of(&s["pinned"]));
            match s["pending"].as_object() {
                Some(p) => {
                    let pr = &s["progress"];
                    println!(
                        "updating: generation {} step {}, {}/{} paths, {}/{} bytes",
                        gen_of(&p["target"]["generation"]),
                        p["phase"].as_str().unwrap_or("?"),
                        pr["paths"],
                        pr["paths_total"],
                        pr["bytes"],
                        pr["bytes_total"]
                    );
                }
                None => println!("updating: no"),
            }
            if let Some(f) = s["last_failure"].as_object() {
                println!(
                    "last failure: generation {} at {}: {}",
                    gen_of(&f["generation"]),
                    f["phase"].as_str().unwrap_or("?"),
                    f["reason"].as_str().unwrap_or("")
                );
            }
        }
        GenerationsCommand::Pin { generation } => {
            let (status, body) = api.request("POST", &format!("/pin/{generation}"))?;
            return answer(status, &body, &format!("pinned generation {generation}"));
        }
        GenerationsCommand::Unpin => {
            let (status, body) = api.request("POST", "/unpin")?;
            return answer(status, &body, "unpinned: following the channel");
        }
        GenerationsCommand::Rollback { generation } => {
            let path =
                generation.map_or_else(|| "/rollback".to_owned(), |g| format!("/rollback/{g}"));
            let (status, body) = api.request("POST", &path)?;
            return answer(
                status,
                &body,
                "rollback started; see `roostctl generations status`",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn answer(status: u16, body: &str, ok: &str) -> anyhow::Result<ExitCode> {
    if (200..300).contains(&status) {
        println!("{ok}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("roostctl: the agent refused ({status}): {}", body.trim());
        Ok(ExitCode::from(1))
    }
}
