//! DNSSEC validation for a forwarder, sans-IO: [`validate`] is a pure function of the answer,
//! the chain records fetched so far, the trust anchors and `now`. It returns either a verdict
//! or the next record set it needs ([`Step::Need`]: a DS or DNSKEY set, which the caller
//! fetches with DO set and hands back); so the IO loop lives in [`crate::resolver`] and tests
//! drive this with captured messages.
//!
//! The chain is walked top-down (RFC 4035 §5): from the closest trust anchor (its DNSKEY set
//! must contain an anchor key and be signed by it), every name below it down to the zone that
//! signed the answer gets a DS query. A signed DS set names the child's keys (its DNSKEY set must
//! be signed by a key a DS matches); a signed denial whose NSEC/NSEC3 shows a delegation (NS)
//! without DS makes everything below insecure; a signed denial without NS is not a zone cut.
//! Then every answer RRset, and the SOA/NSEC/NSEC3 of a negative answer, must carry a valid
//! signature of its zone; a negative answer from a secure zone needs its denial proof (NSEC:
//! a record matching the name without the type, or covering the name; NSEC3: a matching hash
//! for NODATA, the closest-encloser proof of RFC 5155 §8.4 for NXDOMAIN).
//!
//! Signatures are hickory-proto's (`dnssec-aws-lc-rs`): `Verifier::verify_rrsig` builds the
//! canonical form (RFC 4034 §6) and checks it; this module only decides which key, which
//! records and which time window.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, NSEC, NSEC3, RRSIG};
use hickory_proto::dnssec::{PublicKey as _, TrustAnchors, Verifier as _};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// The verdict on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Not validated (validation off, or the client set CD).
    Unchecked,
    /// Chained to a trust anchor: the AD bit may be set.
    Secure,
    /// Provably unsigned (below an unsigned delegation, or outside every anchor).
    Insecure,
    /// Should be signed but is not, or its signatures fail: SERVFAIL.
    Bogus,
}

/// The outcome of one [`validate`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The verdict, with a reason for a bogus one.
    Done(Security, String),
    /// Fetch this record set (DO set) and call again.
    Need(Name, RecordType),
}

/// The trust anchors: DNSKEYs by zone.
#[derive(Debug, Clone)]
pub struct Anchors {
    keys: Vec<(Name, DNSKEY)>,
}

/// A trust anchor file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Reading or parsing failed.
    #[error("trust anchor {path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

impl Anchors {
    /// The root zone's KSKs that hickory-proto carries (2017 and 2024 keys).
    pub fn root() -> Self {
        let built_in = TrustAnchors::default();
        let keys = (0..built_in.len())
            .filter_map(|i| built_in.get(i))
            .map(|k| (Name::root(), DNSKEY::with_flags(257, k.clone())))
            .collect();
        Self { keys }
    }

    /// DNSKEY records in zone-file form (`name [ttl] [IN] DNSKEY flags 3 alg base64`).
    pub fn from_text(text: &str) -> Result<Self, String> {
        // hickory's parser wants TTL and class: supply them where the line leaves them out
        // (`keymgr ... dnskey` prints `name DNSKEY ...`).
        let mut full = String::with_capacity(text.len() + 64);
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [name, "DNSKEY", rest @ ..] => {
                    full.push_str(&format!("{name} 3600 IN DNSKEY {}\n", rest.join(" ")));
                }
                [name, "IN", "DNSKEY", rest @ ..] => {
                    full.push_str(&format!("{name} 3600 IN DNSKEY {}\n", rest.join(" ")));
                }
                [name, ttl, "DNSKEY", rest @ ..] => {
                    full.push_str(&format!("{name} {ttl} IN DNSKEY {}\n", rest.join(" ")));
                }
                _ => {
                    full.push_str(line);
                    full.push('\n');
                }
            }
        }
        let entries = hickory_proto::serialize::txt::trust_anchor::Parser::new(&full)
            .parse()
            .map_err(|e| e.to_string())?;
        let keys: Vec<(Name, DNSKEY)> = entries
            .into_iter()
            .filter_map(|entry| match entry {
                hickory_proto::serialize::txt::trust_anchor::Entry::DNSKEY(r) => {
                    Some((r.name().clone(), r.data().clone()))
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return Err("no DNSKEY record".into());
        }
        Ok(Self { keys })
    }

    /// Reads [`Anchors::from_text`] from a file.
    pub fn from_file(path: &Path) -> Result<Self, AnchorError> {
        let err = |reason: String| AnchorError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_text(&text).map_err(err)
    }

    /// The deepest anchored zone at or above `name`.
    fn closest(&self, name: &Name) -> Option<&Name> {
        self.keys
            .iter()
            .map(|(z, _)| z)
            .filter(|z| z.zone_of(name))
            .max_by_key(|z| z.num_labels())
    }

    fn is_anchor(&self, zone: &Name, key: &DNSKEY) -> bool {
        self.keys.iter().any(|(z, k)| {
            z == zone
                && k.public_key().algorithm() == key.public_key().algorithm()
                && k.public_key().public_bytes() == key.public_key().public_bytes()
        })
    }
}

