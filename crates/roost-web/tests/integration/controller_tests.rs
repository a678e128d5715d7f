//! The controller against real control-API servers: push, refusal, unhealthy daemons,
//! rollback, reconcile after a daemon restart or a power cut mid-push.

use std::sync::atomic::Ordering;

use axum::http::Method;
use roost_config::Service;
use roost_web::controller::ChangeError;
use roost_web::store::Status;

use crate::{LAN_CLIENT, World, example, get, json, with_password};

fn add_reservation_and_raise_mqtt_limit(s: &mut roost_config::Settings) -> Result<(), String> {
    s.dhcp
        .reservations
        .push(roost_config::settings::Reservation {
            zone: "lan".to_owned(),
            mac: Some("02:00:00:00:00:60".parse().unwrap()),
            client_id: None,
            ip: "192.168.1.60".parse().unwrap(),
            hostname: Some("tv".to_owned()),
        });
    s.mqtt.limits.max_message_bytes = 4096;
    Ok(())
}

#[tokio::test]
async fn a_refused_change_puts_every_pushed_daemon_back_and_is_marked_failed() {
    let w = World::new(example()).await;
    let before = w.app.controller.current();
    *w.daemon(Service::Mqtt).refuse_containing.lock().unwrap() = Some("4096".to_owned());
    let e = w
        .app
        .controller
        .change(
            "tv and bigger messages",
            add_reservation_and_raise_mqtt_limit,
        )
        .await
        .unwrap_err();
    let ChangeError::RolledBack {
        version,
        failure,
        rollback_errors,
    } = &e
    else {
        panic!("{e}")
    };
    assert!(
        failure.contains("mqtt refused the change") && failure.contains("Could not process rule"),
        "{failure}"
    );
    assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
    assert!(
        e.to_string()
            .contains("every daemon is back on the previous settings")
    );
    // dhcp took the new view first, then got the old one back.
    let dhcp = w.daemon(Service::Dhcp).pushed.lock().unwrap().clone();
    assert_eq!(dhcp.len(), 2, "pushed, then put back");
    assert!(dhcp[0].contains("192.168.1.60"));
    assert_eq!(dhcp[1], before.render_view(Service::Dhcp));
    // The current settings did not move; the try is in the history, failed, with the reason.
    assert_eq!(*w.app.controller.current(), *before);
    let versions = w.app.controller.versions().await;
    let tried = versions.iter().find(|v| v.number == *version).unwrap();
    assert!(matches!(&tried.status, Status::Failed(why) if why.contains("mqtt")));
    assert_eq!(
        w.app
            .controller
            .versions()
            .await
            .iter()
            .rev()
            .find(|v| !matches!(v.status, Status::Failed(_)))
            .unwrap()
            .number,
        1
    );
}

#[tokio::test]
async fn a_daemon_unhealthy_after_the_change_rolls_everything_back() {
    let w = World::new(example()).await;
    let before = w.app.controller.current();
    w.daemon(Service::Mqtt)
        .sicken_on_push
        .store(true, Ordering::SeqCst);
    let e = w
        .app
        .controller
        .change(
            "tv and bigger messages",
            add_reservation_and_raise_mqtt_limit,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("mqtt unhealthy: lost its interface"),
        "{e}"
    );
    for service in [Service::Dhcp, Service::Mqtt] {
        let last = w.daemon(service).last().unwrap();
        assert_eq!(
            last,
            before.render_view(service),
            "{service:?} is back on the old view"
        );
    }
}

#[tokio::test]
async fn a_failed_change_in_the_ui_says_what_failed() {
    let w = World::new(with_password(example())).await;
    *w.daemon(Service::Firewall)
        .refuse_containing
        .lock()
        .unwrap() = Some("2222".to_owned());
    let s = w.login().await;
    let a = w
        .send(LAN_CLIENT, json(Method::POST, "/api/port-forwards", Some(&s), serde_json::json!({"name":"ssh","protocol":"tcp","port":2222,"to":"192.168.1.50","to_port":22})))
        .await;
    assert_eq!(a.status, axum::http::StatusCode::BAD_GATEWAY);
    let error = a.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("firewall refused the change")
            && error.contains("back on the previous settings"),
        "{error}"
    );
    // The form path shows the same on the page.
    let fields = [
        ("csrf", s.csrf.as_str()),
        ("name", "ssh"),
        ("protocol", "tcp"),
        ("port", "2222"),
        ("to", "192.168.1.50"),
        ("enabled", "true"),
    ];
    w.send(
        LAN_CLIENT,
        crate::form("/firewall/port-forwards", Some(&s), &fields),
    )
    .await;
    let page = w.send(LAN_CLIENT, get("/firewall", Some(&s))).await;
    assert!(
        page.body.contains("firewall refused the change"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(">ssh<"), "the forward is not listed");
}

#[tokio::test]
async fn reconcile_pushes_the_current_settings_to_a_daemon_that_restarted() {
    let w = World::new(example()).await;
    w.app
        .controller
        .change(
            "tv and bigger messages",
            add_reservation_and_raise_mqtt_limit,
        )
        .await
        .unwrap();
    let current = w.app.controller.current();
    // The change was pushed to dhcp and mqtt; now they all restart from their built files and
    // report no digest. The pass pushes to those whose built view is not the current one.
    for (_, daemon) in &w.daemons {
        daemon.pushed.lock().unwrap().clear();
    }
    w.restart_daemons();
    let statuses = w.app.controller.reconcile().await;
    assert!(statuses.iter().all(|s| s.healthy), "{statuses:?}");
    for (service, daemon) in &w.daemons {
        let pushed = daemon.pushed.lock().unwrap().clone();
        if matches!(service, Service::Dhcp | Service::Mqtt) {
            assert_eq!(pushed, vec![current.render_view(*service)], "{service:?}");
        } else {
            assert!(pushed.is_empty(), "{service:?} runs its built view already");
        }
    }
    // Now they all report the current digest: the next pass pushes nothing.
    let counts: Vec<usize> = w
        .daemons
        .iter()
        .map(|(_, d)| d.pushed.lock().unwrap().len())
        .collect();
    w.app.controller.reconcile().await;
    let again: Vec<usize> = w
        .daemons
        .iter()
        .map(|(_, d)| d.pushed.lock().unwrap().len())
        .collect();
    assert_eq!(counts, again);
}

