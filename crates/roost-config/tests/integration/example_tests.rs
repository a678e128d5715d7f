//! The shipped example is valid and is what the lab runs.

use roost_config::Settings;

const EXAMPLE: &str = include_str!("../../../../examples/roost.toml");

#[test]
fn example_settings_are_valid() {
    let s = Settings::from_toml("examples/roost.toml", EXAMPLE).unwrap();
    assert_eq!(s.router.hostname, "roost");
    assert_eq!(
        s.zones.keys().map(String::as_str).collect::<Vec<_>>(),
        ["guest", "iot", "lan"]
    );
    // No default password anywhere: the web UI starts in first-run mode.
    assert!(s.web.admin.password_hash.is_none());
    assert!(s.mqtt.users.is_empty());
}

#[test]
fn example_renders_every_service_view() {
    let s = Settings::from_toml("examples/roost.toml", EXAMPLE).unwrap();
    for service in s.services() {
        let text = s.render_view(service);
        assert!(text.starts_with("# Roost settings view"), "{service}");
    }
}

#[test]
fn settings_survive_a_round_trip_through_toml() {
    let s = Settings::from_toml("examples/roost.toml", EXAMPLE).unwrap();
    let again = Settings::from_toml("saved.toml", &s.to_toml()).unwrap();
    assert_eq!(s, again);
}
