//! The JSON API under `/api/`: everything the pages do, for `roostctl` and scripts, described
//! by OpenAPI at `/api/openapi.json`. Log in with `POST /api/login` (a session cookie and the
//! CSRF token come back); every state change then needs the `x-csrf-token` header. Errors are
//! `{"error": "..."}` with a 4xx status, or 502 when a daemon refused or could not be asked.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use roost_config::Service;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::app::{Authed, Caller, Shared, api_error, cleared_cookie, session_cookie};
use crate::controller::PeerStatus;
use crate::ops::{
    self, ChangeDone, MqttUserInput, OpError, PasswordInput, PortForwardInput, ReservationInput,
    SwitchInput, UpdateAction,
};
use crate::stats::Point;
use crate::store::VersionInfo;

/// The API routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/setup", post(setup))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/password", put(password))
        .route("/api/status", get(status))
        .route("/api/leases", get(leases))
        .route("/api/reservations", get(reservations).post(reservation_add))
        .route(
            "/api/reservations/{ip}",
            put(reservation_put).delete(reservation_delete),
        )
        .route("/api/port-forwards", get(forwards).post(forward_add))
        .route(
            "/api/port-forwards/{name}",
            put(forward_put).delete(forward_delete),
        )
        .route("/api/dns", get(dns))
        .route("/api/dns/blocklists/{name}", put(blocklist_put))
        .route("/api/zones", get(zones))
        .route("/api/mqtt/users", get(mqtt_users).post(mqtt_user_add))
        .route(
            "/api/mqtt/users/{name}",
            axum::routing::delete(mqtt_user_delete),
        )
        .route("/api/updates", get(updates))
        .route("/api/updates/pin/{n}", post(update_pin))
        .route("/api/updates/{action}", post(update_action))
        .route("/api/wifi", get(wifi))
        .route("/api/wifi/wps", post(wifi_wps))
        .route("/api/voip", get(voip))
        .route("/api/settings", get(settings_get).put(settings_put))
        .route("/api/settings/versions", get(versions))
        .route("/api/settings/versions/{n}/restore", post(version_restore))
}

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Roost router API", description = "Everything the Roost web UI does. Log in with POST /api/login; send the CSRF token it returns in `x-csrf-token` on every state change."),
    paths(
        setup, login, logout, session, password, status, leases, reservations, reservation_add,
        reservation_put, reservation_delete, forwards, forward_add, forward_put, forward_delete,
        dns, blocklist_put, zones, mqtt_users, mqtt_user_add, mqtt_user_delete, updates,
        update_action, update_pin, wifi, wifi_wps, voip, settings_get, settings_put, versions,
        version_restore
    ),
    components(schemas(ApiError, LoginInput, LoginDone, SessionInfo, Status, PeerStatus,
        ReservationOut, ReservationInput, PortForwardOut, PortForwardInput, DnsInfo, Point,
        BlocklistOut, SwitchInput, ZoneOut, MqttUserOut, MqttUserInput, PasswordInput,
        ChangeDone, VersionInfo, crate::store::Status, UpdateAction)),
    modifiers(&SessionAuth),
    security(("session" = []))
)]
pub struct ApiDoc;

struct SessionAuth;

impl utoipa::Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::app::SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::app::CSRF_HEADER))),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

impl IntoResponse for OpError {
    fn into_response(self) -> Response {
        api_error(self.status, self.message)
    }
}