/// Where fetched chain records come from: (name, type) → the message that answered it.
pub trait Fetched {
    /// The answer to `name`/`rtype`, if fetched.
    fn get(&self, name: &Name, rtype: RecordType) -> Option<&Message>;
}

impl Fetched for HashMap<(Name, RecordType), Message> {
    fn get(&self, name: &Name, rtype: RecordType) -> Option<&Message> {
        HashMap::get(self, &(name.to_lowercase(), rtype))
    }
}

fn rrsigs(records: &[Record]) -> impl Iterator<Item = (&Name, &RRSIG)> {
    records.iter().filter_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some((&r.name, s)),
        _ => None,
    })
}

/// Checks that the `rtype` set at `owner` in `records` has a valid signature by one of `keys`
/// of `zone`, at unix time `now`.
fn verify_set(
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    zone: &Name,
    keys: &[DNSKEY],
    now: u32,
) -> Result<(), String> {
    let mut last = format!("no signature over {owner} {rtype} by {zone}");
    for (sig_owner, sig) in rrsigs(records) {
        let input = sig.input();
        if sig_owner != owner || input.type_covered != rtype || &input.signer_name != zone {
            continue;
        }
        // RFC 4034 §3.1.5, serial number arithmetic (RFC 1982).
        let (inception, expiration) = (input.sig_inception.get(), input.sig_expiration.get());
        if (now.wrapping_sub(inception) as i32) < 0 || (expiration.wrapping_sub(now) as i32) < 0 {
            last = format!("signature over {owner} {rtype} outside its validity period");
            continue;
        }
        for key in keys {
            if !key.zone_key() || key.revoke() || key.algorithm() != input.algorithm {
                continue;
            }
            if key.calculate_key_tag().ok() != Some(input.key_tag) {
                continue;
            }
            match key.verify_rrsig(owner, DNSClass::IN, sig, records.iter()) {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("signature over {owner} {rtype} does not verify: {e}"),
            }
        }
    }
    Err(last)
}

fn set_of<'a>(records: &'a [Record], owner: &Name, rtype: RecordType) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| &r.name == owner && r.record_type() == rtype)
        .collect()
}

/// A zone's validated keys, or proof that it is unsigned.
enum Trust {
    Secure(Name, Vec<DNSKEY>),
    Insecure,
}

fn need(name: &Name, rtype: RecordType) -> Step {
    Step::Need(name.clone(), rtype)
}

fn bogus(reason: String) -> Step {
    Step::Done(Security::Bogus, reason)
}

