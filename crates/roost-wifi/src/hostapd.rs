//! hostapd's control interface: one unix datagram socket per network interface in its
//! `ctrl_interface` directory. A client binds a socket of its own (hostapd replies to its
//! address), sends one command and reads one reply. The client's socket is in the abstract
//! namespace: no file to clean up, and hostapd can answer it whatever mount namespace (a
//! unit's private /tmp) the client runs in.
//!
//! The replies are parsed here without IO ([`Status::parse`], [`PbcStatus::parse`]).

use std::collections::BTreeMap;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long hostapd may take to answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// hostapd's replies to the commands used here are short; a longer one is cut.
const MAX_REPLY: usize = 16 << 10;

/// Talking to hostapd failed.
#[derive(Debug, thiserror::Error)]
pub enum CtrlError {
    /// The socket could not be reached, or hostapd did not answer in time.
    #[error("hostapd's control socket {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Sends `command` to the control socket `socket`; returns hostapd's reply.
pub fn request(socket: &Path, command: &str) -> Result<String, CtrlError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let io = |source| CtrlError::Io {
        socket: socket.to_owned(),
        source,
    };
    let name = format!(
        "roost-wifi-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let local = SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)?;
    let client = UnixDatagram::bind_addr(&local).map_err(io)?;
    client.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    client.connect(socket).map_err(io)?;
    client.send(command.as_bytes()).map_err(io)?;
    let mut buf = vec![0; MAX_REPLY];
    let n = client.recv(&mut buf).map_err(io)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The radio's state and its networks, from `STATUS` on the radio's interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `ENABLED` once the access point runs (`COUNTRY_UPDATE`, `DFS`, `DISABLED`, ...).
    pub state: String,
    /// The channel in use.
    pub channel: Option<u16>,
    /// Each network (BSS) by interface: its associated stations.
    pub bss: Vec<Bss>,
}

/// One network as hostapd runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bss {
    /// Its interface (`wlan0`, `wlan0_1`, ...).
    pub interface: String,
    /// Stations associated now.
    pub stations: u32,
}

impl Status {
    /// Parses a `STATUS` reply (`key=value` lines; per network `bss[i]=`, `num_sta[i]=`).
    /// Only what the reply holds is kept: an index costs nothing it does not name.
    pub fn parse(reply: &str) -> Self {
        let mut status = Self::default();
        let mut interfaces: BTreeMap<usize, &str> = BTreeMap::new();
        let mut stations: BTreeMap<usize, u32> = BTreeMap::new();
        for (key, value) in reply.lines().filter_map(|l| l.split_once('=')) {
            match (key, indexed(key)) {
                ("state", _) => value.clone_into(&mut status.state),
                ("channel", _) => status.channel = value.parse().ok(),
                (_, Some(("bss", i))) => {
                    interfaces.insert(i, value);
                }
                (_, Some(("num_sta", i))) => {
                    stations.extend(value.parse().ok().map(|n| (i, n)));
                }
                _ => {}
            }
        }
        status.bss = interfaces
            .into_iter()
            .filter(|(_, interface)| !interface.is_empty())
            .map(|(i, interface)| Bss {
                interface: interface.to_owned(),
                stations: stations.get(&i).copied().unwrap_or(0),
            })
            .collect();
        status
    }

    /// The stations on `interface`'s network, if hostapd runs it.
    pub fn stations(&self, interface: &str) -> Option<u32> {
        self.bss
            .iter()
            .find(|b| b.interface == interface)
            .map(|b| b.stations)
    }
}

/// `key[3]` -> (`key`, 3).
fn indexed(key: &str) -> Option<(&str, usize)> {
    let (name, rest) = key.split_once('[')?;
    Some((name, rest.strip_suffix(']')?.parse().ok()?))
}

/// The push button's state, from `WPS_GET_STATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbcStatus {
    /// Not pressed (or its two minutes ran out).
    Disabled,
    /// Pressed: a device pressing its own button now joins.
    Active,
    /// The window ran out with no device.
    TimedOut,
    /// Two devices pressed at once; WPS refused both.
    Overlap,
}

impl PbcStatus {
    /// Parses a `WPS_GET_STATUS` reply (`PBC Status: Active` among its lines).
    pub fn parse(reply: &str) -> Option<Self> {
        let value = reply
            .lines()
            .find_map(|l| l.strip_prefix("PBC Status:"))?
            .trim();
        match value {
            "Disabled" => Some(Self::Disabled),
            "Active" => Some(Self::Active),
            "Timed-out" => Some(Self::TimedOut),
            "Overlap" => Some(Self::Overlap),
            _ => None,
        }
    }

    /// As the control API's `/state` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Active => "active",
            Self::TimedOut => "timed-out",
            Self::Overlap => "overlap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // hostapd 2.10's STATUS on a radio with two networks (trimmed).
    const STATUS: &str = "state=ENABLED\nphy=phy0\nfreq=2437\nnum_sta_non_erp=0\n\
        channel=6\nieee80211n=1\nbss[0]=wlan0\nbssid[0]=02:00:00:00:00:00\nssid[0]=Roost Home\n\
        num_sta[0]=2\nbss[1]=wlan0_1\nbssid[1]=02:00:00:00:00:01\nssid[1]=Roost Things\n\
        num_sta[1]=0\n";

    #[test]
    fn status_gives_the_state_channel_and_stations_per_network() {
        let status = Status::parse(STATUS);
        assert_eq!(status.state, "ENABLED");
        assert_eq!(status.channel, Some(6));
        assert_eq!(status.stations("wlan0"), Some(2));
        assert_eq!(status.stations("wlan0_1"), Some(0));
        assert_eq!(status.stations("wlan0_2"), None);
        // Not hostapd's, or cut short: nothing made up.
        assert_eq!(Status::parse("FAIL\n"), Status::default());
        let cut = Status::parse("state=COUNTRY_UPDATE\nbss[0]=wlan0\nnum_sta[7]=3\nbss[x]=y\n");
        assert_eq!(cut.state, "COUNTRY_UPDATE");
        assert_eq!(cut.stations("wlan0"), Some(0));
        assert_eq!(cut.bss.len(), 1);
        // A huge index is one entry, not a huge table.
        let far = Status::parse(&format!("bss[{}]=wlan9\n", usize::MAX));
        assert_eq!(far.stations("wlan9"), Some(0));
        assert_eq!(far.bss.len(), 1);
    }

    #[test]
    fn pbc_status_reads_each_state_and_nothing_else() {
        let reply = |s: &str| format!("PBC Status: {s}\nLast WPS result: None\n");
        assert_eq!(PbcStatus::parse(&reply("Active")), Some(PbcStatus::Active));
        assert_eq!(
            PbcStatus::parse(&reply("Disabled")),
            Some(PbcStatus::Disabled)
        );
        assert_eq!(
            PbcStatus::parse(&reply("Timed-out")),
            Some(PbcStatus::TimedOut)
        );
        assert_eq!(
            PbcStatus::parse(&reply("Overlap")),
            Some(PbcStatus::Overlap)
        );
        assert_eq!(PbcStatus::parse(&reply("Sideways")), None);
        assert_eq!(PbcStatus::parse("FAIL\n"), None);
    }

    #[test]
    fn a_socket_nobody_serves_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("roost-wifi-test-{}", std::process::id()));
        let err = request(&dir.join("wlan0"), "PING").unwrap_err();
        assert!(err.to_string().contains("wlan0"), "{err}");
    }
}
