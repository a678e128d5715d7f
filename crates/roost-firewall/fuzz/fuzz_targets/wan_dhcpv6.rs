//! The WAN's DHCPv6 client against hostile ISP messages: whatever arrives, `handle` returns
//! (an action or a counted drop) and never panics, and the client's timers stay sane.
//!
//! Input: the first byte picks how far in the message gets. 0: raw bytes to a soliciting
//! client. 1: the rest are the options of an ADVERTISE that carries the client's transaction
//! id and client id, so the offer parsing runs. 2: as 1, then (split at the first 0xfe 0xfe)
//! a REPLY to the REQUEST that follows, so the lease handling runs.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roost_firewall::dhcp6::{Action, Client};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];

/// The last message the client sent.
fn sent(actions: &[Action]) -> Option<Vec<u8>> {
    actions.iter().rev().find_map(|a| match a {
        Action::Send(b) => Some(b.clone()),
        _ => None,
    })
}

/// A message of `ty` answering `to` (same transaction id, its client id echoed), with `opts`.
fn answer(ty: u8, to: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&to[1..4]);
    // The client id is the first option of everything the client sends.
    let len = usize::from(u16::from_be_bytes([to[6], to[7]]));
    m.extend_from_slice(&to[4..8 + len]);
    m.extend_from_slice(opts);
    m
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    let mut c = Client::new(MAC, 56, start, 7);
    let now = c.deadline();
    let Some(solicit) = sent(&c.poll(now)) else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = c.handle(now, rest);
        }
        mode => {
            let (first, second) = match rest.windows(2).position(|w| w == [0xfe, 0xfe]) {
                Some(i) => (&rest[..i], &rest[i + 2..]),
                None => (rest, &[][..]),
            };
            let advertised = c.handle(now, &answer(2, &solicit, first));
            if mode == 2
                && let Ok(actions) = advertised
                && let Some(request) = sent(&actions)
            {
                let _ = c.handle(now, &answer(7, &request, second));
            }
        }
    }
    // Whatever happened, the client keeps a deadline and polls without panicking.
    let later = c.deadline().max(now) + Duration::from_secs(1);
    let _ = c.poll(later);
});