fn changed(app: &Shared, r: Result<ChangeDone, OpError>) -> Response {
    app.settings_changed();
    match r {
        Ok(done) => Json(done).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Login.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginInput {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginDone {
    /// Send it as `x-csrf-token` on every state change.
    pub csrf: String,
}

/// The session's user and CSRF token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// User name.
    pub user: String,
    /// The CSRF token.
    pub csrf: String,
}

/// Sets the first administrator password (first run, from the LAN only), and logs in.
#[utoipa::path(post, path = "/api/setup", request_body = PasswordInput, security(()),
    responses((status = 200, body = LoginDone), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn setup(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<PasswordInput>,
) -> Response {
    if let Err(e) = ops::set_admin_password(&app.controller, &input, true).await {
        return e.into_response();
    }
    tracing::info!(client = %caller.addr, "administrator password set on first run");
    let user = app.controller.current().web.admin.user.clone();
    let password = input.password.unwrap_or_default();
    match app.login(caller.addr, &user, &password).await {
        Ok((id, csrf)) => (
            [(header::SET_COOKIE, session_cookie(&id))],
            Json(LoginDone { csrf }),
        )
            .into_response(),
        Err(r) => {
            let (status, text) = r.explain();
            api_error(status, text)
        }
    }
}

/// Logs in: sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/login", request_body = LoginInput, security(()),
    responses((status = 200, body = LoginDone), (status = 401, body = ApiError), (status = 429, body = ApiError)))]
async fn login(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<LoginInput>,
) -> Response {
    match app.login(caller.addr, &input.user, &input.password).await {
        Ok((id, csrf)) => (
            [(header::SET_COOKIE, session_cookie(&id))],
            Json(LoginDone { csrf }),
        )
            .into_response(),
        Err(r) => {
            let (status, text) = r.explain();
            api_error(status, text)
        }
    }
}

/// Ends the session.
#[utoipa::path(post, path = "/api/logout", responses((status = 204)))]
async fn logout(State(app): State<Shared>, Extension(authed): Extension<Authed>) -> Response {
    app.logout(&authed.session);
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_cookie())],
    )
        .into_response()
}

/// The session's user and CSRF token.
#[utoipa::path(get, path = "/api/session", responses((status = 200, body = SessionInfo)))]
async fn session(Extension(authed): Extension<Authed>) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: authed.user,
        csrf: authed.csrf,
    })
}

