use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use roost_config::PhcHash;

use crate::roostctl;

#[test]
fn passwd_prints_an_argon2id_hash_that_verifies() {
    let out = roostctl(&["passwd"], "correct horse battery staple\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let phc = line.trim_end();
    // The settings model accepts it where a hash is required ...
    phc.parse::<PhcHash>().unwrap();
    // ... and it verifies the password it was made from, and no other.
    let hash = PasswordHash::new(phc).unwrap();
    let argon2 = argon2::Argon2::default();
    assert!(
        argon2
            .verify_password(b"correct horse battery staple", &hash)
            .is_ok()
    );
    assert!(
        argon2
            .verify_password(b"correct horse battery stapler", &hash)
            .is_err()
    );
}

#[test]
fn passwd_salts_every_hash() {
    let a = roostctl(&["passwd"], "same password here\n");
    let b = roostctl(&["passwd"], "same password here\n");
    assert_ne!(a.stdout, b.stdout);
}

#[test]
fn passwd_refuses_a_short_password() {
    let out = roostctl(&["passwd"], "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}
