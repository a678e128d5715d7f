//! The ISP namespace: the lab's whole Internet. A DHCP server for the WAN link (dnsmasq), an
//! authoritative DNS server for a small test zone (knot), and a web server that answers with
//! the address it sees the client at (so tests can check NAT). All on documentation addresses.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::LabError;
use crate::plan::{ISP_WAN_IFNAME, isp};

/// One server in the ISP namespace.
#[derive(Debug, Clone, Serialize)]
pub struct IspServer {
    /// Short name (`dhcp`, `dns`, `http`).
    pub name: &'static str,
    /// What it is and where it listens.
    pub description: String,
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment.
    #[serde(skip)]
    pub env: Vec<(&'static str, String)>,
}

/// The web server: answers every GET with `client <address>` (what NAT made of the client).
/// `server_bind` is TCPServer's: HTTPServer's would look up its own name by DNS first.
pub(crate) const HTTP_SERVER: &str = r#"
import http.server, socket, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    server_bind = socketserver.TCPServer.server_bind
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("client %s\n" % self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stderr.flush()
Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"#;

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).map_err(|source| LabError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes the web server's script into `dir`; returns its path.
pub(crate) fn http_server_script(dir: &Path) -> Result<PathBuf, LabError> {
    let script = dir.join("http-server.py");
    write(&script, HTTP_SERVER)?;
    Ok(script)
}

/// The lab root's DNSKEY, the trust anchor the lab gives roost-dns.
pub(crate) fn trust_anchor(dir: &Path) -> PathBuf {
    dir.join("root.key")
}

fn keymgr(conf: &Path, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-c", conf.to_str().unwrap_or_default()];
    all.extend_from_slice(args);
    crate::netns::run("keymgr", &all)
}

/// Makes the signing keys of `.` and the test zone (once), writes the root zone with the test
/// zone's DS, and the trust anchor. Run before knot starts; `servers` wrote the config.
pub(crate) fn sign_zones(dir: &Path) -> Result<(), LabError> {
    let conf = dir.join("knot.conf");
    let zone = format!("{}.", isp::ZONE);
    let bogus = format!("{}.", isp::BOGUS_ZONE);
    for z in [".", zone.as_str(), bogus.as_str()] {
        if keymgr(&conf, &[z, "list"])?.trim().is_empty() {
            keymgr(
                &conf,
                &[z, "generate", "algorithm=13", "ksk=yes", "zsk=yes"],
            )?;
        }
    }
    let ds = keymgr(&conf, &[&zone, "ds"])?;
    let ds = ds.lines().next().unwrap_or_default();
    let root = format!(
        "$ORIGIN .\n$TTL 300\n@ SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 300\n\
         @ NS ns.{z}.\n{z}. NS ns.{z}.\nns.{z}. A {dns}\n{ds}\n",
        z = isp::ZONE,
        dns = isp::DNS,
    );
    write(&dir.join("root.zone"), &root)?;
    // The broken chain: isp.test delegates bogus.isp.test with a DS whose digest is the real
    // one with its last hex digit changed, so no DNSKEY of the child matches.
    let child_ds = keymgr(&conf, &[&bogus, "ds"])?;
    let child_ds = child_ds.lines().next().unwrap_or_default().trim_end();
    let wrong = match child_ds.chars().last() {
        Some('0') => format!("{}1", &child_ds[..child_ds.len() - 1]),
        Some(_) => format!("{}0", &child_ds[..child_ds.len() - 1]),
        None => String::new(),
    };
    let parent = dir.join(format!("{}.zone", isp::ZONE));
    let mut text = fs::read_to_string(&parent).map_err(|source| LabError::Io {
        path: parent.clone(),
        source,
    })?;
    if !text.contains(&bogus) {
        let _ = writeln!(text, "{bogus} NS ns.{}.\n{wrong}", isp::ZONE);
        write(&parent, &text)?;
    }
    write(&trust_anchor(dir), &keymgr(&conf, &[".", "dnskey"])?)
}

/// What each ISP server is, in the order `servers` starts them (for `lab status`; no files).
pub(crate) fn descriptions() -> [String; 6] {
    let (first, last) = isp::DHCP_RANGE;
    let (first6, last6) = isp::DHCP6_RANGE;
    [
        format!("dnsmasq: DHCP for the WAN link, {first}-{last}"),
        format!(
            "knot: authoritative for the lab's root and {}, both signed, and {} (its DS matches none of its keys: bogus), on {}:53",
            isp::ZONE,
            isp::BOGUS_ZONE,
            isp::DNS
        ),
        format!("web server on {}:80, answers `client <address>`", isp::HTTP),
        format!(
            "kea-dhcp6: addresses {first6}-{last6} and /{} prefixes delegated from {}/{} (then {}/{} after a renumbering)",
            isp::PD_LENGTH,
            isp::PD_POOLS[0].0,
            isp::PD_POOLS[0].1,
            isp::PD_POOLS[1].0,
            isp::PD_POOLS[1].1,
        ),
        format!(
            "radvd: the ISP's router {} on {} (managed: addresses by DHCPv6)",
            isp::GATEWAY6,
            isp::WAN6
        ),
        format!(
            "web server on [{}]:80, answers `client <address>`",
            isp::HTTP6
        ),
    ]
}

/// Kea's DHCPv6 configuration delegating from `isp::PD_POOLS[pool]`, with short timers so a
/// renumbering reaches the router within seconds (T1 10 s).
pub(crate) fn kea6_config(dir: &Path, pool: usize) -> String {
    let (first, last) = isp::DHCP6_RANGE;
    let (prefix, len) = isp::PD_POOLS[pool];
    serde_json::json!({
        "Dhcp6": {
            "interfaces-config": { "interfaces": [ISP_WAN_IFNAME] },
            "data-directory": dir.display().to_string(),
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "name": dir.join("kea6.leases").display().to_string(),
                "lfc-interval": 0
            },
            "server-id": { "type": "LL", "persist": false },
            "renew-timer": 10,
            "rebind-timer": 20,
            "preferred-lifetime": 40,
            "valid-lifetime": 60,
            "option-data": [ { "name": "dns-servers", "data": isp::GATEWAY6.to_string() } ],
            "subnet6": [ {
                "id": 1,
                "subnet": isp::WAN6,
                "interface": ISP_WAN_IFNAME,
                "pools": [ { "pool": format!("{first}-{last}") } ],
                "pd-pools": [ {
                    "prefix": prefix,
                    "prefix-len": len,
                    "delegated-len": isp::PD_LENGTH
                } ]
            } ],
            "loggers": [ {
                "name": "kea-dhcp6",
                "output_options": [ { "output": "stdout" } ],
                "severity": "INFO"
            } ]
        }
    })
    .to_string()
}

/// Kea delegating from `pool`, its configuration written under `dir` (its leases dropped
/// when `fresh`: the ISP forgot the router).
pub(crate) fn kea6_server(
    dir: &Path,
    pool: usize,
    fresh: bool,
    description: String,
) -> Result<IspServer, LabError> {
    let path = dir.join("kea-dhcp6.json");
    write(&path, &kea6_config(dir, pool))?;
    if fresh {
        for leases in ["kea6.leases", "kea6.leases.2"] {
            let _ = fs::remove_file(dir.join(leases));
        }
    }
    Ok(IspServer {
        name: "dhcp6",
        description,
        program: "kea-dhcp6".into(),
        args: vec!["-c".into(), path.display().to_string()],
        // Kea's pid and lock files go to /run/kea by default.
        env: ["KEA_PIDFILE_DIR", "KEA_LOCKFILE_DIR"]
            .map(|k| (k, dir.display().to_string()))
            .to_vec(),
    })
}

/// Writes the servers' files under `dir` and returns how to start each.
pub(crate) fn servers(dir: &Path) -> Result<Vec<IspServer>, LabError> {
    fs::create_dir_all(dir.join("knot")).map_err(|source| LabError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (first, last) = isp::DHCP_RANGE;
    let [
        dhcp_description,
        dns_description,
        http_description,
        dhcp6_description,
        ra_description,
        http6_description,
    ] = descriptions();
    let dhcp = IspServer {
        name: "dhcp",
        description: dhcp_description,
        program: "dnsmasq".into(),
        args: vec![
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            "--user=root".into(),
            format!("--interface={ISP_WAN_IFNAME}"),
            "--bind-interfaces".into(),
            format!("--dhcp-range={first},{last},255.255.255.0,10m"),
            format!("--dhcp-option=option:router,{}", isp::GATEWAY),
            format!("--dhcp-option=option:dns-server,{}", isp::DNS),
            format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
            format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
            "--dhcp-authoritative".into(),
            "--no-ping".into(),
            "--log-dhcp".into(),
            "--log-facility=-".into(),
        ],
        env: Vec::new(),
    };

    let mut zone = format!(
        "$ORIGIN {z}.\n$TTL 300\n@ SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 300\n@ NS ns.{z}.\n",
        z = isp::ZONE
    );
    for (name, addr) in isp::NAMES {
        let _ = writeln!(zone, "{name}. A {addr}");
    }
    let _ = writeln!(zone, "www.{}. AAAA {}", isp::ZONE, isp::HTTP6);
    write(&dir.join(format!("{}.zone", isp::ZONE)), &zone)?;
    let bogus = format!(
        "$ORIGIN {b}.\n$TTL 300\n@ SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 300\n\
         @ NS ns.{z}.\nwww A {http}\n",
        b = isp::BOGUS_ZONE,
        z = isp::ZONE,
        http = isp::HTTP,
    );
    write(&dir.join(format!("{}.zone", isp::BOGUS_ZONE)), &bogus)?;
    // The lab's Internet has a root of its own: `.` delegating isp.test, both signed with
    // keys the lab makes (knot's manual policy), so a validating resolver has a chain of
    // trust from the lab's trust anchor (`root.key`) and never needs the real root.
    let knot_conf = format!(
        "server:\n    listen: {dns}@53\n    rundir: {run}\n\ndatabase:\n    storage: {run}\n\n\
         policy:\n  - id: manual\n    manual: on\n\n\
         template:\n  - id: default\n    storage: {dir}\n    semantic-checks: on\n    \
         dnssec-signing: on\n    dnssec-policy: manual\n\n\
         zone:\n  - domain: .\n    file: root.zone\n  - domain: {zone}\n    file: {zone}.zone\
         \n  - domain: {bogus}\n    file: {bogus}.zone\n",
        dns = isp::DNS,
        run = dir.join("knot").display(),
        dir = dir.display(),
        zone = isp::ZONE,
        bogus = isp::BOGUS_ZONE,
    );
    let conf_path = dir.join("knot.conf");
    write(&conf_path, &knot_conf)?;
    let dns = IspServer {
        name: "dns",
        description: dns_description,
        program: "knotd".into(),
        args: vec!["--config".into(), conf_path.display().to_string()],
        env: Vec::new(),
    };

    let script = http_server_script(dir)?;
    let http = IspServer {
        name: "http",
        description: http_description,
        program: "python3".into(),
        args: vec![
            "-u".into(),
            script.display().to_string(),
            isp::HTTP.to_string(),
            "80".into(),
        ],
        env: Vec::new(),
    };
    let http6 = IspServer {
        name: "http6",
        description: http6_description,
        program: "python3".into(),
        args: vec![
            "-u".into(),
            script.display().to_string(),
            isp::HTTP6.to_string(),
            "80".into(),
        ],
        env: Vec::new(),
    };
    let dhcp6 = kea6_server(dir, 0, false, dhcp6_description)?;
    let radvd_conf = dir.join("radvd.conf");
    write(
        &radvd_conf,
        &format!(
            "interface {ISP_WAN_IFNAME} {{\n  AdvSendAdvert on;\n  AdvManagedFlag on;\n  \
             AdvOtherConfigFlag on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  \
             prefix {} {{\n    AdvOnLink on;\n    AdvAutonomous off;\n  }};\n}};\n",
            isp::WAN6
        ),
    )?;
    let ra = IspServer {
        name: "radvd",
        description: ra_description,
        program: "radvd".into(),
        args: vec![
            "--nodaemon".into(),
            "--logmethod=stderr".into(),
            format!("--config={}", radvd_conf.display()),
            format!("--pidfile={}", dir.join("radvd.pid").display()),
        ],
        env: Vec::new(),
    };
    Ok(vec![dhcp, dns, http, dhcp6, ra, http6])
}