/// Changes the administrator password; every session ends.
#[utoipa::path(put, path = "/api/password", request_body = PasswordInput,
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn password(State(app): State<Shared>, Json(input): Json<PasswordInput>) -> Response {
    match ops::set_admin_password(&app.controller, &input, false).await {
        Ok(done) => {
            app.logout_all();
            ([(header::SET_COOKIE, cleared_cookie())], Json(done)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The router at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// The settings version in force.
    pub version: u32,
    /// Seconds since the web VM started.
    pub uptime_seconds: u64,
    /// The firewall's view of the WAN (its `/state.wan`), when it could be asked.
    #[schema(value_type = Option<Object>)]
    pub wan: Option<serde_json::Value>,
    /// Why the WAN state is missing.
    pub wan_error: Option<String>,
    /// Each daemon's health as last seen.
    pub services: Vec<PeerStatus>,
}

/// The router at a glance.
#[utoipa::path(get, path = "/api/status", responses((status = 200, body = Status)))]
async fn status(State(app): State<Shared>) -> Json<Status> {
    let c = &app.controller;
    let (wan, wan_error) = match ops::peer_state(c, Service::Firewall).await {
        Ok(s) => (s.get("wan").cloned(), None),
        Err(e) => (None, Some(e.message)),
    };
    let version = c.current_version().await.unwrap_or(0);
    Json(Status {
        version,
        uptime_seconds: app.started.elapsed().as_secs(),
        wan,
        wan_error,
        services: c.peer_status(),
    })
}

/// The DHCP server's leases (its `/state`).
#[utoipa::path(get, path = "/api/leases", responses((status = 200, body = Object), (status = 502, body = ApiError)))]
async fn leases(State(app): State<Shared>) -> Response {
    match ops::peer_state(&app.controller, Service::Dhcp).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A reservation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationOut {
    /// Zone.
    pub zone: String,
    /// MAC address.
    pub mac: Option<String>,
    /// DHCP client identifier (hex).
    pub client_id: Option<String>,
    /// Reserved address.
    pub ip: String,
    /// Local name.
    pub hostname: Option<String>,
}

/// Every DHCP reservation.
#[utoipa::path(get, path = "/api/reservations", responses((status = 200, body = Vec<ReservationOut>)))]
async fn reservations(State(app): State<Shared>) -> Json<Vec<ReservationOut>> {
    Json(
        app.controller
            .current()
            .dhcp
            .reservations
            .iter()
            .map(|r| ReservationOut {
                zone: r.zone.clone(),
                mac: r.mac.map(|m| m.to_string()),
                client_id: r.client_id.clone(),
                ip: r.ip.to_string(),
                hostname: r.hostname.clone(),
            })
            .collect(),
    )
}

/// Adds a DHCP reservation and pushes it to the DHCP server.
#[utoipa::path(post, path = "/api/reservations", request_body = ReservationInput, security(("session" = [], "csrf" = [])),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn reservation_add(
    State(app): State<Shared>,
    Json(input): Json<ReservationInput>,
) -> Response {
    let r = ops::add_reservation(&app.controller, &input).await;
    changed(&app, r)
}

/// Replaces the reservation of an address.
#[utoipa::path(put, path = "/api/reservations/{ip}", request_body = ReservationInput, security(("session" = [], "csrf" = [])),
    params(("ip" = String, Path, description = "the reserved address")),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn reservation_put(
    State(app): State<Shared>,
    Path(ip): Path<String>,
    Json(input): Json<ReservationInput>,
) -> Response {
    let r = match ops::parse_ip(&ip) {
        Ok(ip) => ops::update_reservation(&app.controller, ip, &input).await,
        Err(e) => Err(e),
    };
    changed(&app, r)
}

/// Removes the reservation of an address.
#[utoipa::path(delete, path = "/api/reservations/{ip}", security(("session" = [], "csrf" = [])),
    params(("ip" = String, Path, description = "the reserved address")),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn reservation_delete(State(app): State<Shared>, Path(ip): Path<String>) -> Response {
    let r = match ops::parse_ip(&ip) {
        Ok(ip) => ops::delete_reservation(&app.controller, ip).await,
        Err(e) => Err(e),
    };
    changed(&app, r)
}

/// A port forward.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortForwardOut {
    /// Name.
    pub name: String,
    /// `tcp`, `udp` or `both`.
    #[schema(value_type = String)]
    pub protocol: roost_config::settings::Protocol,
    /// Port on the WAN address.
    pub port: u16,
    /// Inside host.
    pub to: String,
    /// Port on the inside host.
    pub to_port: u16,
    /// On or off.
    pub enabled: bool,
}

/// Every port forward.
#[utoipa::path(get, path = "/api/port-forwards", responses((status = 200, body = Vec<PortForwardOut>)))]
async fn forwards(State(app): State<Shared>) -> Json<Vec<PortForwardOut>> {
    Json(
        app.controller
            .current()
            .firewall
            .port_forwards
            .iter()
            .map(|f| PortForwardOut {
                name: f.name.clone(),
                protocol: f.protocol,
                port: f.port,
                to: f.to.to_string(),
                to_port: f.to_port.unwrap_or(f.port),
                enabled: f.enabled,
            })
            .collect(),
    )
}

/// Adds a port forward and pushes it to the firewall.
#[utoipa::path(post, path = "/api/port-forwards", request_body = PortForwardInput, security(("session" = [], "csrf" = [])),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn forward_add(State(app): State<Shared>, Json(input): Json<PortForwardInput>) -> Response {
    let r = ops::add_port_forward(&app.controller, &input).await;
    changed(&app, r)
}

/// Replaces a port forward.
#[utoipa::path(put, path = "/api/port-forwards/{name}", request_body = PortForwardInput, security(("session" = [], "csrf" = [])),
    params(("name" = String, Path, description = "the port forward's name")),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn forward_put(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Json(input): Json<PortForwardInput>,
) -> Response {
    let r = ops::update_port_forward(&app.controller, &name, &input).await;
    changed(&app, r)
}

/// Removes a port forward.
#[utoipa::path(delete, path = "/api/port-forwards/{name}", security(("session" = [], "csrf" = [])),
    params(("name" = String, Path, description = "the port forward's name")),
    responses((status = 200, body = ChangeDone), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn forward_delete(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let r = ops::delete_port_forward(&app.controller, &name).await;
    changed(&app, r)
}

/// A block list.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlocklistOut {
    /// Name.
    pub name: String,
    /// On or off.
    pub enabled: bool,
}

/// The resolver: the last hour, its state, the block lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct DnsInfo {
    /// One point a minute.
    pub history: Vec<Point>,
    /// The resolver's `/state`, when it could be asked.
    #[schema(value_type = Option<Object>)]
    pub state: Option<serde_json::Value>,
    /// Why the state is missing.
    pub state_error: Option<String>,
    /// The block lists.
    pub blocklists: Vec<BlocklistOut>,
}

