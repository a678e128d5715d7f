//! roost-config integration tests: whole settings files in, diagnostics and views out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod errors_tests;
mod example_tests;
mod nix_tests;
mod views_tests;

/// A small valid settings file the tests modify.
pub(crate) const MINIMAL: &str = r#"
[router]
hostname = "roost"

[wan]
mode = "dhcp"

[dns]
upstreams = [{ address = "198.51.100.53" }]

[zones.lan]
subnet = "192.168.1.0/24"
router = "192.168.1.1"
reach = ["wan"]

[zones.lan.dhcp]
pool_start = "192.168.1.100"
pool_end = "192.168.1.200"
"#;

/// Real argon2id hashes (of random passwords nobody kept), made with `roostctl passwd`.
pub(crate) const HASH_A: &str = "$argon2id$v=19$m=19456,t=2,p=1$8htT+9lRV0DXlqnQdffbuQ$3dN+noT+0J++QG5mtcsbkkF7gkWTgf10fjLWR34vGaI";
pub(crate) const HASH_B: &str = "$argon2id$v=19$m=19456,t=2,p=1$oaD+uGLWs1iP4bmGyNtxyQ$7cdMjub1laWOpbgs+D2HtyqcYdAOUBXKqiIYDihxDYM";
