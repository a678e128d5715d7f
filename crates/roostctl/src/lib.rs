//! # roostctl: the Roost command line
//!
//! Runs on the router (and on a workstation with a copy of `roost.toml`):
//! - `roostctl config check FILE`: validates settings; exit 1 with every error on stderr.
//! - `roostctl config show --service NAME FILE`: the view that service's VM receives.
//! - `roostctl passwd`: an argon2id PHC hash for `web.admin.password_hash` or an MQTT user.
//! - `roostctl lab up|status|exec|down`: the whole router in network namespaces (roost-lab).
//! - `roostctl generations list|status|pin N|unpin|rollback [N]`: the update agent's
//!   generations, through its control API.
//! - `roostctl net apply VIEW`: a service VM's network step at boot (addresses from its view).
//! - `roostctl config wifi FILE`, `roostctl wifi hostapd VIEW`: the Wi-Fi VM's view, and the
//!   hostapd configuration its VM renders from it at each start (ADR 0013); `roostctl wifi wps
//!   VIEW` in the Wi-Fi VM presses the WPS push button.
//! - `roostctl config voip FILE`, `roostctl voip kamailio VIEW`: the VoIP VM's view, and the
//!   Kamailio configuration its VM renders from it at each start (ADR 0014).
//! - `roostctl leases [--url URL --token-file FILE | --settings FILE | --lab [PREFIX]] [--json]`:
//!   the dhcp daemon's leases from its control API, as a table.
//!
//! Exit codes: 0 success, 1 the input is invalid (bad settings, unusable password), 2 the
//! command itself failed (unreadable file, no terminal).

mod config_cmd;
mod generations_cmd;
mod lab_cmd;
mod leases_cmd;
mod net_cmd;
mod passwd;
mod wifi_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roost_config::Service;

/// The Roost router's command line.
#[derive(Debug, Parser)]
#[command(name = "roostctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check settings files and show what each service receives.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Hash a password (from stdin, or asked twice on a terminal) as argon2id.
    Passwd,
    /// The whole router in network namespaces on this machine (needs root).
    Lab(lab_cmd::LabArgs),
    /// The update agent's generations: list, status, pin, unpin, rollback.
    Generations(generations_cmd::GenerationsArgs),
    /// The DHCP leases, from the dhcp daemon's control API.
    Leases(leases_cmd::LeasesArgs),
    /// A service VM's network step.
    #[command(subcommand)]
    Net(NetCommand),
    /// The Wi-Fi VM's access point (ADR 0013).
    #[command(subcommand)]
    Wifi(WifiCommand),
    /// The VoIP VM's registrar (ADR 0014).
    #[command(subcommand)]
    Voip(VoipCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a roost.toml: exit 0, or exit 1 with every error on stderr.
    Check {
        /// The settings file.
        file: PathBuf,
    },
    /// Print the pppd peer file of a PPPoE uplink (the firewall VM runs pppd with it).
    Pppd {
        /// The settings file.
        file: PathBuf,
    },
    /// Print the Wi-Fi VM's view (the `[wifi]` table); exit 1 when there is no Wi-Fi.
    Wifi {
        /// The settings file.
        file: PathBuf,
    },
    /// Print the VoIP VM's view (the `[voip]` table); exit 1 when there is no VoIP.
    Voip {
        /// The settings file.
        file: PathBuf,
    },
    /// Print the settings view one service receives, as TOML.
    Show {
        /// The service: firewall, dns, dhcp, web, mqtt, update, wifi or voip.
        #[arg(long, value_parser = parse_service)]
        service: Service,
        /// The settings file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum NetCommand {
    /// Address this VM's interfaces and default route from its settings view.
    Apply {
        /// The view, e.g. /etc/roost/dns.toml.
        view: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum WifiCommand {
    /// Render hostapd.conf from the Wi-Fi view, reading each network's passphrase file (the
    /// Wi-Fi VM does this at each start: the passphrases are never in the Nix store).
    Hostapd {
        /// The Wi-Fi view, e.g. /etc/roost/wifi.toml.
        view: PathBuf,
        /// The radio's interface in the VM.
        #[arg(long, default_value = roost_config::wifi::RADIO)]
        interface: String,
        /// The group (name or id) that may use hostapd's control sockets besides root.
        #[arg(long, default_value = "0")]
        ctrl_group: String,
        /// Write here (mode 0600, replaced atomically) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Press the WPS push button of the network with `wps = true`: for two minutes, a device
    /// that presses its own WPS button joins that network (through hostapd's control socket).
    Wps {
        /// The Wi-Fi view, e.g. /etc/roost/wifi.toml.
        view: PathBuf,
        /// The radio's interface in the VM.
        #[arg(long, default_value = roost_config::wifi::RADIO)]
        interface: String,
        /// hostapd's control directory (its `ctrl_interface`).
        #[arg(long, default_value = roost_config::wifi::CTRL_DIR)]
        ctrl_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum VoipCommand {
    /// Render kamailio.cfg from the VoIP view, reading each phone's password file and
    /// writing only its digest hash (the VoIP VM does this at each start: the passwords are
    /// never in the Nix store).
    Kamailio {
        /// The VoIP view, e.g. /etc/roost/voip.toml.
        view: PathBuf,
        /// Write here (mode 0600, replaced atomically) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_service(s: &str) -> Result<Service, String> {
    s.parse()
}

/// Runs one command, returning the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => config_cmd::check(&file),
        Command::Config(ConfigCommand::Show { service, file }) => config_cmd::show(&file, service),
        Command::Config(ConfigCommand::Pppd { file }) => config_cmd::pppd(&file),
        Command::Config(ConfigCommand::Wifi { file }) => config_cmd::wifi(&file),
        Command::Config(ConfigCommand::Voip { file }) => config_cmd::voip(&file),
        Command::Voip(VoipCommand::Kamailio { view, out }) => {
            config_cmd::kamailio(&view, out.as_deref())
        }
        Command::Wifi(WifiCommand::Hostapd {
            view,
            interface,
            ctrl_group,
            out,
        }) => config_cmd::hostapd(&view, &interface, &ctrl_group, out.as_deref()),
        Command::Wifi(WifiCommand::Wps {
            view,
            interface,
            ctrl_dir,
        }) => wifi_cmd::wps(&view, &interface, &ctrl_dir),
        Command::Passwd => passwd::run(),
        Command::Lab(args) => lab_cmd::run(args),
        Command::Generations(args) => generations_cmd::run(args),
        Command::Net(NetCommand::Apply { view }) => net_cmd::apply(&view),
        Command::Leases(args) => leases_cmd::run(args),
    }
}