/// The zone keys of `zone` from its DNSKEY answer, given a test for which keys may sign it
/// (anchor keys, or keys a DS matches).
fn zone_keys(
    zone: &Name,
    msg: &Message,
    trusted: impl Fn(&DNSKEY) -> bool,
    now: u32,
) -> Result<Vec<DNSKEY>, String> {
    let keys: Vec<DNSKEY> = set_of(&msg.answers, zone, RecordType::DNSKEY)
        .into_iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let entry: Vec<DNSKEY> = keys.iter().filter(|k| trusted(k)).cloned().collect();
    if entry.is_empty() {
        return Err(format!("no trusted key in the DNSKEY set of {zone}"));
    }
    verify_set(zone, RecordType::DNSKEY, &msg.answers, zone, &entry, now)?;
    Ok(keys.into_iter().filter(|k| k.zone_key()).collect())
}

/// Labels from below `top` down to `bottom` (inclusive), top first.
fn names_between(top: &Name, bottom: &Name) -> Vec<Name> {
    let mut out = Vec::new();
    let mut n = bottom.clone();
    while n.num_labels() > top.num_labels() {
        out.push(n.clone());
        n = n.base_name();
    }
    out.reverse();
    out
}

/// Walks the chain from the closest anchor to `target`: its zone's keys, or insecure.
fn trust_for(
    target: &Name,
    anchors: &Anchors,
    fetched: &dyn Fetched,
    now: u32,
) -> Result<Trust, Step> {
    let Some(anchor) = anchors.closest(target) else {
        return Ok(Trust::Insecure);
    };
    let Some(msg) = fetched.get(anchor, RecordType::DNSKEY) else {
        return Err(need(anchor, RecordType::DNSKEY));
    };
    let keys = zone_keys(anchor, msg, |k| anchors.is_anchor(anchor, k), now).map_err(bogus)?;
    let mut zone = anchor.clone();
    let mut keys = keys;
    for name in names_between(anchor, target) {
        let Some(ds_msg) = fetched.get(&name, RecordType::DS) else {
            return Err(need(&name, RecordType::DS));
        };
        let ds: Vec<DS> = set_of(&ds_msg.answers, &name, RecordType::DS)
            .into_iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                _ => None,
            })
            .collect();
        if !ds.is_empty() {
            verify_set(&name, RecordType::DS, &ds_msg.answers, &zone, &keys, now).map_err(bogus)?;
            let Some(key_msg) = fetched.get(&name, RecordType::DNSKEY) else {
                return Err(need(&name, RecordType::DNSKEY));
            };
            let matches = |k: &DNSKEY| ds.iter().any(|d| d.covers(&name, k).unwrap_or(false));
            let supported = ds.iter().any(|d| d.algorithm().is_supported());
            if !supported {
                // RFC 4035 §5.2: only unsupported algorithms: treat as unsigned.
                return Ok(Trust::Insecure);
            }
            keys = zone_keys(&name, key_msg, matches, now).map_err(bogus)?;
            zone = name;
            continue;
        }
        // No DS: a signed denial from the current zone, telling whether `name` is a cut.
        if !matches!(
            ds_msg.metadata.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            return Err(bogus(format!(
                "DS query for {name} answered {}",
                ds_msg.metadata.response_code
            )));
        }
        verify_denial_signatures(&ds_msg.authorities, &zone, &keys, now).map_err(bogus)?;
        match delegation_without_ds(&name, &ds_msg.authorities) {
            Some(true) => return Ok(Trust::Insecure),
            Some(false) => {}
            None => {
                return Err(bogus(format!(
                    "no NSEC/NSEC3 proof for the missing DS of {name}"
                )));
            }
        }
        if ds_msg.metadata.response_code == ResponseCode::NXDomain {
            break; // nothing exists below: the answer is judged in this zone
        }
    }
    Ok(Trust::Secure(zone, keys))
}

/// Every SOA, NSEC and NSEC3 set in a denial must be signed by `zone`.
fn verify_denial_signatures(
    authority: &[Record],
    zone: &Name,
    keys: &[DNSKEY],
    now: u32,
) -> Result<(), String> {
    let mut seen = Vec::new();
    for r in authority {
        let t = r.record_type();
        if matches!(t, RecordType::SOA | RecordType::NSEC | RecordType::NSEC3)
            && !seen.contains(&(r.name.clone(), t))
        {
            verify_set(&r.name, t, authority, zone, keys, now)?;
            seen.push((r.name.clone(), t));
        }
    }
    Ok(())
}

