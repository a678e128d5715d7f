//! DNS wire format, only what the fast path needs: the header, the question, the client's EDNS
//! OPT record, where every TTL sits in a response, and small builders for the answers the
//! resolver makes itself. Every read is bounds-checked; nothing here allocates per label.
//!
//! Full message parsing (to check an upstream's answer before caching it) is hickory-proto's
//! job ([`crate::upstream`]); this module exists so that a cache hit is a copy and a few
//! stores, not a decode and an encode.

use std::net::{Ipv4Addr, Ipv6Addr};

pub use crate::dnssec::Security;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// RR type of the EDNS OPT pseudo-record.
pub const TYPE_OPT: u16 = 41;
/// RR type A.
pub const TYPE_A: u16 = 1;
/// RR type NS.
pub const TYPE_NS: u16 = 2;
/// RR type SOA.
pub const TYPE_SOA: u16 = 6;
/// RR type PTR.
pub const TYPE_PTR: u16 = 12;
/// RR type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// RR type RRSIG.
pub const TYPE_RRSIG: u16 = 46;
/// RR type NSEC.
pub const TYPE_NSEC: u16 = 47;
/// RR type NSEC3.
pub const TYPE_NSEC3: u16 = 50;
/// RR type ANY.
pub const TYPE_ANY: u16 = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// The UDP payload size we advertise and accept (the DNS flag day 2020 value).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// Response codes used here.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
}

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message is shorter than its header.
    #[error("message shorter than a dns header")]
    Short,
    /// A name, record or section runs past the end of the message.
    #[error("message truncated inside a record")]
    Truncated,
    /// A label length byte uses the reserved 0x40/0x80 forms, or a query name is compressed.
    #[error("bad label")]
    BadLabel,
    /// A name is longer than 255 bytes.
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// The message is a response where a query was expected.
    #[error("message is a response")]
    NotAQuery,
    /// The query does not hold exactly one question.
    #[error("query holds {0} questions")]
    QuestionCount(u16),
    /// The query holds more than one OPT record.
    #[error("more than one opt record")]
    DuplicateOpt,
    /// The opcode is not QUERY.
    #[error("opcode {0} not implemented")]
    Opcode(u8),
}

/// The client's EDNS OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Largest UDP answer the client takes.
    pub udp_size: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// EDNS version.
    pub version: u8,
}

/// A parsed client query: header fields, the question, EDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// Header flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// The question name in wire form, lowercased, uncompressed (ends with the root label).
    pub name: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Where the question section ends in the query (it starts at [`HEADER_LEN`]).
    pub question_end: usize,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

impl Query {
    /// Recursion desired.
    pub fn rd(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    /// Checking disabled.
    pub fn cd(&self) -> bool {
        self.flags & FLAG_CD != 0
    }

    /// The largest answer this client takes over UDP (RFC 6891 §6.2.5: at least 512; we never
    /// send more than [`EDNS_UDP_SIZE`]).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(e.udp_size.clamp(512, EDNS_UDP_SIZE)),
            None => 512,
        }
    }

    /// DNSSEC OK: the client wants RRSIG/NSEC records.
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }

    /// The client set AD (RFC 6840 §5.7: it understands the AD bit).
    pub fn ad(&self) -> bool {
        self.flags & FLAG_AD != 0
    }

    /// The cache key: name, type, class, and the DO and CD bits (answers with DNSSEC records
    /// and unvalidated answers are stored apart).
    pub fn key(&self) -> Key {
        let mut k = Vec::with_capacity(self.name.len() + 5);
        k.extend_from_slice(&self.name);
        k.extend_from_slice(&self.qtype.to_be_bytes());
        k.extend_from_slice(&self.qclass.to_be_bytes());
        k.push(u8::from(self.dnssec_ok()) | (u8::from(self.cd()) << 1));
        Key(k.into_boxed_slice())
    }
}

/// A cache and coalescing key: the lowercased wire name, then type and class, then a byte of
/// DO (bit 0) and CD (bit 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(pub Box<[u8]>);