#[tokio::test]
async fn a_version_left_pending_by_a_power_cut_is_finished_or_failed_on_reconcile() {
    use roost_web::store::Store;
    let w = World::new(example()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &example()).unwrap();
    let mut next = example();
    add_reservation_and_raise_mqtt_limit(&mut next).unwrap();
    store.save(&next, "mid-push when the power went").unwrap();
    // A controller started over that store, with the daemons of the world.
    let peers = Service::ALL
        .into_iter()
        .filter_map(|s| w.app.controller.peer(s).cloned())
        .collect();
    let c = roost_web::controller::Controller::new(
        store,
        example(),
        peers,
        roost_web::peers::Peers::new().unwrap(),
        std::time::Duration::from_millis(500),
    )
    .unwrap();
    assert_eq!(*c.current(), next, "the pending version is current");
    c.reconcile().await;
    assert_eq!(c.versions().await[1].status, Status::Applied);
    assert!(
        w.daemon(Service::Dhcp)
            .last()
            .unwrap()
            .contains("192.168.1.60")
    );

    // The same, but a daemon refuses it: marked failed, and the previous version is current.
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &example()).unwrap();
    let mut refused = example();
    refused.mqtt.limits.max_message_bytes = 8192;
    store.save(&refused, "mid-push").unwrap();
    *w.daemon(Service::Mqtt).refuse_containing.lock().unwrap() = Some("8192".to_owned());
    let peers = Service::ALL
        .into_iter()
        .filter_map(|s| w.app.controller.peer(s).cloned())
        .collect();
    let c = roost_web::controller::Controller::new(
        store,
        example(),
        peers,
        roost_web::peers::Peers::new().unwrap(),
        std::time::Duration::from_millis(500),
    )
    .unwrap();
    c.reconcile().await;
    assert!(matches!(&c.versions().await[1].status, Status::Failed(why) if why.contains("mqtt")));
    assert_eq!(*c.current(), example());
}

#[tokio::test]
async fn an_unreachable_daemon_is_reported_not_hidden() {
    let mut peers = vec![];
    let w = World::new(example()).await;
    let mut dead = w.app.controller.peer(Service::Dns).unwrap().clone();
    dead.url = "http://127.0.0.1:9".to_owned();
    peers.push(dead);
    let store = roost_web::store::Store::open(&w._dir.path().join("other"), &example()).unwrap();
    let c = roost_web::controller::Controller::new(
        store,
        example(),
        peers,
        roost_web::peers::Peers::new().unwrap(),
        std::time::Duration::from_millis(300),
    )
    .unwrap();
    let statuses = c.reconcile().await;
    assert!(!statuses[0].healthy);
    assert!(
        statuses[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("dns unreachable"),
        "{statuses:?}"
    );
    let e = c
        .change("a dns host", |s| {
            s.dns.hosts.push(roost_config::settings::HostRecord {
                name: "tv".to_owned(),
                address: "192.168.1.61".parse().unwrap(),
            });
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("dns unreachable"), "{e}");
}

#[tokio::test]
async fn a_daemon_without_a_link_token_is_not_deployed_so_neither_pushed_nor_reported() {
    let w = World::new(example()).await;
    let mut peers: Vec<_> = Service::ALL
        .into_iter()
        .filter_map(|s| w.app.controller.peer(s).cloned())
        .collect();
    for p in peers.iter_mut().filter(|p| p.service == Service::Mqtt) {
        p.token_file = w._dir.path().join("no-such-token");
    }
    let store = roost_web::store::Store::open(&w._dir.path().join("other"), &example()).unwrap();
    let c = roost_web::controller::Controller::new(
        store,
        example(),
        peers,
        roost_web::peers::Peers::new().unwrap(),
        std::time::Duration::from_millis(300),
    )
    .unwrap();
    let statuses = c.reconcile().await;
    assert!(
        statuses.iter().all(|s| s.service != Service::Mqtt),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|s| s.service == Service::Dhcp && s.healthy)
    );
    let applied = c
        .change(
            "tv and bigger messages",
            add_reservation_and_raise_mqtt_limit,
        )
        .await
        .unwrap();
    assert_eq!(applied.pushed, vec![Service::Dhcp]);
    assert!(w.daemon(Service::Mqtt).last().is_none());
}

#[tokio::test]
async fn peers_health_answers_for_every_daemon_but_the_one_asking() {
    let w = World::new(example()).await;
    assert_eq!(
        w.app.controller.peers_health(&[Service::Update]).await,
        Ok(())
    );
    w.daemon(Service::Dhcp).sick.store(true, Ordering::SeqCst);
    let why = w
        .app
        .controller
        .peers_health(&[Service::Update])
        .await
        .unwrap_err();
    assert!(why.contains("dhcp unhealthy: lost its interface"), "{why}");
    // The asker's own health is not part of it.
    w.daemon(Service::Dhcp).sick.store(false, Ordering::SeqCst);
    w.daemon(Service::Update).sick.store(true, Ordering::SeqCst);
    assert_eq!(
        w.app.controller.peers_health(&[Service::Update]).await,
        Ok(())
    );
    assert!(w.app.controller.peers_health(&[]).await.is_err());
}
