//! Users: argon2id password checks with a cache of successful verifications, and each user's
//! permissions. argon2 is slow on purpose (tens of milliseconds); a device reconnecting with the
//! same password is checked against a salted SHA-256 of the password that last verified
//! instead, so reconnect storms do not turn into CPU storms. The cache holds at most one entry
//! per configured user and is dropped with the user table on `PUT /config`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use roost_config::settings::MqttUser;
use sha2::{Digest, Sha256};

use crate::core::Perms;

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (not told apart).
    #[error("bad user name or password")]
    BadCredentials,
}

struct User {
    hash: String,
    perms: Arc<Perms>,
}

/// The accounts of the view.
pub struct Users {
    users: HashMap<String, User>,
    salt: [u8; 16],
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// The accounts of `users`.
    pub fn new(users: &[MqttUser]) -> Self {
        Self {
            users: users
                .iter()
                .map(|u| {
                    (
                        u.name.clone(),
                        User {
                            hash: u.password_hash.as_str().to_owned(),
                            perms: Arc::new(Perms {
                                publish: u.publish.clone(),
                                subscribe: u.subscribe.clone(),
                            }),
                        },
                    )
                })
                .collect(),
            salt: rand::random(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, name: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(name.as_bytes());
        h.update([0]);
        h.update(password);
        h.finalize().into()
    }

    /// Checks a password; blocking (argon2), call it off the async workers.
    pub fn check(&self, name: &str, password: &[u8]) -> Result<Arc<Perms>, AuthError> {
        let Some(user) = self.users.get(name) else {
            return Err(AuthError::BadCredentials);
        };
        let digest = self.digest(name, password);
        let cached = self
            .verified
            .lock()
            .map(|m| m.get(name) == Some(&digest))
            .unwrap_or(false);
        if cached {
            return Ok(user.perms.clone());
        }
        let hash = PasswordHash::new(&user.hash).map_err(|_| AuthError::BadCredentials)?;
        Argon2::default()
            .verify_password(password, &hash)
            .map_err(|_| AuthError::BadCredentials)?;
        if let Ok(mut m) = self.verified.lock() {
            m.insert(name.to_owned(), digest);
        }
        Ok(user.perms.clone())
    }

    /// Whether the verification of `name` is cached (for tests).
    pub fn is_cached(&self, name: &str) -> bool {
        self.verified.lock().is_ok_and(|m| m.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    fn user(name: &str, password: &str) -> MqttUser {
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string();
        MqttUser {
            name: name.to_owned(),
            password_hash: hash.parse().unwrap(),
            publish: vec!["sensors/#".to_owned()],
            subscribe: vec![],
        }
    }

    #[test]
    fn right_password_logs_in_and_is_cached() {
        let users = Users::new(&[user("plug", "pw")]);
        assert!(!users.is_cached("plug"));
        let perms = users.check("plug", b"pw").unwrap();
        assert!(perms.may_publish("sensors/plug"));
        assert!(users.is_cached("plug"));
        assert!(users.check("plug", b"pw").is_ok());
    }

    #[test]
    fn wrong_password_and_unknown_user_are_refused() {
        let users = Users::new(&[user("plug", "pw")]);
        assert_eq!(users.check("plug", b"nope"), Err(AuthError::BadCredentials));
        assert_eq!(users.check("ghost", b"pw"), Err(AuthError::BadCredentials));
        users.check("plug", b"pw").unwrap();
        // A cached success does not let another password in.
        assert_eq!(users.check("plug", b"nope"), Err(AuthError::BadCredentials));
    }
}