fn u16_at(buf: &[u8], pos: usize) -> Result<u16, WireError> {
    let b = buf.get(pos..pos + 2).ok_or(WireError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(buf: &[u8], pos: usize) -> Result<u32, WireError> {
    let b = buf.get(pos..pos + 4).ok_or(WireError::Truncated)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the message ID, if there are at least two bytes.
pub fn id_of(buf: &[u8]) -> Option<u16> {
    u16_at(buf, 0).ok()
}

/// Skips a (possibly compressed) name starting at `pos`; returns the offset after it.
pub fn skip_name(buf: &[u8], mut pos: usize) -> Result<usize, WireError> {
    let mut total = 0usize;
    loop {
        let len = *buf.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => {
                total += usize::from(len) + 1;
                if total > 255 {
                    return Err(WireError::NameTooLong);
                }
                pos += usize::from(len) + 1;
            }
            0xC0 => {
                buf.get(pos + 1).ok_or(WireError::Truncated)?;
                return Ok(pos + 2);
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

/// Reads an uncompressed name at `pos`, lowercased; returns it and the offset after it.
fn read_query_name(buf: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), WireError> {
    let mut name = Vec::with_capacity(32);
    loop {
        let len = *buf.get(pos).ok_or(WireError::Truncated)?;
        if len & 0xC0 != 0 {
            // A query's only name has nothing earlier to point to.
            return Err(WireError::BadLabel);
        }
        let end = pos + 1 + usize::from(len);
        let label = buf.get(pos..end).ok_or(WireError::Truncated)?;
        if name.len() + label.len() > 255 {
            return Err(WireError::NameTooLong);
        }
        name.extend(label.iter().map(u8::to_ascii_lowercase));
        pos = end;
        if len == 0 {
            return Ok((name, pos));
        }
    }
}

/// One resource record's layout.
struct Rr {
    rtype: u16,
    /// Offset of the TTL field.
    ttl_at: usize,
    rdata_at: usize,
    end: usize,
}

fn read_rr(buf: &[u8], pos: usize) -> Result<Rr, WireError> {
    let after_name = skip_name(buf, pos)?;
    let rtype = u16_at(buf, after_name)?;
    let rdlen = usize::from(u16_at(buf, after_name + 8)?);
    let rdata_at = after_name + 10;
    let end = rdata_at + rdlen;
    if end > buf.len() {
        return Err(WireError::Truncated);
    }
    Ok(Rr {
        rtype,
        ttl_at: after_name + 4,
        rdata_at,
        end,
    })
}

/// Parses a client query. Errors say whether the sender deserves a FORMERR (see
/// [`formerr_for`]) or nothing at all.
pub fn parse_query(buf: &[u8]) -> Result<Query, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Short);
    }
    let id = u16_at(buf, 0)?;
    let flags = u16_at(buf, 2)?;
    if flags & FLAG_QR != 0 {
        return Err(WireError::NotAQuery);
    }
    let opcode = ((flags >> 11) & 0x0F) as u8;
    if opcode != 0 {
        return Err(WireError::Opcode(opcode));
    }
    let qdcount = u16_at(buf, 4)?;
    if qdcount != 1 {
        return Err(WireError::QuestionCount(qdcount));
    }
    let (name, pos) = read_query_name(buf, HEADER_LEN)?;
    let qtype = u16_at(buf, pos)?;
    let qclass = u16_at(buf, pos + 2)?;
    let question_end = pos + 4;
    let records =
        usize::from(u16_at(buf, 6)?) + usize::from(u16_at(buf, 8)?) + usize::from(u16_at(buf, 10)?);
    let additional_from = records - usize::from(u16_at(buf, 10)?);
    let mut pos = question_end;
    let mut edns = None;
    for i in 0..records {
        let rr = read_rr(buf, pos)?;
        if rr.rtype == TYPE_OPT && i >= additional_from {
            if edns.is_some() {
                return Err(WireError::DuplicateOpt);
            }
            let class = u16_at(buf, rr.ttl_at - 2)?;
            let ttl = u32_at(buf, rr.ttl_at)?;
            edns = Some(Edns {
                udp_size: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
        pos = rr.end;
    }
    Ok(Query {
        id,
        flags,
        name,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

/// The reply to a message that failed [`parse_query`], if it deserves one: FORMERR (or NOTIMP
/// for an unknown opcode) with the header echoed and no sections. Responses and runts get
/// nothing, so we never answer an answer (loops, reflection).
pub fn formerr_for(buf: &[u8], err: WireError) -> Option<Vec<u8>> {
    let code = match err {
        WireError::Short | WireError::NotAQuery => return None,
        WireError::Opcode(_) => rcode::NOTIMP,
        _ => rcode::FORMERR,
    };
    let id = u16_at(buf, 0).ok()?;
    let flags = u16_at(buf, 2).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id.to_be_bytes());
    let opcode_rd = flags & (0x7800 | FLAG_RD);
    out.extend_from_slice(&(FLAG_QR | FLAG_RA | opcode_rd | u16::from(code)).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// A response ready to be stored and served many times: ID zeroed, no OPT record, AA and AD
/// cleared, with the offset of every TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The message.
    pub wire: Box<[u8]>,
    /// Offsets of the TTL fields of every record.
    pub ttl_offsets: Box<[u16]>,
    /// Response code.
    pub rcode: u8,
    /// Seconds this answer may be cached: the smallest TTL of the answer section, or for
    /// NXDOMAIN/NODATA the negative TTL of RFC 2308 §5 (min of the SOA's TTL and MINIMUM);
    /// `None` when it must not be cached (no SOA in a negative answer, other rcodes).
    pub ttl: Option<u32>,
    /// The DNSSEC verdict: AD when secure (and asked for), SERVFAIL when bogus.
    pub security: Security,
}

impl Prepared {
    /// Whether this is a negative answer (NXDOMAIN, or NOERROR without answers).
    pub fn is_negative(&self) -> bool {
        self.rcode == rcode::NXDOMAIN || u16_at(&self.wire, 6).unwrap_or(0) == 0
    }

    /// Heap bytes this answer holds, for the cache's byte bound.
    pub fn cost(&self) -> usize {
        self.wire.len() + self.ttl_offsets.len() * 2
    }
}

/// Largest TTL we keep an answer for (one day), and a negative answer (RFC 2308 §5: 3 hours).
pub const MAX_TTL: u32 = 86_400;
/// See [`MAX_TTL`].
pub const MAX_NEGATIVE_TTL: u32 = 3 * 3600;

/// Turns an upstream response into a [`Prepared`] answer: checks its structure, strips the OPT
/// record, zeroes the ID, clears AA (we are a cache) and AD (nothing was validated), and finds
/// every TTL.
pub fn prepare(buf: &[u8]) -> Result<Prepared, WireError> {
    prepare_stripped(buf, false)
}

/// [`prepare`]; with `strip_dnssec`, RRSIG, NSEC and NSEC3 records are left out unless they
/// are the type asked for (for clients without DO, RFC 4035 §3.2.1).
pub fn prepare_stripped(buf: &[u8], strip_dnssec: bool) -> Result<Prepared, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Short);
    }
    let qd = u16_at(buf, 4)?;
    let an = usize::from(u16_at(buf, 6)?);
    let ns = usize::from(u16_at(buf, 8)?);
    let ar = usize::from(u16_at(buf, 10)?);
    let mut pos = HEADER_LEN;
    let mut qtype = None;
    for _ in 0..qd {
        pos = skip_name(buf, pos)?;
        qtype = qtype.or(u16_at(buf, pos).ok());
        pos += 4;
    }
    if pos > buf.len() {
        return Err(WireError::Truncated);
    }
    let mut kept = [0u16; 3];
    let mut out = Vec::with_capacity(buf.len());
    out.extend_from_slice(&buf[..pos]);
    let mut offsets = Vec::with_capacity(an + ns + ar);
    let mut answer_ttl: Option<u32> = None;
    let mut soa_ttl: Option<u32> = None;
    for i in 0..an + ns + ar {
        let rr = read_rr(buf, pos)?;
        let in_additional = i >= an + ns;
        if rr.rtype == TYPE_OPT && in_additional {
            pos = rr.end;
            continue;
        }
        if strip_dnssec
            && matches!(rr.rtype, TYPE_RRSIG | TYPE_NSEC | TYPE_NSEC3)
            && qtype != Some(rr.rtype)
        {
            pos = rr.end;
            continue;
        }
        kept[if i < an {
            0
        } else if i < an + ns {
            1
        } else {
            2
        }] += 1;
        let ttl = u32_at(buf, rr.ttl_at)? & 0x7FFF_FFFF; // RFC 2181 §8: top bit set means 0
        if i < an {
            answer_ttl = Some(answer_ttl.map_or(ttl, |t| t.min(ttl)));
        } else if !in_additional && rr.rtype == TYPE_SOA && rr.end >= rr.rdata_at + 4 {
            let minimum = u32_at(buf, rr.end - 4)?;
            soa_ttl = Some(ttl.min(minimum));
        }
        let ttl_in_out = out.len() + (rr.ttl_at - pos);
        let Ok(off) = u16::try_from(ttl_in_out) else {
            return Err(WireError::Truncated);
        };
        offsets.push(off);
        out.extend_from_slice(&buf[pos..rr.end]);
        pos = rr.end;
    }
    // Strip anything after the sections (padding, garbage) and fix the header.
    out[0] = 0;
    out[1] = 0;
    let flags = u16_at(buf, 2)? & !(FLAG_AA | FLAG_AD | FLAG_TC);
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    out[6..8].copy_from_slice(&kept[0].to_be_bytes());
    out[8..10].copy_from_slice(&kept[1].to_be_bytes());
    out[10..12].copy_from_slice(&kept[2].to_be_bytes());
    let code = (flags & 0x000F) as u8;
    let ttl = match code {
        rcode::NOERROR if an > 0 => answer_ttl.map(|t| t.min(MAX_TTL)),
        rcode::NOERROR | rcode::NXDOMAIN => soa_ttl.map(|t| t.min(MAX_NEGATIVE_TTL)),
        _ => None,
    };
    Ok(Prepared {
        wire: out.into_boxed_slice(),
        ttl_offsets: offsets.into_boxed_slice(),
        rcode: code,
        ttl,
        security: Security::Unchecked,
    })
}

/// How a stored answer's TTLs are written when served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttls {
    /// Decayed: each TTL minus the seconds since the answer was stored.
    Age(u32),
    /// Every TTL set to this value (stale answers, RFC 8767 §4: 30 s).
    Fixed(u32),
}

/// Appends our OPT record (no options) when the client sent one.
fn push_opt(out: &mut Vec<u8>, q: &Query) {
    if let Some(e) = q.edns {
        out.push(0); // root owner
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
        // extended rcode 0, version 0, DO echoed (RFC 3225), Z 0
        let do_bit: u16 = if e.dnssec_ok { 0x8000 } else { 0 };
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&do_bit.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // rdlen
        let ar = u16_at(out, 10).unwrap_or(0).saturating_add(1);
        out[10..12].copy_from_slice(&ar.to_be_bytes());
    }
}

/// Serves a prepared answer to `q`: the client's ID, RD and CD, its question bytes (so the
/// case it asked in comes back), TTLs per `ttls`, our OPT if it sent one. Over `limit` bytes
/// the answer is cut to a truncated (TC) reply so the client retries over TCP.
pub fn render(p: &Prepared, q: &Query, query_bytes: &[u8], ttls: Ttls, limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.wire.len() + 11);
    out.extend_from_slice(&p.wire);
    out[0..2].copy_from_slice(&q.id.to_be_bytes());
    let mut flags = u16_at(&out, 2).unwrap_or(0) & !(FLAG_RD | FLAG_CD)
        | (q.flags & (FLAG_RD | FLAG_CD))
        | FLAG_QR
        | FLAG_RA;
    // RFC 6840 §5.8: AD only to clients that asked with DO or AD.
    if p.security == Security::Secure && (q.dnssec_ok() || q.ad()) {
        flags |= FLAG_AD;
    }
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    // The stored question has the same length as the client's (same name, any case).
    let qlen = q.question_end - HEADER_LEN;
    if let (Some(dst), Some(src)) = (
        out.get_mut(HEADER_LEN..HEADER_LEN + qlen),
        query_bytes.get(HEADER_LEN..q.question_end),
    ) {
        dst.copy_from_slice(src);
    }
    for &off in p.ttl_offsets.iter() {
        let off = usize::from(off);
        let Ok(orig) = u32_at(&out, off) else {
            continue;
        };
        let ttl = match ttls {
            Ttls::Age(age) => (orig & 0x7FFF_FFFF).saturating_sub(age),
            Ttls::Fixed(t) => t,
        };
        out[off..off + 4].copy_from_slice(&ttl.to_be_bytes());
    }
    push_opt(&mut out, q);
    if out.len() > limit {
        return truncated(q, query_bytes, flags);
    }
    out
}

fn truncated(q: &Query, query_bytes: &[u8], flags: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.question_end + 11);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&(flags | FLAG_TC).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(query_bytes.get(HEADER_LEN..q.question_end).unwrap_or(&[]));
    push_opt(&mut out, q);
    out
}

/// Starts a reply to `q` that we make ourselves: header with `code`, the client's question.
/// Add records with [`Reply::answer`]/[`Reply::authority`], then [`Reply::finish`].
pub struct Reply {
    out: Vec<u8>,
    q_end: usize,
    answers: u16,
    authorities: u16,
    query: Query,
}

impl Reply {
    /// A reply with `code`; `authoritative` sets AA (local names).
    pub fn new(q: &Query, query_bytes: &[u8], code: u8, authoritative: bool) -> Self {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&q.id.to_be_bytes());
        let mut flags = FLAG_QR | FLAG_RA | (q.flags & (FLAG_RD | FLAG_CD)) | u16::from(code);
        if authoritative {
            flags |= FLAG_AA;
        }
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(query_bytes.get(HEADER_LEN..q.question_end).unwrap_or(&[]));
        let q_end = out.len();
        Self {
            out,
            q_end,
            answers: 0,
            authorities: 0,
            query: q.clone(),
        }
    }

    fn record(&mut self, owner: Option<&[u8]>, rtype: u16, ttl: u32, rdata: &[u8]) {
        match owner {
            // A pointer to the question name.
            None => self.out.extend_from_slice(&[0xC0, 0x0C]),
            Some(name) => self.out.extend_from_slice(name),
        }
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len = u16::try_from(rdata.len()).unwrap_or(0);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out
            .extend_from_slice(rdata.get(..usize::from(len)).unwrap_or(&[]));
    }

    /// Adds an answer record owned by the question name.
    pub fn answer(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> &mut Self {
        self.record(None, rtype, ttl, rdata);
        self.answers += 1;
        self
    }

    /// Adds an A or AAAA answer.
    pub fn address(&mut self, addr: std::net::IpAddr, ttl: u32) -> &mut Self {
        match addr {
            std::net::IpAddr::V4(a) => self.answer(TYPE_A, ttl, &a.octets()),
            std::net::IpAddr::V6(a) => self.answer(TYPE_AAAA, ttl, &a.octets()),
        }
    }

    /// Adds an SOA record for `zone` (wire name) to the authority section, for negative
    /// answers (RFC 2308 §3).
    pub fn soa(&mut self, zone: &[u8], ttl: u32) -> &mut Self {
        let mut rdata = Vec::with_capacity(zone.len() * 2 + 30);
        rdata.extend_from_slice(zone); // MNAME
        rdata.extend_from_slice(zone); // RNAME
        for v in [1u32, 3600, 600, 86_400, ttl] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        self.record(Some(zone), TYPE_SOA, ttl, &rdata);
        self.authorities += 1;
        self
    }

    /// The finished message, cut to a TC reply when over `limit`.
    pub fn finish(mut self, limit: usize) -> Vec<u8> {
        self.out[6..8].copy_from_slice(&self.answers.to_be_bytes());
        self.out[8..10].copy_from_slice(&self.authorities.to_be_bytes());
        push_opt(&mut self.out, &self.query);
        if self.out.len() > limit {
            let flags = u16_at(&self.out, 2).unwrap_or(0);
            let mut t = Vec::with_capacity(self.q_end + 11);
            t.extend_from_slice(&self.out[..2]);
            t.extend_from_slice(&(flags | FLAG_TC).to_be_bytes());
            t.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
            t.extend_from_slice(&self.out[HEADER_LEN..self.q_end]);
            push_opt(&mut t, &self.query);
            return t;
        }
        self.out
    }
}

/// A DNS name (`www.example.com`, with or without the final dot) in lowercased wire form, if it
/// is a valid host name: labels of 1-63 letters, digits, `-` or `_`, 255 bytes at most.
pub fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.trim_end_matches('.');
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// A wire name as text, without the final dot (`""` for the root).
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len());
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len & 0xC0 != 0 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len)).unwrap_or(&[]);
        if !s.is_empty() {
            s.push('.');
        }
        s.extend(label.iter().map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        }));
        pos += 1 + usize::from(len);
    }
    s
}

