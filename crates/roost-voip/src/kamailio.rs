//! Kamailio's JSON-RPC (its `jsonrpcs` module, over HTTP on loopback in the VoIP VM), and the
//! parsing of its replies, which does no IO and is tested on replies Kamailio 5.6 gave.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The largest reply read: `ul.dump` of 64 phones with 4 contacts each is about 300 KiB.
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// Why Kamailio could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No HTTP exchange.
    #[error("Kamailio's JSON-RPC at {url}: {source}")]
    Http {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// An answer that is not a JSON-RPC result.
    #[error("Kamailio's JSON-RPC {method}: {message}")]
    Reply {
        /// The method asked.
        method: String,
        /// What was wrong.
        message: String,
    },
}

/// A JSON-RPC client of one Kamailio.
#[derive(Debug, Clone)]
pub struct Rpc {
    http: reqwest::Client,
    url: String,
}

impl Rpc {
    /// A client of the JSON-RPC at `127.0.0.1:port`.
    pub fn new(port: u16) -> Result<Self, String> {
        // reqwest is built without a default TLS provider (this client speaks plain HTTP on
        // loopback, but the builder wants one).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            http,
            url: format!("http://127.0.0.1:{port}/RPC"),
        })
    }

    /// Calls `method` (without parameters) and returns its result.
    pub async fn call(&self, method: &str) -> Result<Value, RpcError> {
        let http = |source| RpcError::Http {
            url: self.url.clone(),
            source,
        };
        let body = serde_json::json!({ "jsonrpc": "2.0", "method": method, "id": 1 });
        let mut response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(http)?;
        let mut reply = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if reply.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(reply_error(method, "the reply is larger than 4 MiB"));
            }
            reply.extend_from_slice(&chunk);
        }
        parse_reply(method, &reply)
    }
}

fn reply_error(method: &str, message: impl Into<String>) -> RpcError {
    RpcError::Reply {
        method: method.to_owned(),
        message: message.into(),
    }
}

/// The `result` of a JSON-RPC reply, or its `error`.
pub fn parse_reply(method: &str, reply: &[u8]) -> Result<Value, RpcError> {
    let mut value: Value =
        serde_json::from_slice(reply).map_err(|e| reply_error(method, format!("not JSON: {e}")))?;
    if let Some(error) = value.get("error") {
        return Err(reply_error(method, error.to_string()));
    }
    value
        .get_mut("result")
        .map(Value::take)
        .ok_or_else(|| reply_error(method, "no result"))
}

/// One registered contact of a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The phone's extension (the address-of-record's user).
    pub extension: String,
    /// Where the phone said it is (its Contact).
    pub contact: String,
    /// Where its REGISTER came from, which is where calls go (`None` when the same).
    pub received: Option<String>,
    /// Seconds until the registration expires.
    pub expires: i64,
    /// What the phone calls itself.
    pub user_agent: String,
}

/// The contacts in a `ul.dump` result (Kamailio's usrloc: domains, address-of-records,
/// contacts). Parts that do not have that shape are skipped, not trusted.
pub fn contacts(ul_dump: &Value) -> Vec<Contact> {
    #[derive(Deserialize)]
    struct Dump {
        #[serde(rename = "Domains", default)]
        domains: Vec<DomainEntry>,
    }
    #[derive(Deserialize)]
    struct DomainEntry {
        #[serde(rename = "Domain")]
        domain: Domain,
    }
    #[derive(Deserialize)]
    struct Domain {
        #[serde(rename = "AoRs", default)]
        aors: Vec<AorEntry>,
    }
    #[derive(Deserialize)]
    struct AorEntry {
        #[serde(rename = "Info")]
        info: Aor,
    }
    #[derive(Deserialize)]
    struct Aor {
        #[serde(rename = "AoR")]
        aor: String,
        #[serde(rename = "Contacts", default)]
        contacts: Vec<ContactEntry>,
    }
    #[derive(Deserialize)]
    struct ContactEntry {
        #[serde(rename = "Contact")]
        contact: RawContact,
    }
    #[derive(Deserialize)]
    struct RawContact {
        #[serde(rename = "Address")]
        address: String,
        #[serde(rename = "Expires", default)]
        expires: Value,
        #[serde(rename = "Received", default)]
        received: Option<String>,
        #[serde(rename = "User-Agent", default)]
        user_agent: Option<String>,
    }
    let Ok(dump) = Dump::deserialize(ul_dump) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for domain in dump.domains {
        for aor in domain.domain.aors {
            // With use_domain off (ours), the address-of-record is the user alone.
            let extension = aor
                .info
                .aor
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned();
            for c in aor.info.contacts {
                let c = c.contact;
                out.push(Contact {
                    extension: extension.clone(),
                    contact: c.address,
                    // Kamailio writes "[not set]" for absent values.
                    received: c.received.filter(|r| !r.starts_with('[')),
                    // "permanent" or a number of seconds.
                    expires: c.expires.as_i64().unwrap_or(-1),
                    user_agent: c.user_agent.unwrap_or_default(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kamailio 5.6.3's `ul.dump` with two baresip phones registered (trimmed to the fields
    /// read, plus a few beside them).
    const UL_DUMP: &str = r#"{"jsonrpc":"2.0","result":{"Domains":[{"Domain":{"Domain":"location","Size":1024,"AoRs":[
      {"Info":{"AoR":"102","HashID":3612366,"Contacts":[{"Contact":{"Address":"sip:102-0x55e0031ab910@192.168.77.11:5060","Expires":49,"Q":-1,"User-Agent":"baresip v1.0.0 (x86_64/linux)","Received":"sip:192.168.77.11:5060","Path":"[not set]"}}]}},
      {"Info":{"AoR":"101","HashID":3612369,"Contacts":[{"Contact":{"Address":"sip:101@192.168.77.10:5060","Expires":54,"User-Agent":"baresip v1.0.0 (x86_64/linux)","Received":"[not set]"}}]}}
    ]}}]},"id":1}"#;

    #[test]
    fn reads_each_phones_contacts_from_ul_dump() {
        let result = parse_reply("ul.dump", UL_DUMP.as_bytes()).unwrap();
        let got = contacts(&result);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].extension, "102");
        assert_eq!(got[0].received.as_deref(), Some("sip:192.168.77.11:5060"));
        assert_eq!(got[0].expires, 49);
        assert_eq!(got[1].extension, "101");
        assert_eq!(got[1].contact, "sip:101@192.168.77.10:5060");
        assert_eq!(got[1].received, None);
        assert_eq!(got[1].user_agent, "baresip v1.0.0 (x86_64/linux)");
    }

    #[test]
    fn an_empty_location_table_or_a_foreign_shape_is_no_contacts() {
        let empty = parse_reply(
            "ul.dump",
            br#"{"jsonrpc":"2.0","result":{"Domains":[{"Domain":{"Domain":"location","Size":1024,"AoRs":[]}}]},"id":1}"#,
        )
        .unwrap();
        assert!(contacts(&empty).is_empty());
        assert!(contacts(&serde_json::json!({"Domains": "nonsense"})).is_empty());
        assert!(contacts(&serde_json::json!([1, 2, 3])).is_empty());
    }

    #[test]
    fn errors_and_garbage_are_errors_that_name_the_method() {
        let error = parse_reply(
            "ul.dump",
            br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method Not Found"},"id":1}"#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("ul.dump") && error.to_string().contains("Method Not Found")
        );
        assert!(parse_reply("core.uptime", b"<html>").is_err());
        assert!(parse_reply("core.uptime", br#"{"jsonrpc":"2.0","id":1}"#).is_err());
    }
}
