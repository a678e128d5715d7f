//! Checks a firewall view before it is compiled. Views written by `roostctl config show` come from
//! validated settings, but `PUT /config` accepts any text, so everything the compiler relies on
//! (names safe to put in an nft script, references that resolve) is checked here again.

use roost_config::views::{FirewallView, FlowTarget};

/// The view cannot be compiled; every problem found, one a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid firewall view:\n  {}", .0.join("\n  "))]
pub struct InvalidView(pub Vec<String>);

/// Whether `name` can be an interface name (and so sit inside an nft string).
fn interface_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether `name` can be a zone name (it becomes part of chain and counter names).
fn zone_name_ok(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name != "wan"
}

/// Checks `view`; `Ok` means [`crate::compile`] can render it.
pub fn check(view: &FirewallView) -> Result<(), InvalidView> {
    let mut errs = Vec::new();
    let zone_known = |n: &str| n == "wan" || view.zones.iter().any(|z| z.name == n);
    let mut interfaces: Vec<&str> = vec![&view.wan.interface];
    if !interface_ok(&view.wan.interface) {
        errs.push(format!(
            "wan.interface `{}` is not an interface name",
            view.wan.interface
        ));
    }
    for (i, z) in view.zones.iter().enumerate() {
        if !zone_name_ok(&z.name) {
            errs.push(format!("zones[{i}].name `{}` is not a zone name", z.name));
        }
        if view.zones[..i].iter().any(|o| o.name == z.name) {
            errs.push(format!("zones[{i}].name `{}` is used twice", z.name));
        }
        if !interface_ok(&z.interface) {
            errs.push(format!(
                "zones[{i}].interface `{}` is not an interface name",
                z.interface
            ));
        }
        interfaces.push(&z.interface);
        if !z.subnet.contains(&z.router) {
            errs.push(format!(
                "zones[{i}].router {} is outside {}",
                z.router, z.subnet
            ));
        }
        if let Some(v6) = &z.ipv6 {
            if v6.subnet.prefix_len() != 64 || !v6.subnet.contains(&v6.router) {
                errs.push(format!(
                    "zones[{i}].ipv6: {} is not an address in the /64 {}",
                    v6.router, v6.subnet
                ));
            }
            if view.zones[..i]
                .iter()
                .any(|o| o.ipv6.is_some_and(|o| o.subnet == v6.subnet))
            {
                errs.push(format!(
                    "zones[{i}].ipv6 subnet {} is used twice",
                    v6.subnet
                ));
            }
        }
        for r in &z.reach {
            if !zone_known(r) {
                errs.push(format!("zones[{i}].reach names no zone `{r}`"));
            }
        }
    }
    for (i, l) in view.links.iter().enumerate() {
        if !interface_ok(&l.interface) {
            errs.push(format!(
                "links[{i}].interface `{}` is not an interface name",
                l.interface
            ));
        }
        interfaces.push(&l.interface);
        if !l.link.network.contains(&l.link.firewall) || !l.link.network.contains(&l.link.service) {
            errs.push(format!(
                "links[{i}] addresses are outside {}",
                l.link.network
            ));
        }
    }
    for (i, name) in interfaces.iter().enumerate() {
        if interfaces[..i].contains(name) {
            errs.push(format!("interface `{name}` is used twice"));
        }
    }
    let has_link = |s| view.links.iter().any(|l| l.service == s);
    for (i, p) in view.published.iter().enumerate() {
        if !has_link(p.service) {
            errs.push(format!(
                "published[{i}] goes to `{}`, which has no link",
                p.service
            ));
        }
        if p.port == 0 || p.to.port() == 0 {
            errs.push(format!("published[{i}]: port 0 is not a port"));
        }
        for z in &p.zones {
            if z == "wan" || !zone_known(z) {
                errs.push(format!("published[{i}].zones names no zone `{z}`"));
            }
        }
    }
    for (i, f) in view.flows.iter().enumerate() {
        if !has_link(f.from) {
            errs.push(format!(
                "flows[{i}] comes from `{}`, which has no link",
                f.from
            ));
        }
        if let FlowTarget::Service(s) = f.to
            && s != roost_config::Service::Firewall
            && !has_link(s)
        {
            errs.push(format!("flows[{i}] goes to `{s}`, which has no link"));
        }
        if f.ports.is_empty() || f.ports.contains(&0) {
            errs.push(format!("flows[{i}] needs ports, and port 0 is not a port"));
        }
    }
    for (i, pf) in view.port_forwards.iter().enumerate() {
        if pf.port == 0 || pf.to_port == Some(0) {
            errs.push(format!("port_forwards[{i}]: port 0 is not a port"));
        }
        if !view.zones.iter().any(|z| z.subnet.contains(&pf.to)) {
            errs.push(format!("port_forwards[{i}].to {} is in no zone", pf.to));
        }
    }
    for (i, r) in view.rules.iter().enumerate() {
        for (key, z) in [("from", &r.from), ("to", &r.to)] {
            if !zone_known(z) {
                errs.push(format!("rules[{i}].{key} names no zone `{z}`"));
            }
        }
        if r.ports.contains(&0) {
            errs.push(format!("rules[{i}]: port 0 is not a port"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(InvalidView(errs))
    }
}
