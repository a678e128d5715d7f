//! The pages: server-rendered HTML (maud escapes every value), one stylesheet and one small
//! script embedded in the binary, no framework (docs/adr/0008). Every form posts to the page's
//! own path, carries the session's CSRF token, and redirects back with a message (post,
//! redirect, get), so reloading never repeats a change.

use axum::Extension;
use axum::Router;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use roost_config::Service;

use crate::app::{Authed, Caller, Shared, cleared_cookie, session_cookie};
use crate::auth::Flash;
use crate::ops::{self, OpError, PasswordInput, PortForwardInput, ReservationInput};
use crate::stats::Point;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");
const ICON: &str = include_str!("../assets/icon.svg");

/// The embedded assets.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The page routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/setup", get(setup_page).post(setup_submit))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/dhcp", get(dhcp_page))
        .route("/dhcp/reservations", post(reservation_add))
        .route(
            "/dhcp/reservations/{ip}",
            get(reservation_edit).post(reservation_save),
        )
        .route("/dhcp/reservations/{ip}/delete", post(reservation_delete))
        .route("/dns", get(dns_page))
        .route("/dns/blocklists/{name}", post(blocklist_switch))
        .route("/firewall", get(firewall_page))
        .route("/firewall/port-forwards", post(forward_add))
        .route(
            "/firewall/port-forwards/{name}",
            get(forward_edit).post(forward_save),
        )
        .route(
            "/firewall/port-forwards/{name}/delete",
            post(forward_delete),
        )
        .route("/zones", get(zones_page))
        .route("/mqtt", get(mqtt_page))
        .route("/mqtt/users", post(mqtt_user_add))
        .route("/mqtt/users/{name}/delete", post(mqtt_user_delete))
        .route("/wifi", get(wifi_page))
        .route("/wifi/wps", post(wifi_wps))
        .route("/phones", get(phones_page))
        .route("/updates", get(updates_page))
        .route("/updates/{action}", post(update_action))
        .route("/updates/pin/{n}", post(update_pin))
        .route("/settings", get(settings_page))
        .route("/settings/backup", get(backup_download))
        .route("/settings/restore", post(backup_restore))
        .route("/settings/versions/{n}/restore", post(version_restore))
        .route("/settings/password", post(password_change))
}

/// The navigation; Wi-Fi only on a router with Wi-Fi.
const NAV: [(&str, &str); 10] = [
    ("/", "Overview"),
    ("/dhcp", "Devices"),
    ("/dns", "DNS"),
    ("/firewall", "Port forwards"),
    ("/zones", "Zones"),
    ("/mqtt", "MQTT"),
    ("/wifi", "Wi-Fi"),
    ("/phones", "Phones"),
    ("/updates", "Updates"),
    ("/settings", "Settings"),
];

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Roost" }
        link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
        link rel="stylesheet" href="/assets/app.css";
        script src="/assets/app.js" defer {}
    }
}

fn flash_box(flash: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = flash {
            div class=(if f.error { "flash error" } else { "flash ok" }) role=(if f.error { "alert" } else { "status" }) {
                @for line in f.text.lines() { p { (line) } }
            }
        }
    }
}