fn nsecs(records: &[Record]) -> impl Iterator<Item = (&Name, &NSEC)> {
    records.iter().filter_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((&r.name, n)),
        _ => None,
    })
}

fn nsec3s(records: &[Record]) -> impl Iterator<Item = (&Name, &NSEC3)> {
    records.iter().filter_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some((&r.name, n)),
        _ => None,
    })
}

/// RFC 4648 base32 with the extended hex alphabet, lowercase, no padding (NSEC3 owners).
fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The NSEC3 of `name`'s hash in `records`: `Some((nsec3, matches))` where `matches` says
/// whether the hash is the owner's (else the record covers it).
fn nsec3_for<'a>(name: &Name, records: &'a [Record]) -> Option<(&'a NSEC3, bool)> {
    nsec3s(records).find_map(|(owner, n)| nsec3_relation(owner, n, name).map(|m| (n, m)))
}

/// How one NSEC3 stands to `name`: `Some(true)` when its owner is `name`'s hash, `Some(false)`
/// when it covers that hash, `None` otherwise (or when the hash cannot be computed).
fn nsec3_relation(owner: &Name, n: &NSEC3, name: &Name) -> Option<bool> {
    let digest = n
        .hash_algorithm()
        .hash(n.salt(), name, n.iterations())
        .ok()?;
    let hash = base32hex(digest.as_ref());
    let own = owner
        .iter()
        .next()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .unwrap_or_default();
    if own == hash {
        return Some(true);
    }
    in_span(&own, &base32hex(n.next_hashed_owner_name()), &hash).then_some(false)
}

/// Whether some NSEC3 in `records` has `name`'s hash as its owner, and whether some covers it.
fn nsec3_match_cover(name: &Name, records: &[Record]) -> (bool, bool) {
    nsec3s(records).fold(
        (false, false),
        |(matched, covered), (owner, n)| match nsec3_relation(owner, n, name) {
            Some(true) => (true, covered),
            Some(false) => (matched, true),
            None => (matched, covered),
        },
    )
}

/// Whether `x` lies strictly between `owner` and `next` in a chain's order, the last record
/// wrapping to the first (NSEC names, NSEC3 hashes).
fn in_span<T: PartialOrd + ?Sized>(owner: &T, next: &T, x: &T) -> bool {
    if owner < next {
        owner < x && x < next
    } else {
        x > owner || x < next
    }
}

/// RFC 5155 §8.4, the NXDOMAIN proof with NSEC3: a closest encloser of `qname` whose hash an
/// NSEC3 matches, the next closer name (one label longer, toward `qname`) covered, and the
/// wildcard at the closest encloser covered (else the wildcard would have answered).
fn nsec3_nxdomain_proven(qname: &Name, authority: &[Record]) -> bool {
    let mut next_closer = qname.clone();
    while !next_closer.is_root() {
        let encloser = next_closer.base_name();
        if nsec3_match_cover(&encloser, authority).0 {
            let Ok(wildcard) = Name::from_ascii("*").and_then(|w| w.append_domain(&encloser))
            else {
                return false;
            };
            return nsec3_match_cover(&next_closer, authority).1
                && nsec3_match_cover(&wildcard, authority) == (false, true);
        }
        next_closer = encloser;
    }
    false
}

/// For an answer synthesized from the wildcard `*.<owner trimmed to labels>`: an NSEC covering
/// `owner`, or an NSEC3 covering the next closer name (the encloser plus one label of `owner`).
fn wildcard_expansion_proven(owner: &Name, labels: u8, authority: &[Record]) -> bool {
    if nsecs(authority).any(|(o, n)| in_span(o, n.next_domain_name(), owner)) {
        return true;
    }
    let keep = usize::from(labels) + 1;
    let skip = usize::from(owner.num_labels()).saturating_sub(keep);
    let mut next_closer = owner.clone();
    for _ in 0..skip {
        next_closer = next_closer.base_name();
    }
    nsec3_match_cover(&next_closer, authority) == (false, true)
}