/// The labels of a wire name, first to last.
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(pos)?);
        if len == 0 || len & 0xC0 != 0 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// Whether wire name `name` is `zone` or below it (both lowercased, uncompressed).
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    if zone == [0] {
        return true;
    }
    // Walk label boundaries of `name` until the remaining suffix has zone's length.
    let mut pos = 0;
    while pos < name.len() {
        if name.len() - pos == zone.len() {
            return &name[pos..] == zone;
        }
        if name.len() - pos < zone.len() {
            return false;
        }
        pos += 1 + usize::from(name[pos]);
    }
    false
}

/// The IPv4 address named by a reverse name (`4.3.2.1.in-addr.arpa` → `1.2.3.4`).
pub fn reverse_v4(name: &[u8]) -> Option<Ipv4Addr> {
    let l: Vec<&[u8]> = labels(name).collect();
    if l.len() != 6 || !l[4].eq_ignore_ascii_case(b"in-addr") || !l[5].eq_ignore_ascii_case(b"arpa")
    {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, label) in l[..4].iter().enumerate() {
        let text = std::str::from_utf8(label).ok()?;
        if text.len() > 1 && text.starts_with('0') {
            return None;
        }
        octets[3 - i] = text.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

/// The reverse name of an IPv4 address, in wire form.
pub fn reverse_name_v4(addr: Ipv4Addr) -> Vec<u8> {
    let o = addr.octets();
    let text = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
    encode_name(&text).unwrap_or_else(|| vec![0])
}

/// The reverse name of an IPv6 address, in wire form.
pub fn reverse_name_v6(addr: Ipv6Addr) -> Vec<u8> {
    let mut text = String::with_capacity(72);
    for b in addr.octets().iter().rev() {
        text.push_str(&format!("{:x}.{:x}.", b & 0x0F, b >> 4));
    }
    text.push_str("ip6.arpa");
    encode_name(&text).unwrap_or_else(|| vec![0])
}

/// Builds a query for `name`/`qtype` with ID `id`, RD set, our OPT record (DO clear).
pub fn build_query(id: u16, name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    build_query_do(id, name, qtype, qclass, false)
}

/// [`build_query`] with the DO bit as given (DNSSEC records wanted).
pub fn build_query_do(id: u16, name: &[u8], qtype: u16, qclass: u16, dnssec_ok: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 15);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    out
}

/// `name` (wire form) with the case of each letter chosen at random (DNS 0x20,
/// draft-vixie-dnsext-dns0x20): a server that copies the question keeps it, so an off-path
/// spoofer must guess those bits as well as the ID and the port.
pub fn randomize_case(name: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    let mut pos = 0;
    let mut bits: u64 = rand::random();
    let mut left = 64;
    while let Some(&len) = out.get(pos) {
        if len == 0 || len & 0xC0 != 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(out.len());
        for b in &mut out[pos + 1..end] {
            if b.is_ascii_alphabetic() {
                if left == 0 {
                    bits = rand::random();
                    left = 64;
                }
                *b = if bits & 1 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                bits >>= 1;
                left -= 1;
            }
        }
        pos = end;
    }
    out
}

/// Whether the question of `resp` spells `name` exactly, case included (the 0x20 check, after
/// [`matches_query`] found it the same name).
pub fn question_spelled(resp: &[u8], name: &[u8]) -> bool {
    resp.get(HEADER_LEN..HEADER_LEN + name.len()) == Some(name)
}

/// Whether `resp` answers the question in `query` (same ID, QR set, same question, any case).
pub fn matches_query(resp: &[u8], id: u16, name: &[u8], qtype: u16, qclass: u16) -> bool {
    let (Ok(rid), Ok(flags), Ok(qd)) = (u16_at(resp, 0), u16_at(resp, 2), u16_at(resp, 4)) else {
        return false;
    };
    if rid != id || flags & FLAG_QR == 0 || qd != 1 {
        return false;
    }
    let Ok((rname, pos)) = read_query_name(resp, HEADER_LEN) else {
        return false;
    };
    rname == name
        && u16_at(resp, pos).ok() == Some(qtype)
        && u16_at(resp, pos + 2).ok() == Some(qclass)
}

/// Whether a response has the TC bit.
pub fn is_truncated(resp: &[u8]) -> bool {
    u16_at(resp, 2).is_ok_and(|f| f & FLAG_TC != 0)
}

/// The rcode of a message.
pub fn rcode_of(resp: &[u8]) -> Option<u8> {
    u16_at(resp, 2).ok().map(|f| (f & 0x000F) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_randomization_changes_only_letters_and_is_checked_exactly() {
        let name = encode_name("www.example-1.test").unwrap();
        let mut seen_upper = false;
        for _ in 0..32 {
            let sent = randomize_case(&name);
            assert_eq!(sent.len(), name.len());
            assert!(sent.eq_ignore_ascii_case(&name));
            assert_eq!(sent[4], name[4], "length bytes are untouched");
            seen_upper |= sent.iter().any(u8::is_ascii_uppercase);
            let resp = build_query(7, &sent, 1, CLASS_IN);
            assert!(question_spelled(&resp, &sent));
            let lower = build_query(7, &name, 1, CLASS_IN);
            assert_eq!(question_spelled(&lower, &sent), sent == name);
        }
        assert!(seen_upper, "32 tries never chose an upper-case letter");
    }

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut q = build_query(0x1234, &encode_name(name).unwrap(), qtype, CLASS_IN);
        if !edns {
            q.truncate(q.len() - 11);
            q[11] = 0;
        }
        q
    }

    /// An upstream answer: `name` A with TTLs, plus an OPT record.
    fn answer(name: &str, ttls: &[u32]) -> Vec<u8> {
        let q = query(name, TYPE_A, false);
        let mut r = q.clone();
        r[2] = 0x85; // QR, AA, RD
        r[3] = 0x80;
        r[7] = ttls.len() as u8;
        for (i, t) in ttls.iter().enumerate() {
            r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 4, 192, 0, 2, i as u8]);
        }
        r[11] = 1;
        r.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        r
    }

    #[test]
    fn parses_a_query_with_edns_and_lowercases_the_name() {
        let mut q = query("WWW.Example.COM", TYPE_AAAA, true);
        q[2] = 0x01;
        let p = parse_query(&q).unwrap();
        assert_eq!(p.name, encode_name("www.example.com").unwrap());
        assert_eq!(p.qtype, TYPE_AAAA);
        assert!(p.rd());
        assert_eq!(p.edns.unwrap().udp_size, EDNS_UDP_SIZE);
        assert_eq!(p.udp_limit(), 1232);
    }

    #[test]
    fn refuses_runts_responses_and_compressed_questions() {
        assert_eq!(parse_query(&[0; 5]), Err(WireError::Short));
        let mut q = query("a.b", TYPE_A, false);
        q[2] |= 0x80;
        assert_eq!(parse_query(&q), Err(WireError::NotAQuery));
        assert!(formerr_for(&q, WireError::NotAQuery).is_none());
        let mut c = query("a.b", TYPE_A, false);
        c.truncate(HEADER_LEN);
        c.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        let err = parse_query(&c).unwrap_err();
        let reply = formerr_for(&c, err).unwrap();
        assert_eq!(rcode_of(&reply), Some(rcode::FORMERR));
        assert_eq!(&reply[..2], &c[..2]);
    }

    #[test]
    fn prepared_answer_strips_opt_and_decays_ttls() {
        let p = prepare(&answer("host.test", &[300, 100])).unwrap();
        assert_eq!(p.ttl, Some(100));
        assert_eq!(u16_at(&p.wire, 10).unwrap(), 0, "opt stripped");
        assert_eq!(p.ttl_offsets.len(), 2);
        let mut q = query("host.test", TYPE_A, true);
        q[13..17].copy_from_slice(b"HOST");
        let pq = parse_query(&q).unwrap();
        let out = render(&p, &pq, &q, Ttls::Age(40), 1232);
        assert_eq!(&out[..2], &[0x12, 0x34]);
        assert_eq!(u32_at(&out, usize::from(p.ttl_offsets[0])).unwrap(), 260);
        assert_eq!(u32_at(&out, usize::from(p.ttl_offsets[1])).unwrap(), 60);
        assert_eq!(&out[13..17], b"HOST", "client's case comes back");
        assert_eq!(u16_at(&out, 10).unwrap(), 1, "our opt added");
        let m = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(m.answers.len(), 2);
        assert!(m.edns.is_some());
    }

    #[test]
    fn large_answer_is_truncated_for_udp_but_whole_for_tcp() {
        let ttls = vec![60; 40];
        let p = prepare(&answer("big.test", &ttls)).unwrap();
        let q = query("big.test", TYPE_A, false);
        let pq = parse_query(&q).unwrap();
        let udp = render(&p, &pq, &q, Ttls::Age(0), pq.udp_limit());
        assert!(is_truncated(&udp));
        assert_eq!(u16_at(&udp, 6).unwrap(), 0);
        let tcp = render(&p, &pq, &q, Ttls::Age(0), 65_535);
        assert!(!is_truncated(&tcp));
        assert_eq!(u16_at(&tcp, 6).unwrap(), 40);
    }

    #[test]
    fn negative_answer_ttl_is_the_soa_minimum() {
        let q = query("nope.test", TYPE_A, false);
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x83; // NXDOMAIN
        r[9] = 1;
        let zone = encode_name("test").unwrap();
        r.extend_from_slice(&zone);
        r.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0x0E, 0x10]); // ttl 3600
        let mut rdata = Vec::new();
        rdata.extend_from_slice(&zone);
        rdata.extend_from_slice(&zone);
        for v in [1u32, 2, 3, 4, 300] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
        let p = prepare(&r).unwrap();
        assert_eq!(p.rcode, rcode::NXDOMAIN);
        assert_eq!(p.ttl, Some(300));
        assert!(p.is_negative());
    }

    #[test]
    fn subdomain_and_reverse_names() {
        let zone = encode_name("home.arpa").unwrap();
        assert!(is_subdomain(&encode_name("a.home.arpa").unwrap(), &zone));
        assert!(is_subdomain(&zone, &zone));
        assert!(!is_subdomain(&encode_name("ahome.arpa").unwrap(), &zone));
        assert!(!is_subdomain(&encode_name("arpa").unwrap(), &zone));
        let r = reverse_name_v4(Ipv4Addr::new(192, 168, 1, 20));
        assert_eq!(reverse_v4(&r), Some(Ipv4Addr::new(192, 168, 1, 20)));
        assert_eq!(name_to_string(&r), "20.1.168.192.in-addr.arpa");
        assert!(encode_name("bad name").is_none());
    }
}
