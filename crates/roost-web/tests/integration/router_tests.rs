//! Every route through the whole application (`oneshot`): the gate, login, CSRF, pages, API.

use axum::http::{Method, StatusCode};
use roost_config::Service;

use crate::{GUEST_CLIENT, LAN_CLIENT, PASSWORD, World, example, form, get, json, with_password};

/// Every page a logged-in user can open.
const PAGES: [&str; 9] = [
    "/",
    "/dhcp",
    "/dns",
    "/firewall",
    "/zones",
    "/mqtt",
    "/updates",
    "/settings",
    "/settings/backup",
];

/// Every API read.
const API_READS: [&str; 11] = [
    "/api/session",
    "/api/status",
    "/api/leases",
    "/api/reservations",
    "/api/port-forwards",
    "/api/dns",
    "/api/zones",
    "/api/mqtt/users",
    "/api/updates",
    "/api/settings",
    "/api/settings/versions",
];

/// Every state change, with a body its handler would accept.
fn api_changes() -> Vec<(Method, &'static str, serde_json::Value)> {
    use serde_json::json as j;
    vec![
        (
            Method::POST,
            "/api/reservations",
            j!({"zone":"lan","mac":"02:00:00:00:00:51","ip":"192.168.1.51"}),
        ),
        (
            Method::PUT,
            "/api/reservations/192.168.1.10",
            j!({"zone":"lan","mac":"02:00:00:00:00:52","ip":"192.168.1.10"}),
        ),
        (Method::DELETE, "/api/reservations/192.168.1.10", j!({})),
        (
            Method::POST,
            "/api/port-forwards",
            j!({"name":"x","protocol":"tcp","port":2222,"to":"192.168.1.50"}),
        ),
        (Method::DELETE, "/api/port-forwards/x", j!({})),
        (
            Method::POST,
            "/api/mqtt/users",
            j!({"name":"u","password":"long enough pw"}),
        ),
        (Method::DELETE, "/api/mqtt/users/u", j!({})),
        (
            Method::PUT,
            "/api/password",
            j!({"current":"x","password":"y"}),
        ),
        (Method::POST, "/api/updates/check", j!({})),
        (Method::POST, "/api/wifi/wps", j!({})),
        (Method::POST, "/api/settings/versions/1/restore", j!({})),
        (Method::POST, "/api/logout", j!({})),
    ]
}

