//! The VoIP registrar in the lab (ADR 0014): Kamailio in the VoIP namespace, with the
//! configuration `roostctl voip kamailio` renders, and roost-voip beside it. The phones are
//! baresip, a real SIP user agent, in the lan client's namespace: they register at their
//! router address (the firewall forwards SIP to the VoIP VM), one calls the other by its
//! extension, and the audio flows between the two phones directly. The web UI's phones page
//! shows which are registered, through roost-voip's control API.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roost_config::Service;

use crate::web_tests::Admin;
use crate::{ALLOWED, DENIED, TestLab, sock};

const KITCHEN_PASSWORD: &str = "kitchen phone 2026";
const OFFICE_PASSWORD: &str = "office-phone-2026";

/// The example settings with three phones in lan, their passwords in `dir`.
fn settings(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut phones = String::new();
    for (name, extension, password) in [
        ("kitchen", "101", KITCHEN_PASSWORD),
        ("office", "102", OFFICE_PASSWORD),
        ("hall", "103", "the hall phone's own"),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, format!("{password}\n")).unwrap();
        phones.push_str(&format!(
            "\n[voip.phones.{name}]\nextension = \"{extension}\"\npassword_file = \"{}\"\n",
            file.display()
        ));
    }
    let example = std::fs::read_to_string(crate::repo().join("examples/roost.toml")).unwrap();
    let path = dir.join("roost.toml");
    std::fs::write(
        &path,
        format!("{example}\n[voip]\nzone = \"lan\"\n{phones}"),
    )
    .unwrap();
    path
}

/// A baresip phone's configuration directory: it listens on `listen` and the next port (SIP
/// over TLS; IPv4 only: the lab client's IPv6 address may still be tentative), registers
/// `extension` with `password` at `registrar`, answers calls by itself, and sends a tone
/// (Opus) in calls.
fn phone(
    dir: &Path,
    name: &str,
    listen: SocketAddrV4,
    extension: &str,
    password: &str,
    registrar: &str,
) -> PathBuf {
    let conf = dir.join(format!("phone-{name}"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "module_path /usr/lib/baresip/modules\n\
             sip_listen {listen}\n\
             net_af ipv4\n\
             module opus.so\n\
             module ausine.so\n\
             module aufile.so\n\
             audio_source ausine,440\n\
             audio_player aufile,/dev/null\n\
             module_app account.so\n\
             module_app menu.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!(
            "<sip:{extension}@{registrar}>;auth_pass=\"{password}\";regint=120;answermode=auto;audio_codecs=opus\n"
        ),
    )
    .unwrap();
    conf
}

