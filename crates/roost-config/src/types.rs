//! Small value types of the settings, each parsed from and written as the text a user types.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff` (`-` separators accepted on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a MAC address like aa:bb:cc:dd:ee:ff");
        let mut bytes = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A duration written the human way: `90s`, `30m`, `12h`, `1d 6h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(Self)
            .map_err(|e| format!("`{s}` is not a duration like 30m or 12h: {e}"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

/// A generation number of the system (the N of `system-N-link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Generation(pub u64);

impl<'de> Deserialize<'de> for Generation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Other(toml::Value),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) if n > 0 => Ok(Self(n.unsigned_abs())),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "generation numbers start at 1, not {n}"
            ))),
            Raw::Other(v) => Err(serde::de::Error::custom(format!(
                "a pinned generation is a whole number such as 42, not {v}"
            ))),
        }
    }
}

/// A password hash in PHC string format, which must be argon2id (`$argon2id$v=19$m=...`).
///
/// Checked when read, so a plaintext password or a weaker scheme never reaches a daemon.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcHash(String);

/// Shortest password accepted (NIST SP 800-63B's minimum).
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted, in bytes: a bound on the work one hash costs.
pub const PASSWORD_MAX_BYTES: usize = 1024;

impl PhcHash {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An argon2id hash of `password` with a fresh random salt, or why the password is refused
    /// (shorter than [`PASSWORD_MIN_CHARS`] or longer than [`PASSWORD_MAX_BYTES`]).
    pub fn from_password(password: &str) -> Result<Self, String> {
        if password.chars().count() < PASSWORD_MIN_CHARS || password.len() > PASSWORD_MAX_BYTES {
            return Err(format!(
                "a password needs {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_BYTES} characters"
            ));
        }
        let hash = argon2::password_hash::PasswordHasher::hash_password(
            &argon2::Argon2::default(),
            password.as_bytes(),
        )
        .map_err(|e| format!("hashing failed: {e}"))?;
        Ok(Self(hash.to_string()))
    }

    /// Whether `password` is the one this hashes (argon2id, constant time in the output).
    /// Input beyond [`PASSWORD_MAX_BYTES`] is refused without hashing.
    pub fn verify(&self, password: &str) -> bool {
        if password.len() > PASSWORD_MAX_BYTES {
            return false;
        }
        let Ok(hash) = PasswordHash::new(&self.0) else {
            return false;
        };
        argon2::password_hash::PasswordVerifier::verify_password(
            &argon2::Argon2::default(),
            password.as_bytes(),
            &hash,
        )
        .is_ok()
    }
}

// Hashes are not secrets, but they are offline-attackable: keep them out of logs.
impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhcHash(..)")
    }
}

impl FromStr for PhcHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let plaintext = || {
            "this is not a password hash: store an argon2id hash from `roostctl passwd` \
             (plaintext passwords are not accepted)"
                .to_owned()
        };
        if !s.starts_with('$') {
            return Err(plaintext());
        }
        let hash = PasswordHash::new(s).map_err(|_| plaintext())?;
        if hash.algorithm.as_str() != "argon2id" {
            return Err(format!(
                "password hashes must be argon2id, not {} (make one with `roostctl passwd`)",
                hash.algorithm
            ));
        }
        argon2::Params::try_from(&hash)
            .map_err(|e| format!("argon2id hash with unusable parameters: {e}"))?;
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err("argon2id hash without salt or output".to_owned());
        }
        Ok(Self(s.to_owned()))
    }
}

/// Implements serde for a type through its `FromStr` and `Display`, so errors read like the text.
macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

impl fmt::Display for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(MacAddr, HumanDuration, PhcHash);

/// Whether `name` is one DNS label usable as a host name (RFC 1123: letters, digits, inner
/// hyphens, at most 63 characters).
pub fn is_host_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether `name` is a domain name of host labels (at most 253 characters, no trailing dot).
pub fn is_domain_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_host_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_mac_addresses() {
        let mac: MacAddr = "AA-bb-cc-00-11-ff".parse().unwrap();
        assert_eq!(mac.to_string(), "aa:bb:cc:00:11:ff");
        for bad in [
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aabb:cc:dd:ee:ff",
            "zz:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_human_durations() {
        assert_eq!(
            "12h".parse::<HumanDuration>().unwrap(),
            HumanDuration::secs(43_200)
        );
        assert_eq!(HumanDuration::secs(5400).to_string(), "1h 30m");
        assert!("soon".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn accepts_argon2id_and_rejects_plaintext_or_other_schemes() {
        let ok = "$argon2id$v=19$m=19456,t=2,p=1$8htT+9lRV0DXlqnQdffbuQ$\
                  3dN+noT+0J++QG5mtcsbkkF7gkWTgf10fjLWR34vGaI";
        assert!(ok.parse::<PhcHash>().is_ok());
        let plain = "hunter2".parse::<PhcHash>().unwrap_err();
        assert!(plain.contains("plaintext"), "{plain}");
        let argon2i = ok.replace("argon2id", "argon2i");
        assert!(
            argon2i
                .parse::<PhcHash>()
                .unwrap_err()
                .contains("must be argon2id")
        );
        assert!("$argon2id$v=19$garbage".parse::<PhcHash>().is_err());
    }

    #[test]
    fn checks_host_and_domain_names() {
        assert!(is_host_label("nas-2"));
        for bad in ["", "-nas", "nas-", "nas_2", "n.a", &"a".repeat(64)] {
            assert!(!is_host_label(bad), "{bad}");
        }
        assert!(is_domain_name("home.arpa"));
        assert!(!is_domain_name("home..arpa"));
        assert!(!is_domain_name("home.arpa."));
    }
}