#[tokio::test]
async fn first_run_shows_only_the_setup_page_and_only_to_the_lan() {
    let w = World::new(example()).await;
    for path in PAGES.iter().chain(["/login"].iter()) {
        let a = w.send(LAN_CLIENT, get(path, None)).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.location(), Some("/setup"), "{path}");
    }
    let a = w.send(LAN_CLIENT, get("/api/status", None)).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.json()["error"].as_str().unwrap().contains("/api/setup"));
    let a = w.send(LAN_CLIENT, get("/setup", None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Set the administrator password"));
    // The IoT zone may not even see it (not a UI zone), nor may the guest zone.
    for client in ["192.168.20.5:4000", GUEST_CLIENT] {
        let a = w.send(client, get("/setup", None)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{client}");
    }
}

#[tokio::test]
async fn first_run_setup_from_a_ui_zone_other_than_the_lan_is_refused() {
    let mut s = example();
    s.web.zones.push("iot".to_owned());
    let w = World::new(s).await;
    let a = w
        .send(
            "192.168.20.5:4000",
            json(
                Method::POST,
                "/api/setup",
                None,
                serde_json::json!({"password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(w.app.controller.current().web.admin.password_hash.is_none());
}

#[tokio::test]
async fn setup_stores_an_argon2id_hash_logs_in_and_cannot_run_twice() {
    let w = World::new(example()).await;
    let a = w
        .send(
            LAN_CLIENT,
            form("/setup", None, &[("password", "short"), ("again", "short")]),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("8 to 1024"), "{}", a.body);
    let a = w
        .send(
            LAN_CLIENT,
            form(
                "/setup",
                None,
                &[("password", PASSWORD), ("again", "different pw")],
            ),
        )
        .await;
    assert!(a.body.contains("differ"));
    let a = w
        .send(
            LAN_CLIENT,
            form(
                "/setup",
                None,
                &[("password", PASSWORD), ("again", PASSWORD)],
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), Some("/"));
    let cookie = a
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let hash = w
        .app
        .controller
        .current()
        .web
        .admin
        .password_hash
        .clone()
        .unwrap();
    assert!(hash.as_str().starts_with("$argon2id$"));
    assert!(hash.verify(PASSWORD));
    // Saved as a settings version, so it survives a restart.
    let versions = w.app.controller.versions().await;
    assert_eq!(
        versions.last().unwrap().summary,
        "set the administrator password"
    );
    // The session works at once.
    let session = crate::Session {
        cookie: a.set_cookie().unwrap(),
        csrf: String::new(),
    };
    assert_eq!(
        w.send(LAN_CLIENT, get("/", Some(&session))).await.status,
        StatusCode::OK
    );
    // A second set-up is refused: the page is gone and the API says why.
    let a = w.send(LAN_CLIENT, get("/setup", None)).await;
    assert_eq!(a.location(), Some("/login"));
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/setup",
                None,
                serde_json::json!({"password": "another password"}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(
        w.app
            .controller
            .current()
            .web
            .admin
            .password_hash
            .as_ref()
            .unwrap()
            .verify(PASSWORD)
    );
}

#[tokio::test]
async fn every_page_and_api_route_needs_a_session() {
    let w = World::new(with_password(example())).await;
    for path in PAGES {
        let a = w.send(LAN_CLIENT, get(path, None)).await;
        assert_eq!(
            (a.status, a.location()),
            (StatusCode::SEE_OTHER, Some("/login")),
            "{path}"
        );
    }
    for path in API_READS {
        let a = w.send(LAN_CLIENT, get(path, None)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for (method, path, body) in api_changes() {
        let a = w
            .send(LAN_CLIENT, json(method.clone(), path, None, body))
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let bogus = crate::Session {
        cookie: "roost_session=00ff".to_owned(),
        csrf: "x".to_owned(),
    };
    let a = w.send(LAN_CLIENT, get("/api/status", Some(&bogus))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Nothing was changed by any of it.
    assert_eq!(w.app.controller.versions().await.len(), 1);
    // Only the login page, the assets and the API description are open.
    assert_eq!(
        w.send(LAN_CLIENT, get("/login", None)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.send(LAN_CLIENT, get("/assets/app.css", None))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/openapi.json", None))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_page_and_read_answers_once_logged_in() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    for path in PAGES {
        let a = w.send(LAN_CLIENT, get(path, Some(&s))).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    for path in API_READS {
        let a = w.send(LAN_CLIENT, get(path, Some(&s))).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let a = w.send(LAN_CLIENT, get("/dhcp", Some(&s))).await;
    // The lease from dhcp's /state and the example's reservation are both on the page.
    assert!(
        a.body.contains("192.168.1.100") && a.body.contains("laptop"),
        "{}",
        a.body
    );
    let a = w.send(LAN_CLIENT, get("/", Some(&s))).await;
    assert!(
        a.body.contains("203.0.113.10/24"),
        "the WAN address from the firewall's state"
    );
    assert!(
        a.body.contains("2001:db8:3400::/56") && a.body.contains("2001:db8:1200::/56"),
        "the delegated prefix and the one being left, from the firewall's state"
    );
    let a = w.send(LAN_CLIENT, get("/dns", Some(&s))).await;
    assert!(
        a.body.contains("example.test"),
        "the top names from the resolver's state"
    );
}

#[tokio::test]
async fn the_wifi_page_is_there_only_on_a_router_with_wifi() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let a = w.send(LAN_CLIENT, get("/", Some(&s))).await;
    assert!(!a.body.contains(r#"href="/wifi""#), "no Wi-Fi, no link");
    let a = w.send(LAN_CLIENT, get("/api/wifi", Some(&s))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.body.contains("no Wi-Fi"), "{}", a.body);
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/wifi/wps",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.body.contains("no Wi-Fi"), "{}", a.body);

    let text = format!(
        "{}\n[wifi]\nusb_radio = \"0bda:8812\"\ncountry = \"DE\"\n[wifi.networks.home]\n\
         ssid = \"Roost Home\"\nzone = \"lan\"\npassphrase_file = \"/var/lib/roost/wifi/home\"\n",
        include_str!("../../../../examples/roost.toml")
    );
    let settings = roost_config::Settings::from_toml("wifi", &text).unwrap();
    let w = World::new(with_password(settings)).await;
    let s = w.login().await;
    let a = w.send(LAN_CLIENT, get("/", Some(&s))).await;
    assert!(a.body.contains(r#"href="/wifi""#), "{}", a.body);
    let a = w.send(LAN_CLIENT, get("/wifi", Some(&s))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn the_phones_page_is_there_only_on_a_router_with_voip() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let a = w.send(LAN_CLIENT, get("/", Some(&s))).await;
    assert!(!a.body.contains(r#"href="/phones""#), "no VoIP, no link");
    let a = w.send(LAN_CLIENT, get("/api/voip", Some(&s))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.body.contains("no VoIP"), "{}", a.body);

    let text = format!(
        "{}\n[voip.phones.kitchen]\nextension = \"101\"\n\
         password_file = \"/var/lib/roost/voip/kitchen\"\n",
        include_str!("../../../../examples/roost.toml")
    );
    let settings = roost_config::Settings::from_toml("voip", &text).unwrap();
    let w = World::new(with_password(settings)).await;
    let s = w.login().await;
    let a = w.send(LAN_CLIENT, get("/", Some(&s))).await;
    assert!(a.body.contains(r#"href="/phones""#), "{}", a.body);
    // The phones from roost-voip's state, what a phone calls itself escaped.
    let a = w.send(LAN_CLIENT, get("/phones", Some(&s))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for text in [
        "kitchen",
        "<code>192.168.1.1:5060</code>",
        "sip:192.168.1.50:5060",
        "&lt;b&gt;Desk phone&lt;/b&gt;",
    ] {
        assert!(a.body.contains(text), "no {text} in {}", a.body);
    }
    let a = w.send(LAN_CLIENT, get("/api/voip", Some(&s))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(r#""extension":"101""#), "{}", a.body);
}

#[tokio::test]
async fn pages_escape_what_they_show() {
    let mut settings = with_password(example());
    settings.firewall.port_forwards[0].name = "<script>alert(1)</script>".to_owned();
    let w = World::new(settings).await;
    let s = w.login().await;
    let a = w.send(LAN_CLIENT, get("/firewall", Some(&s))).await;
    assert!(!a.body.contains("<script>alert(1)"));
    assert!(a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test]
async fn wrong_passwords_lock_the_client_out_after_five() {
    let w = World::new(with_password(example())).await;
    let wrong = || {
        json(
            Method::POST,
            "/api/login",
            None,
            serde_json::json!({"user":"admin","password":"wrong password"}),
        )
    };
    for _ in 0..4 {
        assert_eq!(
            w.send(LAN_CLIENT, wrong()).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // A wrong user name counts the same, and says nothing more.
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/login",
                None,
                serde_json::json!({"user":"root","password":PASSWORD}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"], "Wrong user name or password.");
    // Locked out now: even the right password is not checked.
    let right = json(
        Method::POST,
        "/api/login",
        None,
        serde_json::json!({"user":"admin","password":PASSWORD}),
    );
    let a = w.send(LAN_CLIENT, right).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("Try again in 5 minutes")
    );
    // The page says so too.
    let a = w
        .send(
            LAN_CLIENT,
            form("/login", None, &[("user", "admin"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("Too many wrong passwords"));
    // Another device is not locked out.
    let right = json(
        Method::POST,
        "/api/login",
        None,
        serde_json::json!({"user":"admin","password":PASSWORD}),
    );
    assert_eq!(
        w.send("192.168.1.21:1234", right).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn state_changes_without_the_right_csrf_token_are_refused() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let no_csrf = crate::Session {
        cookie: s.cookie.clone(),
        csrf: String::new(),
    };
    let wrong_csrf = crate::Session {
        cookie: s.cookie.clone(),
        csrf: "0".repeat(64),
    };
    for (method, path, body) in api_changes() {
        for bad in [&no_csrf, &wrong_csrf] {
            let a = w
                .send(
                    LAN_CLIENT,
                    json(method.clone(), path, Some(bad), body.clone()),
                )
                .await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                a.body
            );
        }
    }
    // Forms: without the field, and with another session's token.
    let other = w.login().await;
    let fields = [
        ("zone", "lan"),
        ("mac", "02:00:00:00:00:51"),
        ("ip", "192.168.1.51"),
    ];
    let a = w
        .send(LAN_CLIENT, form("/dhcp/reservations", Some(&s), &fields))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("CSRF"));
    let mut with_other = fields.to_vec();
    with_other.push(("csrf", &other.csrf));
    let a = w
        .send(
            LAN_CLIENT,
            form("/dhcp/reservations", Some(&s), &with_other),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.app.controller.versions().await.len(),
        1,
        "nothing changed"
    );
    // With its own token the same form goes through.
    let mut good = fields.to_vec();
    good.push(("csrf", &s.csrf));
    let a = w
        .send(LAN_CLIENT, form("/dhcp/reservations", Some(&s), &good))
        .await;
    assert_eq!(
        (a.status, a.location()),
        (axum::http::StatusCode::SEE_OTHER, Some("/dhcp"))
    );
    assert_eq!(w.app.controller.versions().await.len(), 2);
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_a_token() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let mut r = json(
        Method::POST,
        "/api/reservations",
        Some(&s),
        serde_json::json!({"zone":"lan","mac":"02:00:00:00:00:51","ip":"192.168.1.51"}),
    );
    r.headers_mut()
        .insert("origin", "https://evil.test".parse().unwrap());
    assert_eq!(w.send(LAN_CLIENT, r).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn guest_and_unknown_clients_are_refused_everywhere() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    for client in [
        GUEST_CLIENT,
        "203.0.113.99:4000",
        "10.254.0.5:4000",
        "127.0.0.1:4000",
    ] {
        for path in PAGES
            .iter()
            .chain(API_READS.iter())
            .chain(["/login", "/setup"].iter())
        {
            let a = w.send(client, get(path, Some(&s))).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{client} {path}");
        }
        let login = json(
            Method::POST,
            "/api/login",
            None,
            serde_json::json!({"user":"admin","password":PASSWORD}),
        );
        assert_eq!(
            w.send(client, login).await.status,
            StatusCode::FORBIDDEN,
            "{client}"
        );
    }
}

#[tokio::test]
async fn answers_carry_the_security_headers() {
    let w = World::new(with_password(example())).await;
    for path in ["/login", "/api/status", "/assets/app.js", "/nowhere"] {
        let a = w.send(LAN_CLIENT, get(path, None)).await;
        let h = |n: &str| {
            a.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            h("content-security-policy").contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert!(
            h("strict-transport-security").starts_with("max-age="),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_session_ends_after_its_idle_time() {
    let mut settings = with_password(example());
    settings.web.session_idle = "1s".parse().unwrap();
    let w = World::new(settings).await;
    let s = w.login().await;
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&s)))
            .await
            .status,
        StatusCode::OK
    );
    // Idle means no request at all, so this waits without polling: it is the behaviour.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&s)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Pages send the user back to the login.
    assert_eq!(
        w.send(LAN_CLIENT, get("/", Some(&s))).await.location(),
        Some("/login")
    );
}

#[tokio::test]
async fn logout_and_password_change_end_sessions() {
    let w = World::new(with_password(example())).await;
    let a = w.login().await;
    let b = w.login().await;
    let r = w
        .send(
            LAN_CLIENT,
            json(Method::POST, "/api/logout", Some(&a), serde_json::json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&a)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&b)))
            .await
            .status,
        StatusCode::OK
    );
    // A change needs the current password...
    let r = w
        .send(
            LAN_CLIENT,
            json(
                Method::PUT,
                "/api/password",
                Some(&b),
                serde_json::json!({"current":"nope nope","password":"a new password"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .send(
            LAN_CLIENT,
            json(
                Method::PUT,
                "/api/password",
                Some(&b),
                serde_json::json!({"current":PASSWORD,"password":"a new password"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // ...and ends every session.
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&b)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let login = json(
        Method::POST,
        "/api/login",
        None,
        serde_json::json!({"user":"admin","password":"a new password"}),
    );
    assert_eq!(w.send(LAN_CLIENT, login).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_reservation_added_in_the_api_is_pushed_to_dhcp_only() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let a = w
        .send(LAN_CLIENT, json(Method::POST, "/api/reservations", Some(&s), serde_json::json!({"zone":"lan","mac":"02:00:00:00:00:50","ip":"192.168.1.50","hostname":"printer2"})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = a.json();
    assert_eq!(done["version"], 2);
    let pushed: Vec<&str> = done["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(pushed.contains(&"dhcp"), "{pushed:?}");
    assert!(
        !pushed.contains(&"mqtt") && !pushed.contains(&"firewall"),
        "{pushed:?}"
    );
    let view = w.daemon(Service::Dhcp).last().unwrap();
    assert!(
        view.contains("192.168.1.50") && view.contains("02:00:00:00:00:50"),
        "{view}"
    );
    assert!(w.daemon(Service::Mqtt).last().is_none());
    let list = w
        .send(LAN_CLIENT, get("/api/reservations", Some(&s)))
        .await
        .json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["ip"] == "192.168.1.50")
    );
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_key_and_nothing_is_saved() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    // Outside the zone: roost-config's validation names the key.
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/reservations",
                Some(&s),
                serde_json::json!({"zone":"lan","mac":"02:00:00:00:00:50","ip":"10.9.9.9"}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("dhcp.reservations"),
        "{}",
        a.body
    );
    // Bad shape: the field is named.
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/port-forwards",
                Some(&s),
                serde_json::json!({"name":"x","protocol":"icmp","port":1,"to":"192.168.1.5"}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.json()["error"].as_str().unwrap().starts_with("protocol:"));
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::DELETE,
                "/api/reservations/192.168.1.77",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::DELETE,
                "/api/reservations/not-an-ip",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(w.app.controller.versions().await.len(), 1);
    assert!(w.daemon(Service::Dhcp).last().is_none(), "nothing pushed");
}

#[tokio::test]
async fn restoring_an_invalid_backup_is_refused_with_the_error_shown() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let broken = "[router]\nhostname = \"ok\"\n[zones.lan]\nsubnet = \"192.168.1.0/33\"\n";
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"backup\"; filename=\"roost.toml\"\r\ncontent-type: text/plain\r\n\r\n{broken}\r\n--{boundary}--\r\n"
    );
    let r = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("/settings/restore?csrf={}", s.csrf))
        .header("host", "192.168.1.1")
        .header("cookie", &s.cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(axum::body::Body::from(body))
        .unwrap();
    let a = w.send(LAN_CLIENT, r).await;
    assert_eq!(a.location(), Some("/settings"));
    // The settings page shows the error with its line, once.
    let page = w.send(LAN_CLIENT, get("/settings", Some(&s))).await;
    assert!(
        page.body
            .contains("the backup is not valid, nothing was changed"),
        "{}",
        page.body
    );
    assert!(page.body.contains("zones.lan.subnet"), "{}", page.body);
    let again = w.send(LAN_CLIENT, get("/settings", Some(&s))).await;
    assert!(!again.body.contains("the backup is not valid"));
    // Through the API too, and nothing changed.
    let mut r = json(
        Method::PUT,
        "/api/settings",
        Some(&s),
        serde_json::json!(null),
    );
    *r.body_mut() = axum::body::Body::from(broken);
    let a = w.send(LAN_CLIENT, r).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.json()["error"].as_str().unwrap().contains("4:"),
        "with its line: {}",
        a.body
    );
    assert_eq!(w.app.controller.versions().await.len(), 1);
}

#[tokio::test]
async fn a_backup_downloads_and_restores_and_old_versions_come_back() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let backup = w.send(LAN_CLIENT, get("/settings/backup", Some(&s))).await;
    assert!(
        backup
            .headers
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("roost.toml")
    );
    let r = w
        .send(
            LAN_CLIENT,
            json(
                Method::DELETE,
                "/api/port-forwards/nas-https",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(w.app.controller.current().firewall.port_forwards.is_empty());
    let mut r = json(
        Method::PUT,
        "/api/settings",
        Some(&s),
        serde_json::json!(null),
    );
    *r.body_mut() = axum::body::Body::from(backup.body.clone());
    let a = w.send(LAN_CLIENT, r).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(w.app.controller.current().firewall.port_forwards.len(), 1);
    // Version 2 (no forward) restored as version 4.
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/settings/versions/2/restore",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["version"], 4);
    assert!(w.app.controller.current().firewall.port_forwards.is_empty());
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/settings/versions/99/restore",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_description_lists_every_api_route() {
    let w = World::new(with_password(example())).await;
    let doc = w
        .send(LAN_CLIENT, get("/api/openapi.json", None))
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let templated = [
        "/api/setup",
        "/api/login",
        "/api/logout",
        "/api/password",
        "/api/reservations/{ip}",
        "/api/port-forwards/{name}",
        "/api/dns/blocklists/{name}",
        "/api/mqtt/users/{name}",
        "/api/updates/{action}",
        "/api/updates/pin/{n}",
        "/api/settings/versions/{n}/restore",
    ];
    for path in API_READS.iter().chain(templated.iter()) {
        assert!(
            paths.contains_key(*path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_http_port_only_redirects_to_https_on_a_sane_host() {
    use tower::ServiceExt as _;
    let app = roost_web::app::redirect_app(443);
    let r = axum::http::Request::get("/dhcp?x=1")
        .header("host", "192.168.1.1")
        .body(axum::body::Body::empty())
        .unwrap();
    let a = app.clone().oneshot(r).await.unwrap();
    assert_eq!(a.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(a.headers()["location"], "https://192.168.1.1/dhcp?x=1");
    let r = axum::http::Request::get("/")
        .header("host", "evil.test/@x")
        .body(axum::body::Body::empty())
        .unwrap();
    let a = app.oneshot(r).await.unwrap();
    assert_eq!(a.headers()["location"], "https://router/");
}

#[tokio::test]
async fn restoring_a_version_from_before_the_password_keeps_the_password() {
    // Version 1 has no password (first run); the password was set after.
    let w = World::new(example()).await;
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/setup",
                None,
                serde_json::json!({"password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let s = w.login().await;
    let a = w
        .send(
            LAN_CLIENT,
            json(
                Method::POST,
                "/api/settings/versions/1/restore",
                Some(&s),
                serde_json::json!({}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Still logged in, still no set-up page for anyone.
    assert_eq!(
        w.send(LAN_CLIENT, get("/api/session", Some(&s)))
            .await
            .status,
        StatusCode::OK
    );
    let grab = json(
        Method::POST,
        "/api/setup",
        None,
        serde_json::json!({"password": "someone else 1"}),
    );
    assert_eq!(
        w.send("192.168.1.77:1000", grab).await.status,
        StatusCode::CONFLICT
    );
    // The same for an uploaded backup without a password.
    let mut r = json(
        Method::PUT,
        "/api/settings",
        Some(&s),
        serde_json::json!(null),
    );
    *r.body_mut() = axum::body::Body::from(example().to_toml());
    assert_eq!(w.send(LAN_CLIENT, r).await.status, StatusCode::OK);
    assert!(
        w.app
            .controller
            .current()
            .web
            .admin
            .password_hash
            .as_ref()
            .unwrap()
            .verify(PASSWORD)
    );
}

#[tokio::test]
async fn a_change_that_changes_nothing_saves_no_version() {
    let w = World::new(with_password(example())).await;
    let s = w.login().await;
    let body = serde_json::json!({"name":"nas-https","protocol":"tcp","port":8443,"to":"192.168.1.10","to_port":443,"ipv6_host":"::10"});
    let a = w
        .send(
            LAN_CLIENT,
            json(Method::PUT, "/api/port-forwards/nas-https", Some(&s), body),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["pushed"], serde_json::json!([]));
    assert_eq!(w.app.controller.versions().await.len(), 1);
}

#[tokio::test]
async fn a_browsers_own_form_post_with_an_opaque_origin_goes_through() {
    // Under Referrer-Policy: no-referrer, Chromium sends Origin: null on same-origin posts.
    let w = World::new(example()).await;
    let mut r = form(
        "/setup",
        None,
        &[("password", PASSWORD), ("again", PASSWORD)],
    );
    r.headers_mut().insert("origin", "null".parse().unwrap());
    r.headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(w.send(LAN_CLIENT, r).await.status, StatusCode::SEE_OTHER);
    // The same opaque origin from another site is refused.
    let w = World::new(example()).await;
    let mut r = form(
        "/setup",
        None,
        &[("password", PASSWORD), ("again", PASSWORD)],
    );
    r.headers_mut().insert("origin", "null".parse().unwrap());
    r.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(w.send(LAN_CLIENT, r).await.status, StatusCode::FORBIDDEN);
}