/// A page of the logged-in UI.
fn layout(app: &Shared, authed: &Authed, active: &str, title: &str, body: Markup) -> Html<String> {
    let flash = app.take_flash(&authed.session);
    let hostname = app.controller.current().router.hostname.clone();
    // The Wi-Fi and phones pages only where there is a VM to ask.
    let shown = |href: &str| match href {
        "/wifi" => app.controller.peer(Service::Wifi).is_some(),
        "/phones" => app.controller.peer(Service::Voip).is_some(),
        _ => true,
    };
    Html(
        html! {
            (head(title))
            body {
                header class="top" {
                    a class="brand" href="/" { img src="/assets/icon.svg" alt="" width="28" height="28"; span { "Roost" } small { (hostname) } }
                    nav {
                        @for (href, label) in NAV.into_iter().filter(|(href, _)| shown(href)) {
                            a href=(href) class=(if href == active { "active" } else { "" }) { (label) }
                        }
                    }
                    form method="post" action="/logout" class="logout" {
                        input type="hidden" name="csrf" value=(authed.csrf);
                        button type="submit" class="link" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (flash_box(flash.as_ref()))
                    (body)
                }
            }
        }
        .into_string(),
    )
}

/// A bare page (errors, refusals) with no navigation.
pub fn plain_page(title: &str, message: &str) -> Html<String> {
    Html(
        html! {
            (head(title))
            body class="narrow" {
                main class="card" {
                    h1 { (title) }
                    p { (message) }
                }
            }
        }
        .into_string(),
    )
}

fn csrf_field(authed: &Authed) -> Markup {
    html! { input type="hidden" name="csrf" value=(authed.csrf); }
}

/// After a change: back to `to` with the outcome as the message.
fn after(app: &Shared, authed: &Authed, to: &str, outcome: Result<String, OpError>) -> Response {
    match outcome {
        Ok(text) => app.flash(&authed.session, false, text),
        Err(e) => app.flash(&authed.session, true, e.message),
    }
    app.settings_changed();
    Redirect::to(to).into_response()
}

fn message(r: Result<ops::ChangeDone, OpError>) -> Result<String, OpError> {
    r.map(|d| d.message)
}

// --- first run and login -------------------------------------------------------------------

fn setup_form(error: Option<&str>) -> Html<String> {
    Html(
        html! {
            (head("Set up"))
            body class="narrow" {
                main class="card" {
                    img class="logo" src="/assets/icon.svg" alt="" width="48" height="48";
                    h1 { "Welcome to Roost" }
                    p { "Set the administrator password. There is no default password: until you set one, this page is all the router shows, and only to devices in the LAN." }
                    @if let Some(e) = error { div class="flash error" role="alert" { p { (e) } } }
                    form method="post" action="/setup" {
                        label { "User" input type="text" value="admin" disabled; }
                        label { "New password" input type="password" name="password" autocomplete="new-password" minlength="8" maxlength="1024" required autofocus; }
                        label { "Again" input type="password" name="again" autocomplete="new-password" minlength="8" maxlength="1024" required; }
                        button type="submit" { "Set the administrator password" }
                    }
                }
            }
        }
        .into_string(),
    )
}

async fn setup_page() -> Html<String> {
    setup_form(None)
}

#[derive(serde::Deserialize)]
struct SetupForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

async fn setup_submit(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<SetupForm>,
) -> Response {
    if form.password != form.again {
        return (
            StatusCode::BAD_REQUEST,
            setup_form(Some("The two passwords differ.")),
        )
            .into_response();
    }
    let input = PasswordInput {
        current: None,
        password: Some(form.password.clone()),
    };
    match ops::set_admin_password(&app.controller, &input, true).await {
        Ok(_) => {
            tracing::info!(client = %caller.addr, "administrator password set on first run");
            let user = app.controller.current().web.admin.user.clone();
            match app.login(caller.addr, &user, &form.password).await {
                Ok((id, _)) => (
                    [(header::SET_COOKIE, session_cookie(&id))],
                    Redirect::to("/"),
                )
                    .into_response(),
                Err(_) => Redirect::to("/login").into_response(),
            }
        }
        Err(e) => (e.status, setup_form(Some(&e.message))).into_response(),
    }
}

fn login_form(error: Option<&str>) -> Html<String> {
    Html(
        html! {
            (head("Log in"))
            body class="narrow" {
                main class="card" {
                    img class="logo" src="/assets/icon.svg" alt="" width="48" height="48";
                    h1 { "Log in to Roost" }
                    @if let Some(e) = error { div class="flash error" role="alert" { p { (e) } } }
                    form method="post" action="/login" {
                        label { "User" input type="text" name="user" value="admin" autocomplete="username" required; }
                        label { "Password" input type="password" name="password" autocomplete="current-password" required autofocus; }
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
        .into_string(),
    )
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

async fn login_submit(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<LoginForm>,
) -> Response {
    match app.login(caller.addr, &form.user, &form.password).await {
        Ok((id, _)) => (
            [(header::SET_COOKIE, session_cookie(&id))],
            Redirect::to("/"),
        )
            .into_response(),
        Err(refused) => {
            let (status, text) = refused.explain();
            (status, login_form(Some(&text))).into_response()
        }
    }
}

async fn logout(State(app): State<Shared>, Extension(authed): Extension<Authed>) -> Response {
    app.logout(&authed.session);
    (
        [(header::SET_COOKIE, cleared_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}

// --- overview ------------------------------------------------------------------------------

fn uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .map(|s| s as u64)
}

/// `3 d 4 h`, `5 h 12 min`, `42 s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{secs} s")
    }
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

async fn overview(State(app): State<Shared>, Extension(authed): Extension<Authed>) -> Html<String> {
    let c = &app.controller;
    let wan = ops::peer_state(c, Service::Firewall).await;
    let statuses = c.peer_status();
    let version = c.current_version().await;
    let body = html! {
        section class="grid" {
            div class="card" {
                h2 { "Internet" }
                @match &wan {
                    Ok(state) => {
                        @let addr = str_at(state, &["wan", "address"]);
                        p class=(if addr.is_some() { "big ok" } else { "big warn" }) {
                            (addr.unwrap_or("no address yet"))
                        }
                        dl {
                            dt { "Gateway" } dd { (str_at(state, &["wan", "gateway"]).unwrap_or("—")) }
                            dt { "Interface" } dd { (str_at(state, &["wan", "interface"]).unwrap_or("—")) }
                            dt { "Mode" } dd { (str_at(state, &["wan", "mode"]).unwrap_or("—")) }
                            @if let Some(prefix) = str_at(state, &["ipv6", "prefix"]) {
                                dt { "IPv6 prefix" } dd { (prefix) }
                            }
                            @if let Some(addr) = str_at(state, &["ipv6", "address"]) {
                                dt { "IPv6 address" } dd { (addr) }
                            }
                            @if let Some(old) = state.pointer("/ipv6/deprecated").and_then(|d| d.as_array()).filter(|d| !d.is_empty()) {
                                dt { "Leaving" }
                                dd class="muted" {
                                    @for p in old { (p.as_str().unwrap_or("")) " " }
                                    "(the ISP changed the prefix; devices move to the new one)"
                                }
                            }
                        }
                    }
                    Err(e) => { p class="big bad" { "unknown" } p class="muted" { (e.message) } }
                }
            }
            div class="card" {
                h2 { "Router" }
                dl {
                    dt { "Up for" } dd { (uptime().map_or_else(|| "—".to_owned(), human_duration)) }
                    dt { "Settings version" } dd { (version.map_or_else(|| "—".to_owned(), |v| v.to_string())) }
                    dt { "Name" } dd { (c.current().router.hostname) "." (c.current().router.domain) }
                }
            }
        }
        section class="card" {
            h2 { "Services" }
            @if statuses.is_empty() {
                p class="muted" { "Checking the services…" }
            } @else {
                ul class="services" {
                    @for s in &statuses {
                        li {
                            span class=(if s.healthy { "dot ok" } else { "dot bad" }) {}
                            strong { (s.service.name()) }
                            @if let Some(p) = &s.problem { span class="muted" { " — " (p) } } @else { span class="muted" { " — running" } }
                        }
                    }
                }
            }
        }
    };
    layout(&app, &authed, "/", "Overview", body)
}

// --- DHCP ----------------------------------------------------------------------------------

fn reservation_fields(zones: &[String], r: Option<&roost_config::settings::Reservation>) -> Markup {
    html! {
        label { "Zone"
            select name="zone" {
                @for z in zones {
                    option value=(z) selected[r.map_or(z == crate::app::SETUP_ZONE, |r| &r.zone == z)] { (z) }
                }
            }
        }
        label { "MAC address" input type="text" name="mac" placeholder="aa:bb:cc:dd:ee:ff" value=[r.and_then(|r| r.mac).map(|m| m.to_string())]; }
        label { "IP address" input type="text" name="ip" placeholder="192.168.1.50" required value=[r.map(|r| r.ip.to_string())]; }
        label { "Name" input type="text" name="hostname" placeholder="printer" value=[r.and_then(|r| r.hostname.clone())]; }
    }
}

async fn dhcp_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let settings = app.controller.current();
    let state = ops::peer_state(&app.controller, Service::Dhcp).await;
    let zones: Vec<String> = settings.zones.keys().cloned().collect();
    let body = html! {
        section class="card" {
            h2 { "Connected devices" }
            @match &state {
                Ok(s) => {
                    @let leases: Vec<&serde_json::Value> = s.get("leases").and_then(|l| l.as_array()).map(|a| a.iter().filter(|l| l.get("active").and_then(serde_json::Value::as_bool) == Some(true)).collect()).unwrap_or_default();
                    @if leases.is_empty() { p class="muted" { "No device has an address yet." } }
                    @else {
                        div class="scroll" { table {
                            thead { tr { th { "Name" } th { "Address" } th { "MAC" } th { "Zone" } th { "Until" } } }
                            tbody {
                                @for l in leases {
                                    tr {
                                        td { (l.get("name").or_else(|| l.get("hostname")).and_then(|v| v.as_str()).unwrap_or("—")) }
                                        td { (l.get("ip").and_then(|v| v.as_str()).unwrap_or("")) }
                                        td class="mono" { (l.get("mac").and_then(|v| v.as_str()).unwrap_or("")) }
                                        td { (l.get("zone").and_then(|v| v.as_str()).unwrap_or("")) }
                                        td { time data-unix=(l.get("expires").and_then(serde_json::Value::as_u64).unwrap_or(0)) { (l.get("expires").and_then(serde_json::Value::as_u64).unwrap_or(0)) } }
                                    }
                                }
                            }
                        } }
                    }
                }
                Err(e) => { div class="flash error" { p { "The DHCP server cannot be asked: " (e.message) } } }
            }
        }
        section class="card" {
            h2 { "Reserved addresses" }
            @if settings.dhcp.reservations.is_empty() { p class="muted" { "No reservations." } }
            @else {
                div class="scroll" { table {
                    thead { tr { th { "Name" } th { "Address" } th { "MAC" } th { "Zone" } th {} } }
                    tbody {
                        @for r in &settings.dhcp.reservations {
                            tr {
                                td { (r.hostname.as_deref().unwrap_or("—")) }
                                td { (r.ip) }
                                td class="mono" { (r.mac.map(|m| m.to_string()).or_else(|| r.client_id.clone()).unwrap_or_default()) }
                                td { (r.zone) }
                                td class="actions" {
                                    a class="button small" href=(format!("/dhcp/reservations/{}", r.ip)) { "Edit" }
                                    form method="post" action=(format!("/dhcp/reservations/{}/delete", r.ip)) data-confirm=(format!("Remove the reservation of {}?", r.ip)) {
                                        (csrf_field(&authed))
                                        button type="submit" class="small danger" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            h3 { "Reserve an address" }
            form method="post" action="/dhcp/reservations" class="inline" {
                (csrf_field(&authed))
                (reservation_fields(&zones, None))
                button type="submit" { "Reserve" }
            }
        }
    };
    layout(&app, &authed, "/dhcp", "Devices", body)
}

async fn reservation_add(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Form(input): Form<ReservationInput>,
) -> Response {
    let r = ops::add_reservation(&app.controller, &input).await;
    after(&app, &authed, "/dhcp", message(r))
}

async fn reservation_edit(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(ip): Path<String>,
) -> Response {
    let settings = app.controller.current();
    let Some(r) = ops::parse_ip(&ip)
        .ok()
        .and_then(|ip| settings.dhcp.reservations.iter().find(|r| r.ip == ip))
    else {
        return after(
            &app,
            &authed,
            "/dhcp",
            Err(OpError {
                status: StatusCode::NOT_FOUND,
                message: format!("No reservation for {ip}."),
            }),
        );
    };
    let zones: Vec<String> = settings.zones.keys().cloned().collect();
    let body = html! {
        section class="card" {
            form method="post" action=(format!("/dhcp/reservations/{}", r.ip)) {
                (csrf_field(&authed))
                (reservation_fields(&zones, Some(r)))
                div class="row" { button type="submit" { "Save" } a class="button secondary" href="/dhcp" { "Cancel" } }
            }
        }
    };
    layout(
        &app,
        &authed,
        "/dhcp",
        &format!("Reservation of {}", r.ip),
        body,
    )
    .into_response()
}

async fn reservation_save(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(ip): Path<String>,
    Form(input): Form<ReservationInput>,
) -> Response {
    let r = match ops::parse_ip(&ip) {
        Ok(ip) => message(ops::update_reservation(&app.controller, ip, &input).await),
        Err(e) => Err(e),
    };
    after(&app, &authed, "/dhcp", r)
}

async fn reservation_delete(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(ip): Path<String>,
) -> Response {
    let r = match ops::parse_ip(&ip) {
        Ok(ip) => message(ops::delete_reservation(&app.controller, ip).await),
        Err(e) => Err(e),
    };
    after(&app, &authed, "/dhcp", r)
}

// --- DNS -----------------------------------------------------------------------------------

/// An SVG line chart of the last hour: queries per second (line) and cache hit ratio (area).
pub fn chart(points: &[Point]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    if points.len() < 2 {
        return html! { p class="muted" { "The chart fills in over the first minutes (one point a minute)." } };
    }
    let max_q = points
        .iter()
        .map(|p| p.queries_per_second)
        .fold(1.0_f64, f64::max);
    let x = |i: usize| i as f64 * W / (points.len() - 1) as f64;
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1} ", x(i), H - p.queries_per_second / max_q * H))
        .collect();
    let mut area = format!("0,{H} ");
    area.extend(
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1} ", x(i), H - p.hit_ratio * H)),
    );
    area.push_str(&format!("{W},{H}"));
    let last = points.last().copied();
    html! {
        figure class="chart" {
            svg viewBox=(format!("0 0 {W} {H}")) preserveAspectRatio="none" role="img" aria-label="DNS queries per second and cache hit ratio over the last hour" {
                polygon class="hits" points=(area) {}
                polyline class="queries" points=(line) {}
            }
            figcaption {
                span class="key queries" { "queries/s (peak " (format!("{max_q:.1}")) ")" }
                span class="key hits" { "cache hit ratio" }
                @if let Some(p) = last { span class="muted" { "last minute: " (format!("{:.1}", p.queries_per_second)) " q/s, " (format!("{:.0}", p.hit_ratio * 100.0)) " % from cache" } }
            }
        }
    }
}

async fn dns_page(State(app): State<Shared>, Extension(authed): Extension<Authed>) -> Html<String> {
    let settings = app.controller.current();
    let points = crate::app::lock_history(&app).points();
    let state = ops::peer_state(&app.controller, Service::Dns).await;
    let body = html! {
        section class="card" {
            h2 { "Last hour" }
            (chart(&points))
        }
        section class="grid" {
            div class="card" {
                h2 { "Cache" }
                @match &state {
                    Ok(s) => {
                        dl {
                            dt { "Entries" } dd { (s.pointer("/cache/entries").and_then(serde_json::Value::as_u64).unwrap_or(0)) }
                            dt { "Bytes" } dd { (s.pointer("/cache/bytes").and_then(serde_json::Value::as_u64).unwrap_or(0)) }
                            dt { "Blocked names" } dd { (s.get("blocklist_names").and_then(serde_json::Value::as_u64).unwrap_or(0)) }
                        }
                        h3 { "Most asked for" }
                        @let top = s.get("top_names").and_then(|t| t.as_array()).cloned().unwrap_or_default();
                        @if top.is_empty() { p class="muted" { "No queries yet." } }
                        ol class="top" {
                            @for t in &top {
                                li { span class="mono" { (t.get("name").and_then(|v| v.as_str()).unwrap_or("?")) } " " span class="muted" { "≈ " (t.get("queries").and_then(serde_json::Value::as_u64).unwrap_or(0)) } }
                            }
                        }
                        h3 { "Upstreams" }
                        ul class="services" {
                            @for u in s.get("upstreams").and_then(|u| u.as_array()).into_iter().flatten() {
                                li {
                                    span class=(if u.get("healthy").and_then(serde_json::Value::as_bool) == Some(true) { "dot ok" } else { "dot bad" }) {}
                                    strong { (u.get("address").and_then(|v| v.as_str()).unwrap_or("?")) }
                                    @if let Some(n) = u.get("tls_name").and_then(|v| v.as_str()) { span class="muted" { " TLS " (n) } }
                                }
                            }
                        }
                    }
                    Err(e) => { div class="flash error" { p { "The resolver cannot be asked: " (e.message) } } }
                }
            }
            div class="card" {
                h2 { "Block lists" }
                @if settings.dns.blocklists.is_empty() { p class="muted" { "No block lists are configured." } }
                ul class="switches" {
                    @for b in &settings.dns.blocklists {
                        li {
                            form method="post" action=(format!("/dns/blocklists/{}", b.name)) {
                                (csrf_field(&authed))
                                input type="hidden" name="enabled" value=(if b.enabled { "false" } else { "true" });
                                strong { (b.name) } " "
                                span class=(if b.enabled { "pill ok" } else { "pill" }) { (if b.enabled { "on" } else { "off" }) }
                                button type="submit" class="small secondary" { (if b.enabled { "Turn off" } else { "Turn on" }) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&app, &authed, "/dns", "DNS", body)
}

async fn blocklist_switch(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(name): Path<String>,
    Form(input): Form<ops::SwitchInput>,
) -> Response {
    let r = ops::set_blocklist(&app.controller, &name, &input).await;
    after(&app, &authed, "/dns", message(r))
}

// --- firewall ------------------------------------------------------------------------------

fn forward_fields(f: Option<&roost_config::settings::PortForward>) -> Markup {
    let proto = f.map_or("tcp", |f| match f.protocol {
        roost_config::settings::Protocol::Tcp => "tcp",
        roost_config::settings::Protocol::Udp => "udp",
        roost_config::settings::Protocol::Both => "both",
    });
    html! {
        label { "Name" input type="text" name="name" placeholder="game server" required value=[f.map(|f| f.name.clone())]; }
        label { "Protocol"
            select name="protocol" {
                @for p in ["tcp", "udp", "both"] { option value=(p) selected[p == proto] { (p.to_uppercase()) } }
            }
        }
        label { "Outside port" input type="number" name="port" min="1" max="65535" required value=[f.map(|f| f.port)]; }
        label { "To device" input type="text" name="to" placeholder="192.168.1.50" required value=[f.map(|f| f.to.to_string())]; }
        label { "Device port" input type="number" name="to_port" min="1" max="65535" placeholder="same" value=[f.and_then(|f| f.to_port)]; }
        label { "IPv6 too, at the device's identifier" input type="text" name="ipv6_host" placeholder="::10 (optional)" value=[f.and_then(|f| f.ipv6_host).map(|a| a.to_string())]; }
        label { "State"
            select name="enabled" {
                option value="true" selected[f.is_none_or(|f| f.enabled)] { "On" }
                option value="false" selected[f.is_some_and(|f| !f.enabled)] { "Off" }
            }
        }
    }
}

async fn firewall_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let settings = app.controller.current();
    let body = html! {
        section class="card" {
            p class="muted" { "A port forward lets devices on the Internet open a connection to one port of one device at home. Everything else from the Internet stays blocked." }
            @if settings.firewall.port_forwards.is_empty() { p class="muted" { "No port forwards." } }
            @else {
                div class="scroll" { table {
                    thead { tr { th { "Name" } th { "Protocol" } th { "Outside port" } th { "To" } th { "State" } th {} } }
                    tbody {
                        @for f in &settings.firewall.port_forwards {
                            tr {
                                td { (f.name) }
                                td { (format!("{:?}", f.protocol).to_uppercase()) }
                                td { (f.port) }
                                td {
                                    (f.to) ":" (f.to_port.unwrap_or(f.port))
                                    @if let Some(iid) = f.ipv6_host { br; span class="muted" { "IPv6 " (iid) " port " (f.to_port.unwrap_or(f.port)) } }
                                }
                                td { span class=(if f.enabled { "pill ok" } else { "pill" }) { (if f.enabled { "on" } else { "off" }) } }
                                td class="actions" {
                                    a class="button small" href=(format!("/firewall/port-forwards/{}", f.name)) { "Edit" }
                                    form method="post" action=(format!("/firewall/port-forwards/{}/delete", f.name)) data-confirm=(format!("Remove the port forward {}?", f.name)) {
                                        (csrf_field(&authed))
                                        button type="submit" class="small danger" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            h3 { "Add a port forward" }
            form method="post" action="/firewall/port-forwards" class="inline" {
                (csrf_field(&authed))
                (forward_fields(None))
                button type="submit" { "Add" }
            }
        }
    };
    layout(&app, &authed, "/firewall", "Port forwards", body)
}

async fn forward_add(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Form(input): Form<PortForwardInput>,
) -> Response {
    let r = ops::add_port_forward(&app.controller, &input).await;
    after(&app, &authed, "/firewall", message(r))
}

async fn forward_edit(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(name): Path<String>,
) -> Response {
    let settings = app.controller.current();
    let Some(f) = settings
        .firewall
        .port_forwards
        .iter()
        .find(|f| f.name == name)
    else {
        return after(
            &app,
            &authed,
            "/firewall",
            Err(OpError {
                status: StatusCode::NOT_FOUND,
                message: format!("No port forward named {name}."),
            }),
        );
    };
    let body = html! {
        section class="card" {
            form method="post" action=(format!("/firewall/port-forwards/{}", f.name)) {
                (csrf_field(&authed))
                (forward_fields(Some(f)))
                div class="row" { button type="submit" { "Save" } a class="button secondary" href="/firewall" { "Cancel" } }
            }
        }
    };
    layout(
        &app,
        &authed,
        "/firewall",
        &format!("Port forward {}", f.name),
        body,
    )
    .into_response()
}

async fn forward_save(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(name): Path<String>,
    Form(input): Form<PortForwardInput>,
) -> Response {
    let r = ops::update_port_forward(&app.controller, &name, &input).await;
    after(&app, &authed, "/firewall", message(r))
}

async fn forward_delete(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(name): Path<String>,
) -> Response {
    let r = ops::delete_port_forward(&app.controller, &name).await;
    after(&app, &authed, "/firewall", message(r))
}

// --- zones ---------------------------------------------------------------------------------

async fn zones_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let settings = app.controller.current();
    let body = html! {
        section class="card" {
            p class="muted" { "Each zone is its own network. A zone reaches only what it lists; the router's services answer each zone on its router address." }
            div class="scroll" { table {
                thead { tr { th { "Zone" } th { "Network" } th { "Router" } th { "Addresses handed out" } th { "Reaches" } } }
                tbody {
                    @for (name, z) in &settings.zones {
                        tr {
                            td { strong { (name) } }
                            td class="mono" { (z.subnet) }
                            td class="mono" { (z.router) }
                            td { @if let Some(d) = &z.dhcp { (d.pool_start) " – " (d.pool_end) } @else { "—" } }
                            td { @if z.reach.is_empty() { "nothing" } @else { (z.reach.join(", ")) } }
                        }
                    }
                }
            } }
        }
    };
    layout(&app, &authed, "/zones", "Zones", body)
}

// --- MQTT ----------------------------------------------------------------------------------

async fn mqtt_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let settings = app.controller.current();
    let body = html! {
        section class="card" {
            p class="muted" { "Smart-home devices log in to the router's MQTT broker with these accounts. Each may publish and subscribe only to its topics (" code { "+" } " matches one level, " code { "#" } " the rest)." }
            @if settings.mqtt.users.is_empty() { p class="muted" { "No MQTT users." } }
            @else {
                div class="scroll" { table {
                    thead { tr { th { "User" } th { "May publish" } th { "May subscribe" } th {} } }
                    tbody {
                        @for u in &settings.mqtt.users {
                            tr {
                                td { strong { (u.name) } }
                                td class="mono" { (u.publish.join(", ")) }
                                td class="mono" { (u.subscribe.join(", ")) }
                                td class="actions" {
                                    form method="post" action=(format!("/mqtt/users/{}/delete", u.name)) data-confirm=(format!("Remove the MQTT user {}?", u.name)) {
                                        (csrf_field(&authed))
                                        button type="submit" class="small danger" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            h3 { "Add a user" }
            form method="post" action="/mqtt/users" class="inline" {
                (csrf_field(&authed))
                label { "User" input type="text" name="name" required; }
                label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                label { "May publish" input type="text" name="publish" placeholder="sensors/kitchen/#"; }
                label { "May subscribe" input type="text" name="subscribe" placeholder="lights/+/set"; }
                button type="submit" { "Add" }
            }
        }
    };
    layout(&app, &authed, "/mqtt", "MQTT", body)
}

async fn mqtt_user_add(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Form(input): Form<ops::MqttUserInput>,
) -> Response {
    let r = ops::add_mqtt_user(&app.controller, &input).await;
    after(&app, &authed, "/mqtt", message(r))
}

async fn mqtt_user_delete(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(name): Path<String>,
) -> Response {
    let r = ops::delete_mqtt_user(&app.controller, &name).await;
    after(&app, &authed, "/mqtt", message(r))
}

// --- Wi-Fi ---------------------------------------------------------------------------------

async fn wifi_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let state = ops::wifi_state(&app.controller).await;
    let body = html! {
        @match &state {
            Ok(s) => {
                @let networks = s.get("networks").and_then(|n| n.as_array()).cloned().unwrap_or_default();
                section class="card" {
                    h2 { "Radio" }
                    dl {
                        dt { "State" } dd { (str_at(s, &["state"]).unwrap_or("—")) }
                        dt { "Channel" } dd { (s.get("channel").and_then(serde_json::Value::as_u64).map_or_else(|| "—".to_owned(), |c| c.to_string())) }
                    }
                }
                section class="card" {
                    h2 { "Networks" }
                    div class="scroll" { table {
                        thead { tr { th { "Network" } th { "Zone" } th { "Security" } th { "Devices" } th { "WPS" } } }
                        tbody {
                            @for n in &networks {
                                tr {
                                    td { strong { (str_at(n, &["ssid"]).unwrap_or("—")) } " " span class="muted" { (str_at(n, &["name"]).unwrap_or("—")) } }
                                    td { (str_at(n, &["zone"]).unwrap_or("—")) }
                                    td { (str_at(n, &["security"]).unwrap_or("—")) }
                                    td { (n.get("stations").and_then(serde_json::Value::as_u64).map_or_else(|| "—".to_owned(), |c| c.to_string())) }
                                    td { @if n.get("wps").and_then(serde_json::Value::as_bool) == Some(true) { (str_at(n, &["wps_button"]).unwrap_or("—")) } @else { "off" } }
                                }
                            }
                        }
                    } }
                    @if networks.iter().any(|n| n.get("wps").and_then(serde_json::Value::as_bool) == Some(true)) {
                        p class="muted" { "The WPS button lets a device join without typing the passphrase: press it here, then on the device, within two minutes." }
                        form method="post" action="/wifi/wps" {
                            (csrf_field(&authed))
                            button type="submit" { "Press the WPS button" }
                        }
                    }
                }
            }
            Err(e) => { section class="card" { div class="flash error" { p { "The Wi-Fi access point cannot be asked: " (e.message) } } } }
        }
    };
    layout(&app, &authed, "/wifi", "Wi-Fi", body)
}

async fn wifi_wps(State(app): State<Shared>, Extension(authed): Extension<Authed>) -> Response {
    let r = ops::wifi_wps(&app.controller).await;
    after(&app, &authed, "/wifi", r)
}

// --- phones (VoIP) -------------------------------------------------------------------------

async fn phones_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let state = ops::voip_state(&app.controller).await;
    let body = html! {
        @match &state {
            Ok(s) => {
                @let phones = s.get("phones").and_then(|n| n.as_array()).cloned().unwrap_or_default();
                section class="card" {
                    h2 { "Phones" }
                    p class="muted" {
                        "Phones in the " (str_at(s, &["zone"]).unwrap_or("—")) " zone register at " code { (str_at(s, &["registrar"]).unwrap_or("—")) }
                        " with their extension as user name, and call each other by extension."
                    }
                    @if let Some(e) = s.get("error").and_then(|e| e.as_str()) {
                        div class="flash error" { p { "The registrar cannot be asked: " (e) } }
                    }
                    div class="scroll" { table {
                        thead { tr { th { "Phone" } th { "Extension" } th { "Registered" } th { "From" } th { "Device" } } }
                        tbody {
                            @for p in &phones {
                                @let first = p.get("registrations").and_then(|r| r.get(0));
                                tr {
                                    td { strong { (str_at(p, &["name"]).unwrap_or("—")) } }
                                    td { (str_at(p, &["extension"]).unwrap_or("—")) }
                                    td { @if p.get("registered").and_then(serde_json::Value::as_bool) == Some(true) { "yes" } @else { "no" } }
                                    td { (first.and_then(|r| str_at(r, &["address"])).unwrap_or("—")) }
                                    td { (first.and_then(|r| str_at(r, &["user_agent"])).unwrap_or("—")) }
                                }
                            }
                        }
                    } }
                }
            }
            Err(e) => { section class="card" { div class="flash error" { p { "The VoIP registrar cannot be asked: " (e.message) } } } }
        }
    };
    layout(&app, &authed, "/phones", "Phones", body)
}

// --- updates -------------------------------------------------------------------------------

async fn updates_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let state = ops::peer_state(&app.controller, Service::Update).await;
    let action = |path: &str, label: &str, class: &str| {
        html! {
            form method="post" action=(path) {
                (csrf_field(&authed))
                button type="submit" class=(class) { (label) }
            }
        }
    };
    let body = html! {
        @match &state {
            Ok(s) => {
                @let current = s.pointer("/current/generation").and_then(serde_json::Value::as_u64);
                @let newest = s.get("available").and_then(|a| a.as_array()).and_then(|a| a.iter().filter_map(serde_json::Value::as_u64).max());
                @let pinned = s.get("pinned").and_then(serde_json::Value::as_u64);
                section class="grid" {
                    div class="card" {
                        h2 { "Running" }
                        p class="big" { @if let Some(g) = current { "Generation " (g) } @else { "No generation installed yet" } }
                        dl {
                            dt { "Channel" } dd { (s.get("channel").and_then(|v| v.as_str()).unwrap_or("—")) }
                            dt { "Automatic updates" } dd { (if s.get("auto").and_then(serde_json::Value::as_bool) == Some(true) { "on" } else { "off" }) }
                            dt { "Pinned" } dd { (pinned.map_or_else(|| "no".to_owned(), |p| format!("generation {p}"))) }
                            dt { "Available" } dd {
                                @match newest {
                                    Some(n) if Some(n) > current => { strong { "generation " (n) } }
                                    _ => { "nothing newer" }
                                }
                            }
                            @if let Some(t) = s.pointer("/current/toplevel").and_then(|v| v.as_str()) { dt { "System" } dd class="mono" { (t) } }
                        }
                        @if let Some(e) = s.pointer("/last_check/error").and_then(|v| v.as_str()) { div class="flash error" { p { "The last check failed: " (e) } } }
                        @if let Some(f) = s.get("last_failure").filter(|f| !f.is_null()) {
                            div class="flash error" { p {
                                "Generation " (f.get("generation").and_then(serde_json::Value::as_u64).unwrap_or(0))
                                " was rolled back (" (f.get("phase").and_then(|v| v.as_str()).unwrap_or("?")) "): "
                                (f.get("reason").and_then(|v| v.as_str()).unwrap_or(""))
                            } }
                        }
                        div class="row" {
                            (action("/updates/check", "Check now", "secondary"))
                            (action("/updates/apply", "Install now", ""))
                            (action("/updates/rollback", "Roll back", "danger"))
                            @if pinned.is_some() { (action("/updates/unpin", "Unpin", "secondary")) }
                        }
                    }
                    div class="card" id="progress" data-poll="/api/updates" {
                        h2 { "Progress" }
                        @let done = s.pointer("/progress/bytes").and_then(serde_json::Value::as_u64).unwrap_or(0);
                        @let total = s.pointer("/progress/bytes_total").and_then(serde_json::Value::as_u64).unwrap_or(0);
                        p { @if s.get("pending").is_some_and(|p| !p.is_null()) { "An update is running." } @else { "No update is running." } }
                        progress max=(total.max(1)) value=(done) {}
                        p class="muted" data-progress-text { (done) " of " (total) " bytes" }
                    }
                }
                section class="card" {
                    h2 { "Installed generations" }
                    ul class="services" {
                        @for (g, path) in s.get("installed").and_then(|i| i.as_object()).into_iter().flatten().rev() {
                            li {
                                strong { "Generation " (g) }
                                @if Some(g.as_str()) == current.map(|c| c.to_string()).as_deref() { " " span class="pill ok" { "running" } }
                                @if Some(g.as_str()) == pinned.map(|c| c.to_string()).as_deref() { " " span class="pill" { "pinned" } }
                                " " span class="muted mono" { (path.as_str().unwrap_or("")) }
                                @if let Ok(n) = g.parse::<u64>() { @if Some(n) != pinned { (action(&format!("/updates/pin/{n}"), "Pin", "small secondary")) } }
                            }
                        }
                    }
                    h2 { "History" }
                    div class="scroll" { table {
                        thead { tr { th { "When" } th { "Generation" } th { "Outcome" } th { "Why" } } }
                        tbody {
                            @for h in s.get("history").and_then(|h| h.as_array()).into_iter().flatten().rev().take(50) {
                                tr {
                                    td { (h.get("at").and_then(|v| v.as_str()).unwrap_or("")) }
                                    td { (h.get("generation").and_then(serde_json::Value::as_u64).unwrap_or(0)) }
                                    td { (h.get("outcome").and_then(|v| v.as_str()).unwrap_or("")) }
                                    td class="muted" { (h.get("reason").and_then(|v| v.as_str()).unwrap_or("")) }
                                }
                            }
                        }
                    } }
                }
            }
            Err(e) => { section class="card" { div class="flash error" { p { "The update agent cannot be asked: " (e.message) } } } }
        }
    };
    layout(&app, &authed, "/updates", "Updates", body)
}

async fn update_action(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(action): Path<String>,
) -> Response {
    let action = match action.as_str() {
        "check" => ops::UpdateAction::Check,
        "apply" => ops::UpdateAction::Apply,
        "rollback" => ops::UpdateAction::Rollback,
        "unpin" => ops::UpdateAction::Unpin,
        _ => {
            return after(
                &app,
                &authed,
                "/updates",
                Err(OpError {
                    status: StatusCode::NOT_FOUND,
                    message: "No such action.".into(),
                }),
            );
        }
    };
    let r = ops::update_action(&app.controller, action).await;
    after(
        &app,
        &authed,
        "/updates",
        r.map(|t| if t.is_empty() { "Done.".to_owned() } else { t }),
    )
}

async fn update_pin(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(n): Path<u64>,
) -> Response {
    let r = ops::pin_generation(&app.controller, n).await;
    after(
        &app,
        &authed,
        "/updates",
        r.map(|_| format!("Generation {n} is pinned.")),
    )
}

// --- settings ------------------------------------------------------------------------------

async fn settings_page(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
) -> Html<String> {
    let versions = app.controller.versions().await;
    let current = app.controller.current_version().await;
    let body = html! {
        section class="grid" {
            div class="card" {
                h2 { "Backup" }
                p { "Download every setting as one file (" code { "roost.toml" } "). Passwords are in it only as hashes." }
                a class="button" href="/settings/backup" download="roost.toml" { "Download backup" }
                h3 { "Restore" }
                p class="muted" { "The file is checked first; nothing changes unless all of it is valid. The administrator password stays as it is." }
                form method="post" action=(format!("/settings/restore?csrf={}", authed.csrf)) enctype="multipart/form-data" {
                    input type="file" name="backup" accept=".toml,text/plain" required;
                    button type="submit" { "Restore" }
                }
            }
            div class="card" {
                h2 { "Administrator password" }
                form method="post" action="/settings/password" {
                    (csrf_field(&authed))
                    label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                    label { "New password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                    button type="submit" { "Change password" }
                }
            }
        }
        section class="card" {
            h2 { "History" }
            div class="scroll" { table {
                thead { tr { th { "Version" } th { "Saved" } th { "Change" } th { "Result" } th {} } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr {
                            td { (v.number) @if Some(v.number) == current { " " span class="pill ok" { "current" } } }
                            td { time data-unix=(v.saved_at) { (v.saved_at) } }
                            td { (v.summary) }
                            td {
                                @match &v.status {
                                    crate::store::Status::Applied => { span class="pill ok" { "applied" } }
                                    crate::store::Status::Pending => { span class="pill" { "pending" } }
                                    crate::store::Status::Failed(why) => { span class="pill bad" { "failed" } " " span class="muted" { (why) } }
                                }
                            }
                            td class="actions" {
                                @if Some(v.number) != current {
                                    form method="post" action=(format!("/settings/versions/{}/restore", v.number)) data-confirm=(format!("Go back to version {}?", v.number)) {
                                        (csrf_field(&authed))
                                        button type="submit" class="small secondary" { "Restore" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    layout(&app, &authed, "/settings", "Settings", body)
}

async fn backup_download(State(app): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/toml; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"roost.toml\"",
            ),
        ],
        app.controller.current().to_toml(),
    )
        .into_response()
}

async fn backup_restore(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    mut multipart: Multipart,
) -> Response {
    let mut text = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("backup") {
            text = field
                .bytes()
                .await
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
        }
    }
    let r = match text {
        Some(t) => message(ops::restore_backup(&app.controller, &t).await),
        None => Err(OpError {
            status: StatusCode::BAD_REQUEST,
            message: "Choose a backup file first.".into(),
        }),
    };
    after(&app, &authed, "/settings", r)
}

async fn version_restore(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Path(n): Path<u32>,
) -> Response {
    let r = ops::restore_version(&app.controller, n).await;
    after(&app, &authed, "/settings", message(r))
}

async fn password_change(
    State(app): State<Shared>,
    Extension(authed): Extension<Authed>,
    Form(input): Form<PasswordInput>,
) -> Response {
    match ops::set_admin_password(&app.controller, &input, false).await {
        Ok(_) => {
            // Every session ends; this one logs in again with the new password.
            app.logout_all();
            (
                [(header::SET_COOKIE, cleared_cookie())],
                Redirect::to("/login"),
            )
                .into_response()
        }
        Err(e) => after(&app, &authed, "/settings", Err(e)),
    }
}