/// The resolver: the last hour, its state, the block lists.
#[utoipa::path(get, path = "/api/dns", responses((status = 200, body = DnsInfo)))]
async fn dns(State(app): State<Shared>) -> Json<DnsInfo> {
    let history = crate::app::lock_history(&app).points();
    let (state, state_error) = match ops::peer_state(&app.controller, Service::Dns).await {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.message)),
    };
    let blocklists = app
        .controller
        .current()
        .dns
        .blocklists
        .iter()
        .map(|b| BlocklistOut {
            name: b.name.clone(),
            enabled: b.enabled,
        })
        .collect();
    Json(DnsInfo {
        history,
        state,
        state_error,
        blocklists,
    })
}

/// Switches a block list on or off.
#[utoipa::path(put, path = "/api/dns/blocklists/{name}", request_body = SwitchInput, security(("session" = [], "csrf" = [])),
    params(("name" = String, Path, description = "the block list's name")),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn blocklist_put(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Json(input): Json<SwitchInput>,
) -> Response {
    let r = ops::set_blocklist(&app.controller, &name, &input).await;
    changed(&app, r)
}

/// A zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneOut {
    /// Name.
    pub name: String,
    /// Its network.
    pub subnet: String,
    /// The router's address in it.
    pub router: String,
    /// The zones and `wan` it may reach.
    pub reach: Vec<String>,
}

/// The zones.
#[utoipa::path(get, path = "/api/zones", responses((status = 200, body = Vec<ZoneOut>)))]
async fn zones(State(app): State<Shared>) -> Json<Vec<ZoneOut>> {
    Json(
        app.controller
            .current()
            .zones
            .iter()
            .map(|(name, z)| ZoneOut {
                name: name.clone(),
                subnet: z.subnet.to_string(),
                router: z.router.to_string(),
                reach: z.reach.clone(),
            })
            .collect(),
    )
}

/// An MQTT user (its password hash is never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct MqttUserOut {
    /// Login name.
    pub name: String,
    /// Topic patterns it may publish to.
    pub publish: Vec<String>,
    /// Topic patterns it may subscribe to.
    pub subscribe: Vec<String>,
}

/// The MQTT users.
#[utoipa::path(get, path = "/api/mqtt/users", responses((status = 200, body = Vec<MqttUserOut>)))]
async fn mqtt_users(State(app): State<Shared>) -> Json<Vec<MqttUserOut>> {
    Json(
        app.controller
            .current()
            .mqtt
            .users
            .iter()
            .map(|u| MqttUserOut {
                name: u.name.clone(),
                publish: u.publish.clone(),
                subscribe: u.subscribe.clone(),
            })
            .collect(),
    )
}

/// Adds an MQTT user.
#[utoipa::path(post, path = "/api/mqtt/users", request_body = MqttUserInput, security(("session" = [], "csrf" = [])),
    responses((status = 200, body = ChangeDone), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn mqtt_user_add(State(app): State<Shared>, Json(input): Json<MqttUserInput>) -> Response {
    let r = ops::add_mqtt_user(&app.controller, &input).await;
    changed(&app, r)
}

/// Removes an MQTT user.
#[utoipa::path(delete, path = "/api/mqtt/users/{name}", security(("session" = [], "csrf" = [])),
    params(("name" = String, Path, description = "the user's name")),
    responses((status = 200, body = ChangeDone), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn mqtt_user_delete(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let r = ops::delete_mqtt_user(&app.controller, &name).await;
    changed(&app, r)
}

/// The update agent's state: generations, progress, history.
#[utoipa::path(get, path = "/api/updates", responses((status = 200, body = Object), (status = 502, body = ApiError)))]
async fn updates(State(app): State<Shared>) -> Response {
    match ops::peer_state(&app.controller, Service::Update).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Asks the update agent to check, apply, roll back or unpin.
#[utoipa::path(post, path = "/api/updates/{action}", security(("session" = [], "csrf" = [])),
    params(("action" = UpdateAction, Path, description = "check, apply, rollback or unpin")),
    responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 502, body = ApiError)))]
