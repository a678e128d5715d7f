//! Recursion from the root servers (`dns.recursion = true`) with hickory's `Recursor`, behind
//! the same question-in, raw-answer-out edge as the forwarders, so the cache, coalescing,
//! prefetch and our own DNSSEC validation treat a recursed answer like a forwarded one. The
//! recursor asks for DNSSEC records without validating (`ValidationDisabled`); `dnssec`
//! validates them as for forwarders.
//!
//! hickory's recursor refuses to ask servers in private and documentation ranges (its
//! `deny_server` default); the configured root hints are allowed anyway, so a lab's own root
//! (198.51.100.53) works while other such addresses stay refused.

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::recursor::{DnssecPolicy, Recursor, RecursorError, RecursorOptions};

use crate::upstream::Question;
use crate::wire;

/// The IANA root servers' IPv4 addresses (a to m), the default hints.
pub const IANA_ROOTS: [[u8; 4]; 13] = [
    [198, 41, 0, 4],
    [170, 247, 170, 2],
    [192, 33, 4, 12],
    [199, 7, 91, 13],
    [192, 203, 230, 10],
    [192, 5, 5, 241],
    [192, 112, 36, 4],
    [198, 97, 190, 53],
    [192, 36, 148, 17],
    [192, 58, 128, 30],
    [193, 0, 14, 129],
    [199, 7, 83, 42],
    [202, 12, 27, 33],
];

/// A recursive resolver.
pub struct Recursive {
    recursor: Recursor<TokioRuntimeProvider>,
}

impl std::fmt::Debug for Recursive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recursive")
    }
}

impl Recursive {
    /// Starts from `roots` (the IANA root servers when empty).
    pub fn new(roots: &[IpAddr]) -> Result<Self, String> {
        let roots: Vec<IpAddr> = if roots.is_empty() {
            IANA_ROOTS.iter().map(|a| IpAddr::from(*a)).collect()
        } else {
            roots.to_vec()
        };
        let options = RecursorOptions {
            allow_server: roots.iter().map(|r| ipnet::IpNet::from(*r)).collect(),
            case_randomization: true,
            ..RecursorOptions::default()
        };
        let recursor = Recursor::new(
            &roots,
            DnssecPolicy::ValidationDisabled,
            None,
            options,
            TokioRuntimeProvider::default(),
        )
        .map_err(|e| format!("cannot start recursion: {e}"))?;
        Ok(Self { recursor })
    }

    /// Resolves `q` from the roots; the answer as a DNS message, negative answers (NXDOMAIN,
    /// NODATA) included with their SOA and proofs so they are cached as RFC 2308 says.
    pub async fn resolve(&self, q: &Question) -> Result<Vec<u8>, String> {
        let text = wire::name_to_string(&q.name);
        let name = Name::from_ascii(format!("{}.", text.trim_end_matches('.')))
            .map_err(|e| format!("{text}: {e}"))?;
        let mut query = Query::query(name, RecordType::from(q.qtype));
        query.set_query_class(DNSClass::from(q.qclass));
        let message = match self
            .recursor
            .resolve(query.clone(), Instant::now(), q.dnssec_ok)
            .await
        {
            Ok(m) => m,
            Err(e) => negative(query, e)?,
        };
        let mut message = message;
        message.metadata.recursion_available = true;
        message
            .to_vec()
            .map_err(|e| format!("cannot encode the answer: {e}"))
    }
}

/// A negative answer as a message; other errors stay errors (SERVFAIL to the client).
fn negative(query: Query, e: RecursorError) -> Result<Message, String> {
    if !(e.is_nx_domain() || e.is_no_records_found()) {
        return Err(e.to_string());
    }
    let nx = e.is_nx_domain();
    let authorities = match &e {
        RecursorError::Negative(a) => a.authorities.as_deref().map(<[_]>::to_vec),
        _ => None,
    };
    let mut m = Message::response(0, OpCode::Query);
    m.metadata.response_code = if nx {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    m.add_query(query);
    match authorities {
        Some(records) if !records.is_empty() => {
            m.add_authorities(records);
        }
        _ => {
            if let Some(soa) = e.into_soa() {
                m.add_authority((*soa).into_record_of_rdata());
            }
        }
    }
    Ok(m)
}