/// From a signed DS denial: `Some(true)` if `name` is a delegation without DS (insecure),
/// `Some(false)` if it is not a zone cut (or does not exist), `None` without a usable proof.
fn delegation_without_ds(name: &Name, authority: &[Record]) -> Option<bool> {
    for (owner, n) in nsecs(authority) {
        if owner == name {
            let types = n.type_set();
            return Some(
                types.contains(RecordType::NS)
                    && !types.contains(RecordType::SOA)
                    && !types.contains(RecordType::DS),
            );
        }
        if in_span(owner, n.next_domain_name(), name) {
            return Some(false);
        }
    }
    match nsec3_for(name, authority) {
        Some((n, true)) => {
            let types = n.type_set();
            Some(
                types.contains(RecordType::NS)
                    && !types.contains(RecordType::SOA)
                    && !types.contains(RecordType::DS),
            )
        }
        // Opt-out (RFC 5155 §6): an unsigned delegation may hide in a covered span.
        Some((n, false)) => Some(n.opt_out()),
        None => None,
    }
}

/// Whether a signed negative answer proves that `qname`/`qtype` does not exist.
fn denial_proven(qname: &Name, qtype: RecordType, nxdomain: bool, authority: &[Record]) -> bool {
    for (owner, n) in nsecs(authority) {
        if !nxdomain && owner == qname {
            let types = n.type_set();
            return !types.contains(qtype) && !types.contains(RecordType::CNAME);
        }
        if nxdomain && in_span(owner, n.next_domain_name(), qname) {
            return true;
        }
    }
    if nxdomain {
        return nsec3_nxdomain_proven(qname, authority);
    }
    match nsec3_for(qname, authority) {
        Some((n, true)) => {
            let types = n.type_set();
            !types.contains(qtype) && !types.contains(RecordType::CNAME)
        }
        // NODATA for a name under an opt-out span, or DS at an unsigned delegation.
        _ => false,
    }
}