async fn update_action(State(app): State<Shared>, Path(action): Path<String>) -> Response {
    let Ok(action) =
        serde_json::from_value::<UpdateAction>(serde_json::Value::String(action.clone()))
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            format!("`{action}` is not check, apply, rollback or unpin"),
        );
    };
    match ops::update_action(&app.controller, action).await {
        Ok(text) => Json(serde_json::json!({ "message": text })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Pins a generation: the agent switches to it and stays there.
#[utoipa::path(post, path = "/api/updates/pin/{n}", security(("session" = [], "csrf" = [])),
    params(("n" = u64, Path, description = "the generation")),
    responses((status = 200, body = Object), (status = 502, body = ApiError)))]
async fn update_pin(State(app): State<Shared>, Path(n): Path<u64>) -> Response {
    match ops::pin_generation(&app.controller, n).await {
        Ok(text) => Json(serde_json::json!({ "message": text })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The Wi-Fi access point: its radio, and per network its stations and WPS button.
#[utoipa::path(get, path = "/api/wifi", responses((status = 200, body = Object), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn wifi(State(app): State<Shared>) -> Response {
    match ops::wifi_state(&app.controller).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Presses the WPS push button: for two minutes a device pressing its own joins the network
/// with `wps = true`.
#[utoipa::path(post, path = "/api/wifi/wps", security(("session" = [], "csrf" = [])),
    responses((status = 200, body = Object), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn wifi_wps(State(app): State<Shared>) -> Response {
    match ops::wifi_wps(&app.controller).await {
        Ok(text) => Json(serde_json::json!({ "message": text })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The VoIP registrar's phones: each one's extension and whether (and from where) it is
/// registered.
#[utoipa::path(get, path = "/api/voip", responses((status = 200, body = Object), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn voip(State(app): State<Shared>) -> Response {
    match ops::voip_state(&app.controller).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The whole settings as `roost.toml` (a backup).
#[utoipa::path(get, path = "/api/settings", responses((status = 200, content_type = "application/toml", body = String)))]
async fn settings_get(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        app.controller.current().to_toml(),
    )
        .into_response()
}

/// Restores a backup: the whole `roost.toml`, validated before anything changes.
#[utoipa::path(put, path = "/api/settings", security(("session" = [], "csrf" = [])),
    request_body(content = String, content_type = "application/toml"),
    responses((status = 200, body = ChangeDone), (status = 422, body = ApiError), (status = 502, body = ApiError)))]
async fn settings_put(State(app): State<Shared>, body: String) -> Response {
    let r = ops::restore_backup(&app.controller, &body).await;
    changed(&app, r)
}

/// Every settings version, oldest first.
#[utoipa::path(get, path = "/api/settings/versions", responses((status = 200, body = Vec<VersionInfo>)))]
async fn versions(State(app): State<Shared>) -> Json<Vec<VersionInfo>> {
    Json(app.controller.versions().await)
}

/// Makes an old version current again (saved as a new version).
#[utoipa::path(post, path = "/api/settings/versions/{n}/restore", security(("session" = [], "csrf" = [])),
    params(("n" = u32, Path, description = "the version")),
    responses((status = 200, body = ChangeDone), (status = 404, body = ApiError), (status = 502, body = ApiError)))]
async fn version_restore(State(app): State<Shared>, Path(n): Path<u32>) -> Response {
    let r = ops::restore_version(&app.controller, n).await;
    changed(&app, r)
}