/// Waits until `phone`'s log has a line containing `text`; the log, or a panic naming it.
fn wait_log(t: &TestLab, label: &str, text: &str, within: Duration) -> String {
    let path = t.lab.log_path(label);
    let deadline = Instant::now() + within;
    loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if log.contains(text) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no `{text}` in {label}'s log within {within:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// roost-voip's `/state`, once `registered` says so of every phone in `names`.
fn wait_registered(t: &TestLab, names: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = t.lab.control_get(Service::Voip, "/state").unwrap();
        assert_eq!(code, 200, "{body}");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        let registered = |name: &str| {
            state["phones"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["registered"] == true)
        };
        if names.iter().all(|n| registered(n)) {
            return state;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = names
                .iter()
                .map(|n| {
                    let log = std::fs::read_to_string(t.lab.log_path(&format!("phone-{n}")));
                    format!("phone-{n}:\n{}", log.unwrap_or_default())
                })
                .collect();
            panic!("{names:?} not registered: {state}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn lab_voip_phones_register_and_call_each_other_by_extension() {
    let dir = std::env::temp_dir().join(format!("roost-voip-test-{}", std::process::id()));
    let mut t = TestLab::up_with("voip", &settings(&dir));
    let lan = t.lab.settings().zones["lan"].router;
    let registrar = lan.to_string();
    let client = t
        .lab
        .plan()
        .clients
        .iter()
        .find(|c| c.zone == "lan")
        .unwrap()
        .clone();
    let baresip = Path::new("baresip");
    let start = |t: &mut TestLab, label: &str, conf: &Path, extra: &[&str]| {
        let mut args = vec!["-f".to_owned(), conf.display().to_string()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let pid = t
            .lab
            .spawn_in(&client.netns, label, baresip, &args)
            .unwrap();
        t.helpers.push(pid);
    };

    // SIP is on the lan router address, for lan only: not from the guest zone or the WAN.
    let sip = sock(lan, roost_config::voip::SIP_PORT);
    assert!(t.connects(&client.netns, sip, ALLOWED), "lan -> SIP");
    assert!(
        !t.connects(
            "client-guest",
            sock(t.lab.settings().zones["guest"].router, 5060),
            DENIED
        ),
        "guest -> SIP"
    );
    let wan = t.wan_address();
    assert!(!t.connects("isp", sock(wan, 5060), DENIED), "WAN -> SIP");
    // Only the web VM may call the VoIP VM's control API.
    let control = t.lab.settings().control_addr(Service::Voip);
    assert!(t.connects("web", control, ALLOWED), "web -> voip control");
    assert!(!t.connects("dns", control, DENIED), "dns -> voip control");

    // A phone with a wrong password is refused; the two with theirs register.
    let hall = phone(
        &dir,
        "hall",
        sock(client.address, 5360),
        "103",
        "not the hall password",
        &registrar,
    );
    start(&mut t, "phone-hall", &hall, &[]);
    let office = phone(
        &dir,
        "office",
        sock(client.address, 5260),
        "102",
        OFFICE_PASSWORD,
        &registrar,
    );
    start(&mut t, "phone-office", &office, &[]);
    let state = wait_registered(&t, &["office"]);
    wait_log(
        &t,
        "phone-hall",
        "401 Unauthorized",
        Duration::from_secs(30),
    );
    let hall_state = state["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hall")
        .unwrap()
        .clone();
    assert_eq!(hall_state["registered"], false, "{state}");

    // Junk on the SIP port is dropped and the registrar keeps serving.
    t.lab
        .run_in(
            &client.netns,
            "bash",
            &[
                "-c",
                &format!("printf 'INVITE \\0\\377 junk' > /dev/udp/{registrar}/5060"),
            ],
        )
        .unwrap();

    // The kitchen dials the office's extension: the office answers by itself, and each
    // receives the other's audio straight from the other phone.
    let kitchen = phone(
        &dir,
        "kitchen",
        sock(client.address, 5160),
        "101",
        KITCHEN_PASSWORD,
        &registrar,
    );
    start(&mut t, "phone-kitchen", &kitchen, &["-e", "/dial 102"]);
    let log = wait_log(
        &t,
        "phone-kitchen",
        "Call established",
        Duration::from_secs(30),
    );
    assert!(log.contains("sip:102@"), "{log}");
    wait_log(
        &t,
        "phone-office",
        "Call established: sip:101@",
        Duration::from_secs(10),
    );
    let from_office = format!("receiving from {}:", client.address);
    wait_log(&t, "phone-kitchen", &from_office, Duration::from_secs(10));
    wait_log(&t, "phone-office", &from_office, Duration::from_secs(10));

    // roost-voip shows both registered, at the phones' own addresses.
    let state = wait_registered(&t, &["office", "kitchen"]);
    let kitchen_state = state["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "kitchen")
        .unwrap()
        .clone();
    assert_eq!(kitchen_state["extension"], "101", "{state}");
    let address = kitchen_state["registrations"][0]["address"]
        .as_str()
        .unwrap();
    assert!(
        address.contains(&format!("{}:5160", client.address)),
        "{state}"
    );
    let (code, metrics) = t.lab.control_get(Service::Voip, "/metrics").unwrap();
    assert_eq!(code, 200);
    for line in [
        "roost_voip_up 1",
        "roost_voip_registered{phone=\"kitchen\"} 1",
        "roost_voip_registered{phone=\"hall\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    let (code, body) = t.lab.control_get(Service::Voip, "/health").unwrap();
    assert_eq!(code, 200, "{body}");

    // The web UI shows them, through roost-voip.
    let admin = Admin::first_run(&t);
    let (code, body) = admin.get("/api/voip");
    assert_eq!(code, 200, "{body}");
    let phones: serde_json::Value = serde_json::from_str(&body).unwrap();
    let registered: Vec<&str> = phones["phones"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["registered"] == true)
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(registered, ["kitchen", "office"], "{phones}");
    let (code, page) = admin.get("/phones");
    assert_eq!(code, 200, "{page}");
    for text in ["kitchen", "baresip", r#"href="/phones""#] {
        assert!(page.contains(text), "{text}: {page}");
    }

    let _ = std::fs::remove_dir_all(&dir);
}
