//! The daemon: holds the active view, WAN state and ruleset; applies changes one at a time; and
//! answers the control API. On stop the ruleset stays in place, so the router fails closed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use roost_config::View;
use roost_config::settings::WanMode;
use roost_config::views::FirewallView;
use roost_control::{ConfigRejected, Daemon, Limits, Token};
use tokio::sync::Mutex as AsyncMutex;

use crate::InvalidView;
use crate::compile::{Ruleset, WanState, compile, counter_name};
use crate::delegation::Wan6;
use crate::dhcp::{Lease, Phase};
use crate::netcfg::{self, NetError};
use crate::nft::{self, NftError};
use crate::ra::ZoneAdvert;
use crate::ra_io;

/// Starting or running the firewall failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The view cannot be compiled.
    #[error(transparent)]
    Invalid(#[from] InvalidView),
    /// The ruleset could not be applied.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// The interfaces could not be configured.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The control API failed.
    #[error(transparent)]
    Control(#[from] roost_control::ControlError),
    /// The DHCP client could not start.
    #[error(transparent)]
    Dhcp(#[from] crate::dhcp_io::DhcpIoError),
    /// The DHCPv6 client could not start.
    #[error(transparent)]
    Dhcp6(#[from] crate::dhcp6_io::Dhcp6IoError),
}

struct Active {
    view: FirewallView,
    wan: WanState,
    /// The DHCPv6 lease as the router uses it (prefix in use, deprecated ones).
    wan6: Wan6,
    ruleset: Ruleset,
    applies: u64,
    missing: Vec<String>,
    last_error: Option<String>,
}

/// The running firewall.
pub struct Firewall {
    active: AsyncMutex<Active>,
    dhcp_phase: Mutex<Option<Phase>>,
    /// Where the DHCPv6 client is, for `/state`.
    pub(crate) dhcp6_phase: Mutex<Option<crate::dhcp6::Phase>>,
    /// DHCPv6 messages dropped, for `/metrics`.
    pub(crate) dhcp6_dropped: std::sync::atomic::AtomicU64,
    ra_adverts: tokio::sync::watch::Sender<BTreeMap<String, ZoneAdvert>>,
    ra_stats: Arc<ra_io::RaStats>,
}

/// The interfaces of `view` that exist (all but `missing`).
fn present(view: &FirewallView, missing: &[String]) -> Vec<String> {
    view.zones
        .iter()
        .map(|z| z.interface.clone())
        .chain([view.wan.interface.clone()])
        .filter(|i| !missing.contains(i))
        .collect()
}

fn static_wan(view: &FirewallView) -> WanState {
    match view.wan.mode {
        WanMode::Static => WanState {
            address: view.wan.address,
            gateway: view.wan.gateway,
            delegated: None,
        },
        WanMode::Dhcp | WanMode::Pppoe => WanState::default(),
    }
}

async fn address_inside(view: &FirewallView) -> Result<Vec<String>, NetError> {
    let existing = netcfg::interfaces().await?;
    let (plan, missing) = netcfg::inside_plan(view, &existing);
    // Before the addresses: a zone must never take the router's own advertisements.
    netcfg::enable_ipv6(view, &existing)?;
    netcfg::run_plan(&plan).await?;
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "interfaces missing; they get their address when the view is applied again"
        );
    }
    Ok(missing)
}

impl Firewall {
    /// Addresses the interfaces, applies the ruleset and enables forwarding.
    pub async fn start(view: FirewallView) -> Result<Arc<Self>, RunError> {
        let wan = static_wan(&view);
        let ruleset = compile(&view, &wan)?;
        nft::apply(&ruleset).await?;
        tracing::info!(sha256 = %ruleset.sha256(), "ruleset applied");
        let missing = address_inside(&view).await?;
        if view.wan.mode == WanMode::Static && !missing.contains(&view.wan.interface) {
            netcfg::run_plan(&netcfg::wan_plan(
                &view.wan.interface,
                wan.address,
                wan.gateway,
            ))
            .await?;
        }
        netcfg::enable_forwarding()?;
        let wan6 = Wan6::default();
        let (ra_adverts, _) = tokio::sync::watch::channel(wan6.adverts(&view));
        Ok(Arc::new(Self {
            ra_adverts,
            ra_stats: Arc::default(),
            dhcp6_phase: Mutex::new(None),
            dhcp6_dropped: std::sync::atomic::AtomicU64::new(0),
            active: AsyncMutex::new(Active {
                view,
                wan,
                wan6,
                ruleset,
                applies: 1,
                missing,
                last_error: None,
            }),
            dhcp_phase: Mutex::new(None),
        }))
    }

    /// The active ruleset.
    pub async fn ruleset(&self) -> Ruleset {
        self.active.lock().await.ruleset.clone()
    }

    /// Records where the DHCP client is, for `/state`.
    pub fn set_dhcp_phase(&self, phase: Phase) {
        if let Ok(mut p) = self.dhcp_phase.lock() {
            *p = Some(phase);
        }
    }

    /// A DHCP lease arrived, was renewed (no change: nothing happens) or was lost: re-address the
    /// WAN and recompile (hairpin NAT uses the address; masquerade follows it by itself).
    pub async fn wan_lease(&self, lease: Option<Lease>) {
        let mut a = self.active.lock().await;
        let wan = WanState {
            address: lease.as_ref().map(|l| l.address),
            gateway: lease.as_ref().and_then(|l| l.gateway),
            ..a.wan
        };
        if wan == a.wan {
            return;
        }
        tracing::info!(address = ?wan.address, gateway = ?wan.gateway, "wan lease changed");
        let result = async {
            netcfg::run_plan(&netcfg::wan_plan(
                &a.view.wan.interface,
                wan.address,
                wan.gateway,
            ))
            .await?;
            let ruleset = compile(&a.view, &wan)?;
            nft::apply(&ruleset).await?;
            Ok::<_, RunError>(ruleset)
        }
        .await;
        match result {
            Ok(ruleset) => {
                tracing::info!(sha256 = %ruleset.sha256(), "ruleset applied");
                a.ruleset = ruleset;
                a.wan = wan;
                a.applies += 1;
                a.last_error = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot follow the wan lease");
                a.last_error = Some(e.to_string());
            }
        }
    }

    /// A DHCPv6 lease arrived, was renewed or was lost: address the WAN and the zones'
    /// delegated /64s, and when the prefix changed recompile (the zones' v6 sources) and
    /// tell the advertisers (the old prefix deprecated, the new one at once).
    pub async fn wan6_lease(&self, lease: Option<crate::dhcp6::Lease>) {
        let mut a = self.active.lock().await;
        let now = std::time::Instant::now();
        let before = a.wan6.clone();
        let changed = a.wan6.update(lease.as_ref(), now);
        let existing = present(&a.view, &a.missing);
        if let Err(e) = netcfg::run_plan(&a.wan6.plan(&a.view, &existing, now)).await {
            tracing::error!(error = %e, "cannot address the dhcpv6 lease");
            a.last_error = Some(e.to_string());
        }
        let removals = a.wan6.removals(&before, &a.view);
        for line in removals {
            // One by one: one already gone (expired by the kernel) must not keep the rest.
            if let Err(e) = netcfg::run_plan(std::slice::from_ref(&line)).await {
                tracing::debug!(%line, error = %e, "already removed");
            }
        }
        if changed {
            tracing::info!(prefix = ?a.wan6.prefix(), "delegated prefix changed");
            let wan = WanState {
                delegated: a.wan6.prefix(),
                ..a.wan
            };
            match compile(&a.view, &wan).map_err(RunError::from) {
                Ok(ruleset) => match nft::apply(&ruleset).await {
                    Ok(()) => {
                        a.ruleset = ruleset;
                        a.wan = wan;
                        a.applies += 1;
                    }
                    Err(e) => a.last_error = Some(e.to_string()),
                },
                Err(e) => a.last_error = Some(e.to_string()),
            }
        }
        self.publish_adverts(&a);
    }

    fn publish_adverts(&self, a: &Active) {
        let adverts = a.wan6.adverts(&a.view);
        self.ra_adverts.send_if_modified(|old| {
            let modified = *old != adverts;
            *old = adverts;
            modified
        });
    }

    /// pppd's link came up, changed address or went down: recompile for the new WAN address
    /// (hairpin NAT and port forwards use it); pppd itself addresses `ppp0`.
    pub async fn wan_observed(&self, wan: WanState) {
        let mut a = self.active.lock().await;
        if wan == a.wan {
            return;
        }
        tracing::info!(address = ?wan.address, gateway = ?wan.gateway, "pppoe link changed");
        match compile(&a.view, &wan).map_err(RunError::from) {
            Ok(ruleset) => match nft::apply(&ruleset).await {
                Ok(()) => {
                    a.ruleset = ruleset;
                    a.wan = wan;
                    a.applies += 1;
                    a.last_error = None;
                }
                Err(e) => a.last_error = Some(e.to_string()),
            },
            Err(e) => a.last_error = Some(e.to_string()),
        }
    }

    async fn replace(&self, text: &str) -> Result<(), ConfigRejected> {
        let view = FirewallView::from_toml("PUT /config", text)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        let mut a = self.active.lock().await;
        if view.control != a.view.control
            || view.wan.mode != a.view.wan.mode
            || view.wan.interface != a.view.wan.interface
            || view.wan.ipv6 != a.view.wan.ipv6
        {
            return Err(ConfigRejected::Invalid(
                "`control`, `wan.mode`, `wan.interface` and `wan.ipv6` change only with a restart"
                    .to_owned(),
            ));
        }
        let wan = match view.wan.mode {
            WanMode::Static => WanState {
                delegated: a.wan.delegated,
                ..static_wan(&view)
            },
            WanMode::Dhcp | WanMode::Pppoe => a.wan,
        };
        let ruleset = compile(&view, &wan).map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        nft::apply(&ruleset)
            .await
            .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?;
        let addressed = async {
            let missing = address_inside(&view).await?;
            if wan != a.wan && !missing.contains(&view.wan.interface) {
                netcfg::run_plan(&netcfg::wan_plan(
                    &view.wan.interface,
                    wan.address,
                    wan.gateway,
                ))
                .await?;
            }
            Ok::<_, NetError>(missing)
        }
        .await;
        match addressed {
            Ok(missing) => {
                tracing::info!(sha256 = %ruleset.sha256(), "new config applied");
                *a = Active {
                    view,
                    wan,
                    wan6: a.wan6.clone(),
                    ruleset,
                    applies: a.applies + 1,
                    missing,
                    last_error: None,
                };
                // Zones may have come or gone: their delegated /64s and advertisements follow.
                let existing = present(&a.view, &a.missing);
                let plan = a.wan6.plan(&a.view, &existing, std::time::Instant::now());
                if let Err(e) = netcfg::run_plan(&plan).await {
                    tracing::warn!(error = %e, "cannot address the delegated prefix");
                }
                self.publish_adverts(&a);
                Ok(())
            }
            Err(e) => {
                if let Err(back) = nft::apply(&a.ruleset).await {
                    tracing::error!(error = %back, "cannot restore the previous ruleset");
                    a.last_error = Some(back.to_string());
                }
                Err(ConfigRejected::NotApplied(e.to_string()))
            }
        }
    }

    /// `(zone, direction, counter name)` for every counter of `view`.
    fn counter_names(view: &FirewallView) -> Vec<(String, &'static str, String)> {
        let mut zones: Vec<String> = view.zones.iter().map(|z| z.name.clone()).collect();
        zones.push("wan".to_owned());
        zones
            .into_iter()
            .flat_map(|z| ["in", "out"].map(|d| (z.clone(), d, counter_name(&z, d))))
            .collect()
    }
}

impl Daemon for Firewall {
    async fn health(&self) -> Result<(), String> {
        if let Some(e) = self.active.lock().await.last_error.clone() {
            return Err(e);
        }
        nft::counters().await.map(drop).map_err(|e| e.to_string())
    }

    async fn metrics(&self) -> String {
        let (names, wan, applies) = {
            let a = self.active.lock().await;
            (Self::counter_names(&a.view), a.wan, a.applies)
        };
        let counters = nft::counters().await.unwrap_or_default();
        let mut out = String::new();
        for (metric, help, pick) in [
            (
                "roost_firewall_zone_packets_total",
                "Packets from (in) and to (out) each zone since the ruleset was last applied.",
                0,
            ),
            (
                "roost_firewall_zone_bytes_total",
                "Bytes from (in) and to (out) each zone since the ruleset was last applied.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (zone, dir, name) in &names {
                let Some(c) = counters.iter().find(|c| &c.name == name) else {
                    continue;
                };
                let v = if pick == 0 { c.packets } else { c.bytes };
                let _ = writeln!(out, "{metric}{{zone=\"{zone}\",direction=\"{dir}\"}} {v}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP roost_firewall_ruleset_applies_total Rulesets applied since start.\n\
             # TYPE roost_firewall_ruleset_applies_total counter\n\
             roost_firewall_ruleset_applies_total {applies}\n\
             # HELP roost_firewall_wan_up Whether the WAN has an address.\n\
             # TYPE roost_firewall_wan_up gauge\n\
             roost_firewall_wan_up {}",
            u8::from(wan.address.is_some())
        );
        let ra = &self.ra_stats;
        for (metric, help, value) in [
            (
                "roost_firewall_router_advertisements_sent_total",
                "Router advertisements sent on the zones.",
                &ra.sent,
            ),
            (
                "roost_firewall_router_solicitations_total",
                "Valid router solicitations received on the zones.",
                &ra.solicitations,
            ),
            (
                "roost_firewall_router_solicitations_malformed_total",
                "Router solicitations dropped as malformed.",
                &ra.malformed,
            ),
            (
                "roost_firewall_rogue_router_advertisements_total",
                "Router advertisements from another router on a zone (ignored).",
                &ra.rogue,
            ),
            (
                "roost_firewall_wan_router_advertisements_total",
                "Valid router advertisements from the ISP on the WAN.",
                &ra.wan_adverts,
            ),
            (
                "roost_firewall_wan_router_advertisements_malformed_total",
                "Malformed router advertisements on the WAN (dropped by the kernel too).",
                &ra.wan_malformed,
            ),
            (
                "roost_firewall_dhcpv6_dropped_total",
                "DHCPv6 messages on the WAN dropped (malformed, unasked for or unusable).",
                &self.dhcp6_dropped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }

    async fn state(&self) -> serde_json::Value {
        let a = self.active.lock().await;
        let counters = nft::counters().await.unwrap_or_default();
        let names = Self::counter_names(&a.view);
        let counters: Vec<_> = names
            .iter()
            .filter_map(|(zone, dir, name)| {
                let c = counters.iter().find(|c| &c.name == name)?;
                Some(serde_json::json!({
                    "zone": zone, "direction": dir, "packets": c.packets, "bytes": c.bytes,
                }))
            })
            .collect();
        let phase = self.dhcp_phase.lock().ok().and_then(|p| *p);
        serde_json::json!({
            "ruleset_sha256": a.ruleset.sha256(),
            "ruleset_applies": a.applies,
            "wan": {
                "mode": a.view.wan.mode,
                "interface": a.view.wan.interface,
                "address": a.wan.address.map(|x| x.to_string()),
                "gateway": a.wan.gateway.map(|x| x.to_string()),
                "dhcp": phase,
            },
            "ipv6": {
                "dhcp6": self.dhcp6_phase.lock().ok().and_then(|p| *p),
                "address": a.wan6.address.map(|x| x.value.to_string()),
                "prefix": a.wan6.prefix().map(|x| x.to_string()),
                "deprecated": a.wan6.deprecated.iter().map(|p| p.net.to_string()).collect::<Vec<_>>(),
            },
            "counters": counters,
            "missing_interfaces": a.missing,
            "last_error": a.last_error,
        })
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        self.replace(&toml).await
    }
}

/// Runs the firewall with `view` until SIGTERM or SIGINT.
pub async fn run(view: FirewallView) -> Result<(), RunError> {
    let token = Token::load(&view.control.token_file)?;
    let listen = view.control.listen;
    let dhcp_on = (view.wan.mode == WanMode::Dhcp).then(|| view.wan.interface.clone());
    let dhcp6_on = view
        .wan
        .ipv6
        .map(|v6| (view.wan.uplink().to_owned(), v6.prefix_hint));
    let pppoe_on = view.wan.mode == WanMode::Pppoe;
    let neighbours_to = view.dns_peer.clone();
    let zone_interfaces: Vec<String> = view
        .zones
        .iter()
        .filter(|z| z.ipv6.is_some())
        .map(|z| z.interface.clone())
        .collect();
    let firewall = Firewall::start(view).await?;
    // One advertiser per IPv6 zone whose interface exists; each reads its prefix from the
    // shared map, so a new view changes what it says (zones added later need a restart).
    let ra_interfaces: Vec<String> = {
        let a = firewall.active.lock().await;
        a.wan6
            .adverts(&a.view)
            .into_keys()
            .filter(|i| !a.missing.contains(i))
            .collect()
    };
    for interface in ra_interfaces {
        let (adverts, stats) = (firewall.ra_adverts.subscribe(), firewall.ra_stats.clone());
        tokio::spawn(async move {
            if let Err(e) = ra_io::run(interface.clone(), adverts, stats).await {
                tracing::error!(%interface, error = %e, "router advertisements stopped");
            }
        });
    }
    if let Some(interface) = dhcp_on {
        let fw = firewall.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::dhcp_io::run(interface, fw.clone()).await {
                tracing::error!(error = %e, "dhcp client stopped");
                if let Ok(mut a) = fw.active.try_lock() {
                    a.last_error = Some(e.to_string());
                }
            }
        });
    }
    if let Some((interface, hint)) = dhcp6_on {
        let (uplink, stats) = (interface.clone(), firewall.ra_stats.clone());
        tokio::spawn(async move {
            if let Err(e) = ra_io::watch_uplink(uplink, stats).await {
                tracing::warn!(error = %e, "cannot solicit or watch the isp's router");
            }
        });
        let fw = firewall.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::dhcp6_io::run(interface, hint, fw.clone()).await {
                tracing::error!(error = %e, "dhcpv6 client stopped");
                if let Ok(mut a) = fw.active.try_lock() {
                    a.last_error = Some(e.to_string());
                }
            }
        });
    }
    if let Some(peer) = neighbours_to {
        tokio::spawn(crate::neighbours::run(peer, zone_interfaces));
    }
    if pppoe_on {
        // pppd (beside this daemon, ADR 0011) owns ppp0; its address is polled, not pushed.
        let fw = firewall.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
            loop {
                tick.tick().await;
                match netcfg::ptp_address(roost_config::views::PPPOE_INTERFACE).await {
                    Ok(found) => {
                        fw.wan_observed(WanState {
                            address: found.map(|(net, _)| net),
                            gateway: found.and_then(|(_, peer)| peer),
                            delegated: None,
                        })
                        .await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the pppoe link"),
                }
            }
        });
    }
    let app = roost_control::router(firewall, token, Limits::default());
    let listener = roost_control::bind(listen.into()).await?;
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