/// Judges `answer` (the upstream's message for `qname`/`qtype`, asked with DO) at unix time
/// `now`, with the chain records in `fetched`.
pub fn validate(
    answer: &Message,
    qname: &Name,
    qtype: RecordType,
    anchors: &Anchors,
    fetched: &dyn Fetched,
    now: u32,
) -> Step {
    let qname = qname.to_lowercase();
    let mut insecure = false;
    // Every RRset in the answer section, each judged in its signer's zone (CNAME chains may
    // cross zones); unsigned sets in the zone of their owner name.
    let mut sets: Vec<(Name, RecordType)> = Vec::new();
    for r in &answer.answers {
        let t = r.record_type();
        if t != RecordType::RRSIG && !sets.contains(&(r.name.clone(), t)) {
            sets.push((r.name.clone(), t));
        }
    }
    for (owner, rtype) in &sets {
        let signer = rrsigs(&answer.answers)
            .find(|(o, s)| *o == owner && s.input().type_covered == *rtype)
            .map(|(_, s)| s.input().signer_name.clone());
        let target = match &signer {
            Some(s) if s.zone_of(owner) => s.clone(),
            Some(s) => return bogus(format!("{owner} {rtype} signed by {s}, not an ancestor")),
            None => owner.clone(),
        };
        match trust_for(&target, anchors, fetched, now) {
            Err(step) => return step,
            Ok(Trust::Insecure) => insecure = true,
            Ok(Trust::Secure(zone, keys)) => {
                if signer.is_none() {
                    return bogus(format!("{owner} {rtype} unsigned in signed zone {zone}"));
                }
                if let Err(e) = verify_set(owner, *rtype, &answer.answers, &zone, &keys, now) {
                    return bogus(e);
                }
                // A wildcard expansion (RRSIG labels below the owner's, RFC 4035 §5.3.4): the
                // exact name must be proven absent, or a real record could be hidden by it.
                let expanded_from = rrsigs(&answer.answers)
                    .filter(|(o, sig)| *o == owner && sig.input().type_covered == *rtype)
                    .map(|(_, sig)| sig.input().num_labels)
                    .find(|labels| *labels < owner.num_labels());
                if let Some(labels) = expanded_from {
                    if let Err(e) = verify_denial_signatures(&answer.authorities, &zone, &keys, now)
                    {
                        return bogus(e);
                    }
                    if !wildcard_expansion_proven(owner, labels, &answer.authorities) {
                        return bogus(format!(
                            "{owner} {rtype} comes from a wildcard without proof that {owner} does not exist"
                        ));
                    }
                }
            }
        }
    }
    let code = answer.metadata.response_code;
    let negative = code == ResponseCode::NXDomain
        || (code == ResponseCode::NoError
            && !answer
                .answers
                .iter()
                .any(|r| r.record_type() == qtype || r.record_type() == RecordType::CNAME));
    if negative {
        // The denial is for the last name of a CNAME chain, or the question.
        let name = answer
            .answers
            .iter()
            .rev()
            .find_map(|r| match &r.data {
                RData::CNAME(c) => Some(c.0.to_lowercase()),
                _ => None,
            })
            .unwrap_or(qname);
        let soa_signer = rrsigs(&answer.authorities)
            .find(|(_, s)| s.input().type_covered == RecordType::SOA)
            .map(|(_, s)| s.input().signer_name.clone());
        let target = soa_signer.unwrap_or_else(|| name.clone());
        match trust_for(&target, anchors, fetched, now) {
            Err(step) => return step,
            Ok(Trust::Insecure) => insecure = true,
            Ok(Trust::Secure(zone, keys)) => {
                if !zone.zone_of(&name) {
                    return bogus(format!("denial for {name} signed by {zone}"));
                }
                if let Err(e) = verify_denial_signatures(&answer.authorities, &zone, &keys, now) {
                    return bogus(e);
                }
                let has_soa = answer
                    .authorities
                    .iter()
                    .any(|r| r.record_type() == RecordType::SOA);
                if !has_soa
                    || !denial_proven(
                        &name,
                        qtype,
                        code == ResponseCode::NXDomain,
                        &answer.authorities,
                    )
                {
                    return bogus(format!("no valid denial of {name} {qtype}"));
                }
            }
        }
    }
    if insecure {
        Step::Done(Security::Insecure, String::new())
    } else {
        Step::Done(Security::Secure, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NSEC3 chain (SHA-1, no salt, no extra iterations) over the hashes of `names`, each
    /// record pointing to the next hash, the last back to the first.
    fn nsec3_chain(zone: &str, names: &[&str]) -> Vec<Record> {
        use hickory_proto::dnssec::Nsec3HashAlgorithm;
        let zone = Name::from_ascii(zone).unwrap();
        let mut hashes: Vec<Vec<u8>> = names
            .iter()
            .map(|n| {
                Nsec3HashAlgorithm::SHA1
                    .hash(&[], &Name::from_ascii(n).unwrap(), 0)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            })
            .collect();
        hashes.sort();
        (0..hashes.len())
            .map(|i| {
                let next = hashes[(i + 1) % hashes.len()].clone();
                let owner = Name::from_ascii(base32hex(&hashes[i]))
                    .unwrap()
                    .append_domain(&zone)
                    .unwrap();
                let n = NSEC3::new(
                    Nsec3HashAlgorithm::SHA1,
                    false,
                    0,
                    vec![],
                    next,
                    [RecordType::A],
                );
                Record::from_rdata(owner, 300, RData::DNSSEC(DNSSECRData::NSEC3(n)))
            })
            .collect()
    }

    #[test]
    fn nsec3_nxdomain_needs_the_closest_encloser_the_next_closer_and_no_wildcard() {
        let name = |n: &str| Name::from_ascii(n).unwrap();
        let chain = nsec3_chain("example.", &["example.", "a.example.", "m.a.example."]);
        // b.c.example.: closest encloser example. (matched), c.example. and *.example. covered.
        assert!(nsec3_nxdomain_proven(&name("b.c.example."), &chain));
        // x.a.example.: closest encloser a.example., next closer x.a.example. covered.
        assert!(nsec3_nxdomain_proven(&name("x.a.example."), &chain));
        // A name that exists is not proven absent: its own hash is matched, not covered.
        assert!(!nsec3_nxdomain_proven(&name("m.a.example."), &chain));
        // Without the record matching the apex there is no closest encloser.
        let without_apex: Vec<Record> = chain
            .iter()
            .filter(|r| !nsec3_match_cover(&name("example."), std::slice::from_ref(r)).0)
            .cloned()
            .collect();
        assert!(!nsec3_nxdomain_proven(&name("b.c.example."), &without_apex));
        // With a wildcard at the closest encloser the name would have been synthesized.
        let wild = nsec3_chain("example.", &["example.", "*.example."]);
        assert!(!nsec3_nxdomain_proven(&name("b.example."), &wild));
        // Nothing at all: no proof.
        assert!(!nsec3_nxdomain_proven(&name("b.example."), &[]));
    }

    #[test]
    fn a_wildcard_expansion_needs_the_exact_name_proven_absent() {
        let name = |n: &str| Name::from_ascii(n).unwrap();
        // x.wild.example. synthesized from *.wild.example. (RRSIG labels 2).
        let chain = nsec3_chain(
            "example.",
            &["example.", "wild.example.", "*.wild.example."],
        );
        assert!(wildcard_expansion_proven(
            &name("x.wild.example."),
            2,
            &chain
        ));
        // From deeper down, the next closer is x.wild.example. still.
        assert!(wildcard_expansion_proven(
            &name("a.x.wild.example."),
            2,
            &chain
        ));
        // A name whose hash is in the chain exists: its expansion would be a forgery.
        let exists = nsec3_chain("example.", &["example.", "x.wild.example."]);
        assert!(!wildcard_expansion_proven(
            &name("x.wild.example."),
            2,
            &exists
        ));
        // No proof at all.
        assert!(!wildcard_expansion_proven(&name("x.wild.example."), 2, &[]));
    }

    #[test]
    fn base32hex_matches_rfc4648_test_vectors() {
        assert_eq!(base32hex(b"f"), "co");
        assert_eq!(base32hex(b"foobar"), "cpnmuoj1e8");
    }

    #[test]
    fn names_between_walks_down_from_below_the_anchor() {
        let names = names_between(
            &Name::from_ascii("test.").unwrap(),
            &Name::from_ascii("www.example.test.").unwrap(),
        );
        let text: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["example.test.", "www.example.test."]);
    }

    #[test]
    fn the_root_anchor_holds_the_built_in_ksks() {
        let a = Anchors::root();
        assert!(a.keys.len() >= 2);
        assert_eq!(
            a.closest(&Name::from_ascii("example.com.").unwrap()),
            Some(&Name::root())
        );
    }

    #[test]
    fn a_name_outside_every_anchor_is_insecure() {
        let a = Anchors::from_text(
            "test. DNSKEY 257 3 13 ifq8EJvCHHutN5HISY/Qnn+P6H9ym7by/469sICSWO9wMLrLwZ72OZLBYEAAmOV/8qldzRdlwKrnaIHcgMA+Lw==\n",
        )
        .unwrap();
        let fetched: HashMap<(Name, RecordType), Message> = HashMap::new();
        let msg = Message::query();
        let step = validate(
            &msg,
            &Name::from_ascii("www.example.org.").unwrap(),
            RecordType::A,
            &a,
            &fetched,
            0,
        );
        assert_eq!(step, Step::Done(Security::Insecure, String::new()));
        // Under the anchor, the anchor's keys are asked for first.
        let step = validate(
            &msg,
            &Name::from_ascii("www.test.").unwrap(),
            RecordType::A,
            &a,
            &fetched,
            0,
        );
        assert_eq!(
            step,
            Step::Need(Name::from_ascii("test.").unwrap(), RecordType::DNSKEY)
        );
    }
}
