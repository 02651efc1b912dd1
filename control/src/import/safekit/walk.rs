//! Walks userconfig.xml into the [`Model`], recording warnings and notes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use roxmltree::{Document, Node};

use super::emit::{dur_key, fmt_duration, str_key, CheckerOut, Model, RuleOut, ScriptsOut};
use super::{ImportError, Options, Warning};

/// A SafeKit time attribute: a number with an optional unit (`d`, `h`, `m`, `s`, `ms`, `us`;
/// since SafeKit 8.2.5), else in the attribute's own unit.
pub(super) fn duration(value: &str, default_unit: &str) -> Option<Duration> {
    let v = value.trim();
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = if unit.trim().is_empty() { default_unit } else { unit.trim() };
    let secs = match unit {
        "d" => 86_400.0,
        "h" => 3_600.0,
        "m" => 60.0,
        "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        _ => return None,
    };
    let d = Duration::try_from_secs_f64(num * secs).ok()?;
    // Whole microseconds: what farm's durations can say.
    Some(Duration::from_micros(d.as_micros() as u64))
}

/// A farm name (`[A-Za-z0-9_.-]`, at most 64) made from a SafeKit identifier.
pub(super) fn sanitize(s: &str) -> String {
    let n: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).take(64).collect();
    if n.is_empty() {
        "checker".to_string()
    } else {
        n
    }
}

/// An address in SafeKit's forms (`[2001:db8::1]` for IPv6 in cluster.xml).
pub(super) fn ip(s: &str) -> Option<IpAddr> {
    s.trim().trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// A `<rule port>`: `*` (or absent), `N`, or `N-M`.
fn ports(s: Option<&str>) -> Option<(u16, u16)> {
    match s.map(str::trim) {
        None | Some("*") | Some("") => Some((0, 65535)),
        Some(p) => match p.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                (a <= b).then_some((a, b))
            }
            None => p.parse().ok().map(|n| (n, n)),
        },
    }
}

/// A node on a LAN as written: name, address, `file:line`.
pub(super) type Member = (String, String, String);

/// A host's weight as written (`<host name power>`), before the nodes are known.
pub(super) struct Host {
    pub(super) group: usize,
    pub(super) name: String,
    pub(super) power: String,
    pub(super) at: String,
}

/// The conversion in progress.
pub(super) struct Conv<'o> {
    pub(super) opts: &'o Options,
    pub(super) file: String,
    pub(super) macros: HashMap<String, String>,
    pub(super) warned_vars: Vec<String>,
    pub(super) warnings: Vec<Warning>,
    pub(super) notes: Vec<String>,
    pub(super) m: Model,
    /// `<farm><lan name>`, in order.
    pub(super) farm_lans: Vec<String>,
    /// Nodes by LAN: from cluster.xml, or `<lan><node>` in userconfig.xml (SafeKit 7.1).
    pub(super) lan_nodes: Vec<(String, Vec<Member>)>,
    pub(super) slost_count: Option<u32>,
    pub(super) rules: Vec<RuleOut>,
    pub(super) hosts: Vec<Host>,
    pub(super) group_has_cluster: Vec<bool>,
    pub(super) interface_check: bool,
    pub(super) polltimer: Duration,
}

impl<'o> Conv<'o> {
    pub(super) fn at(&self, n: Node) -> String {
        format!("{}:{}", self.file, n.document().text_pos_at(n.range().start).row)
    }

    pub(super) fn warn(&mut self, n: Node, what: impl Into<String>, why: impl Into<String>) {
        let w = Warning { at: self.at(n), what: what.into(), why: why.into() };
        self.warnings.push(w);
    }

    pub(super) fn invalid(&self, n: Node, what: impl Into<String>, why: impl Into<String>) -> ImportError {
        ImportError::Invalid { at: self.at(n), what: what.into(), why: why.into() }
    }

    /// An attribute with `%MACRO%` replaced.
    pub(super) fn attr(&mut self, n: Node, name: &str) -> Option<String> {
        let raw = n.attribute(name)?;
        Some(self.expand(n, raw))
    }

    fn expand(&mut self, n: Node, raw: &str) -> String {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.find('%') {
                Some(j) if j > 0 && after[..j].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    let key = &after[..j];
                    match self.macros.get(key) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str(&rest[i..i + j + 2]);
                            if !self.warned_vars.iter().any(|k| k == key) {
                                self.warned_vars.push(key.to_string());
                                self.warn(n, format!("%{key}%"), format!("no <macro name=\"{key}\">: SafeKit would use the environment variable {key}; left as written"));
                            }
                        }
                    }
                    rest = &after[j + 1..];
                }
                _ => {
                    out.push('%');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Warns about attributes of `n` not in `known`.
    pub(super) fn known_attrs(&mut self, n: Node, known: &[&str]) {
        let tag = n.tag_name().name().to_string();
        let unknown: Vec<(String, String)> =
            n.attributes().filter(|a| !known.contains(&a.name())).map(|a| (a.name().to_string(), a.value().to_string())).collect();
        for (a, v) in unknown {
            self.warn(n, format!("<{tag} {a}=\"{v}\">"), "attribute not known to the converter: not converted");
        }
    }

    pub(super) fn unknown_element(&mut self, n: Node, why: &str) {
        let tag = n.tag_name().name().to_string();
        self.warn(n, format!("<{tag}>"), format!("{why}: not converted"));
    }

    pub(super) fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
        n.children().filter(Node::is_element)
    }

    fn dur_attr(&mut self, n: Node, name: &str, unit: &str) -> Option<Duration> {
        let v = self.attr(n, name)?;
        match duration(&v, unit) {
            Some(d) => Some(d),
            None => {
                let tag = n.tag_name().name().to_string();
                self.warn(n, format!("<{tag} {name}=\"{v}\">"), format!("expected a duration (a number, in {unit} without a unit): default kept"));
                None
            }
        }
    }

    fn u32_attr(&mut self, n: Node, name: &str) -> Option<u32> {
        let v = self.attr(n, name)?;
        match v.trim().parse() {
            Ok(x) => Some(x),
            Err(_) => {
                let tag = n.tag_name().name().to_string();
                self.warn(n, format!("<{tag} {name}=\"{v}\">"), "expected a whole number: default kept");
                None
            }
        }
    }

    // ---- userconfig.xml ----

    pub(super) fn userconfig(&mut self, doc: &Document) -> Result<(), ImportError> {
        let root = doc.root_element();
        let top: Vec<Node> = match root.tag_name().name() {
            "safe" => Self::elements(root).collect(),
            "service" => vec![root],
            other => return Err(self.invalid(root, format!("<{other}>"), "expected <safe> (or <service>) as the root of userconfig.xml")),
        };
        // Macros first (each may use the ones before it).
        for n in top.iter().filter(|n| n.has_tag_name("macro")) {
            self.known_attrs(*n, &["name", "value"]);
            match (n.attribute("name"), n.attribute("value")) {
                (Some(k), Some(v)) => {
                    let v = self.expand(*n, v);
                    self.macros.insert(k.to_string(), v);
                }
                _ => self.warn(*n, "<macro>", "expected name and value: ignored"),
            }
        }
        let mut service = None;
        for n in top {
            match n.tag_name().name() {
                "macro" => {}
                "service" if service.is_none() => service = Some(n),
                _ => self.unknown_element(n, "outside <service>"),
            }
        }
        let Some(service) = service else {
            return Err(self.invalid(root, "<safe>", "expected a <service mode=\"farm\"> element"));
        };
        self.service(service)
    }

    fn service(&mut self, n: Node) -> Result<(), ImportError> {
        self.known_attrs(n, &["mode", "boot", "boot_delay", "failover", "defaultprim", "maxloop", "loop_interval", "automatic_reboot"]);
        match self.attr(n, "mode").as_deref() {
            Some("farm") => {}
            Some(m) => {
                return Err(self.invalid(n, format!("<service mode=\"{m}\">"), "only farm modules convert (a mirror module replicates files and has one primary; farm has no equivalent)"))
            }
            None => return Err(self.invalid(n, "<service>", "expected mode=\"farm\"")),
        }
        match self.attr(n, "boot").as_deref() {
            Some("on") => self.m.autostart = Some(true),
            Some("off") => self.m.autostart = Some(false),
            Some("auto") => {
                self.m.autostart = Some(true);
                self.warn(n, "<service boot=\"auto\">", "farm cannot remember whether the module ran before a reboot: autostart = true (it always starts with farmd)");
            }
            Some("ignore") | None => self.notes.push("<service boot> is not set (SafeKit's `safekit boot` command decides): autostart left at false".into()),
            Some(b) => self.warn(n, format!("<service boot=\"{b}\">"), "expected on, off, auto or ignore: not converted"),
        }
        if let Some(d) = self.dur_attr(n, "boot_delay", "s").filter(|d| !d.is_zero()) {
            self.warn(n, format!("<service boot_delay=\"{}\">", fmt_duration(d)), "farm has no delay before autostart: delay farmd's unit instead (systemd ExecStartPre=/bin/sleep)");
        }
        for a in ["failover", "defaultprim"] {
            if n.attribute(a).is_some() {
                self.notes.push(format!("<service {a}> is for mirror modules; SafeKit ignores it in a farm module"));
            }
        }
        if self.attr(n, "automatic_reboot").as_deref() == Some("on") {
            self.warn(n, "<service automatic_reboot=\"on\">", "farm never reboots the machine: a stopstart stops and starts the module");
        }
        self.m.maxloop = self.u32_attr(n, "maxloop");
        if let Some(d) = self.dur_attr(n, "loop_interval", "h") {
            if d.is_zero() {
                self.warn(n, "<service loop_interval=\"0\">", "0 makes SafeKit's restart counter inactive; farm always counts: loop_interval left at 24h");
            } else {
                self.m.loop_interval = Some(d);
            }
        }
        for c in Self::elements(n) {
            match c.tag_name().name() {
                "farm" => self.farm(c),
                "vip" => self.vip(c)?,
                "user" => self.user(c),
                "errd" => self.errd(c),
                "check" => self.check(c),
                "heart" | "rfs" => self.unknown_element(c, "mirror modules only"),
                "vhost" => self.unknown_element(c, "farm has no virtual hostname"),
                "failover" => self.unknown_element(c, "farm has no failover rule language (actions are per checker)"),
                _ => self.unknown_element(c, "not known to the converter"),
            }
        }
        Ok(())
    }

    fn farm(&mut self, n: Node) {
        self.known_attrs(n, &["port", "pulse", "mlost_count", "slost_count"]);
        if let Some(p) = self.attr(n, "port") {
            match p.trim().parse() {
                Ok(p) => self.m.hb_port = Some(p),
                Err(_) => self.warn(n, format!("<farm port=\"{p}\">"), "expected a UDP port: [heartbeat] port left at 4790"),
            }
        }
        self.m.pulse = self.dur_attr(n, "pulse", "ms");
        self.slost_count = self.u32_attr(n, "slost_count");
        if n.attribute("mlost_count").is_some() {
            self.warn(n, "<farm mlost_count>", "farm's membership has no leader to elect: dead_after comes from slost_count alone");
        }
        for lan in Self::elements(n) {
            if !lan.has_tag_name("lan") {
                self.unknown_element(lan, "not known to the converter");
                continue;
            }
            self.known_attrs(lan, &["name"]);
            let Some(name) = self.attr(lan, "name") else {
                self.warn(lan, "<lan>", "expected a name: ignored");
                continue;
            };
            self.farm_lans.push(name.clone());
            // SafeKit 7.1: the nodes are in the module.
            let mut nodes = Vec::new();
            for node in Self::elements(lan) {
                if !node.has_tag_name("node") {
                    self.unknown_element(node, "not known to the converter");
                    continue;
                }
                self.known_attrs(node, &["name", "addr"]);
                if let (Some(nm), Some(a)) = (self.attr(node, "name"), self.attr(node, "addr")) {
                    let at = self.at(node);
                    nodes.push((nm, a, at));
                }
            }
            if !nodes.is_empty() {
                self.lan_nodes.push((name, nodes));
            }
        }
    }

    fn vip(&mut self, n: Node) -> Result<(), ImportError> {
        self.known_attrs(n, &["tcpreset", "scriptcontrol"]);
        if self.attr(n, "tcpreset").as_deref() != Some("off") {
            self.notes.push("<vip tcpreset> (default on) resets connections when SafeKit removes the VIP; farm never does: a stop hands clients over and lets held connections finish".into());
        }
        if self.attr(n, "scriptcontrol").as_deref() == Some("on") {
            self.warn(n, "<vip scriptcontrol=\"on\">", "farm opens the VIP to clients when the node is UP, not from the scripts");
        }
        for c in Self::elements(n) {
            match c.tag_name().name() {
                "interface_list" => {
                    for i in Self::elements(c) {
                        if i.has_tag_name("interface") {
                            self.interface(i)?;
                        } else {
                            self.unknown_element(i, "not known to the converter");
                        }
                    }
                }
                "loadbalancing_list" => self.loadbalancing(c),
                _ => self.unknown_element(c, "not known to the converter"),
            }
        }
        Ok(())
    }

    fn interface(&mut self, n: Node) -> Result<(), ImportError> {
        self.known_attrs(n, &["check", "arpreroute", "arpinterval", "arpelapse", "name"]);
        if self.attr(n, "check").as_deref() != Some("off") {
            self.interface_check = true;
        }
        if self.attr(n, "arpreroute").as_deref() == Some("on") || n.attribute("arpinterval").is_some() || n.attribute("arpelapse").is_some() {
            self.notes.push("<interface arpreroute/arpinterval/arpelapse>: not needed with farm: one node answers ARP/ND for a VIP with its virtual MAC, which never moves".into());
        }
        if let Some(name) = self.attr(n, "name") {
            if self.m.uplink.is_none() {
                self.m.uplink = Some((format!("net_af_packet0,iface={name}"), format!("<interface name=\"{name}\"> through AF_PACKET; its PCI address is faster")));
            } else {
                self.warn(n, format!("<interface name=\"{name}\">"), "farm's data plane has one uplink: only the first interface is used");
            }
        }
        for c in Self::elements(n) {
            match c.tag_name().name() {
                "virtual_interface" => {
                    self.known_attrs(c, &["type", "addr"]);
                    match self.attr(c, "type").as_deref() {
                        None | Some("vmac_invisible") => {}
                        Some("vmac_directed") => self.warn(
                            c,
                            "<virtual_interface type=\"vmac_directed\">",
                            "farm always works as vmac_invisible: one node answers ARP/ND with the virtual MAC 5a:fe:+VIP, never used as a source, so switches flood VIP traffic to every node (in a VM: allow promiscuous mode)",
                        ),
                        Some(t) => self.warn(c, format!("<virtual_interface type=\"{t}\">"), "expected vmac_invisible or vmac_directed: handled as vmac_invisible"),
                    }
                    if let Some(mac) = self.attr(c, "addr") {
                        self.warn(c, format!("<virtual_interface addr=\"{mac}\">"), "farm's virtual MAC is always 5a:fe: followed by the IPv4 VIP (derived from an IPv6 VIP): the MAC given is not used");
                    }
                    for a in Self::elements(c) {
                        if a.has_tag_name("virtual_addr") {
                            self.virtual_addr(a)?;
                        } else {
                            self.unknown_element(a, "not known to the converter");
                        }
                    }
                }
                "real_interface" => self.unknown_element(c, "a mirror module's VIP (one node at a time); farm spreads a VIP over every node"),
                _ => self.unknown_element(c, "not known to the converter"),
            }
        }
        Ok(())
    }

    fn virtual_addr(&mut self, n: Node) -> Result<(), ImportError> {
        self.known_attrs(n, &["addr", "where", "check", "connections", "netmask"]);
        let Some(addr) = self.attr(n, "addr") else {
            return Err(self.invalid(n, "<virtual_addr>", "expected addr"));
        };
        let Some(vip) = ip(&addr) else {
            return Err(self.invalid(n, format!("<virtual_addr addr=\"{addr}\">"), "expected an IP address (farm reads no DNS name)"));
        };
        match self.attr(n, "where").as_deref() {
            None | Some("alias") => {}
            Some(w) => self.warn(n, format!("<virtual_addr where=\"{w}\">"), "a farm VIP is on every node (where=\"alias\")"),
        }
        match self.attr(n, "check").as_deref() {
            Some("off") => {}
            Some(_) => self.warn(n, "<virtual_addr check=\"on\">", "farm has no checker of the VIP's presence (SafeKit's ip checker)"),
            None => self.notes.push(format!("VIP {vip}: SafeKit's implicit ip checker (check=\"on\") has no equivalent; the VIP stays on lo, set once by the system")),
        }
        if self.attr(n, "connections").as_deref() == Some("on") {
            self.warn(n, "<virtual_addr connections=\"on\">", "no per-VIP connection count; farm's status and metrics count held connections per bucket");
        }
        if let Some(m) = self.attr(n, "netmask") {
            self.notes.push(format!("<virtual_addr netmask=\"{m}\">: the VIP goes on lo as a /32 (/128); the netmask is not used"));
        }
        if self.m.vips.contains(&vip) {
            self.warn(n, format!("<virtual_addr addr=\"{addr}\">"), "the same VIP again: once is enough");
        } else {
            self.m.vips.push(vip);
        }
        Ok(())
    }

    fn loadbalancing(&mut self, n: Node) {
        for (g, group) in Self::elements(n).enumerate() {
            if !group.has_tag_name("group") {
                self.unknown_element(group, "not known to the converter");
                continue;
            }
            self.known_attrs(group, &["name"]);
            self.group_has_cluster.push(false);
            for c in Self::elements(group) {
                match c.tag_name().name() {
                    "cluster" => {
                        self.group_has_cluster[g] = true;
                        for h in Self::elements(c) {
                            if !h.has_tag_name("host") {
                                self.unknown_element(h, "not known to the converter");
                                continue;
                            }
                            self.known_attrs(h, &["name", "power"]);
                            let at = self.at(h);
                            let name = self.attr(h, "name").unwrap_or_default();
                            let power = self.attr(h, "power").unwrap_or_else(|| "1".into());
                            self.hosts.push(Host { group: g, name, power, at });
                        }
                    }
                    "rule" => self.rule(c),
                    _ => self.unknown_element(c, "not known to the converter"),
                }
            }
        }
    }

    fn rule(&mut self, n: Node) {
        self.known_attrs(n, &["virtual_addr", "port", "proto", "filter"]);
        let origin = self.at(n);
        let filter = self.attr(n, "filter");
        let proto = match self.attr(n, "proto").as_deref() {
            Some("tcp") => "tcp",
            Some("udp") => "udp",
            Some("arp") => {
                if filter.as_deref().is_some_and(|f| f != "on_addr") {
                    self.warn(n, "<rule proto=\"arp\">", "ARP/ND answers are always chosen on the requester's address (on_addr)");
                }
                self.notes.push(format!("{origin}: <rule proto=\"arp\">: farm always answers ARP/ND for a VIP from one node chosen on the requester's address: nothing to write"));
                return;
            }
            Some(p) => {
                self.warn(n, format!("<rule proto=\"{p}\">"), "expected tcp, udp or arp: rule not converted (its traffic is dropped)");
                return;
            }
            None => {
                self.warn(n, "<rule>", "no proto: rule not converted (its traffic is dropped)");
                return;
            }
        };
        let affinity = match filter.as_deref() {
            Some("on_addr") => "on_addr",
            Some("on_port") => "on_port",
            Some("on_ipid") => {
                self.warn(n, "<rule filter=\"on_ipid\">", "farm cannot hash on the IP id: converted to on_addr (all of a client's datagrams on one node, fragments included)");
                "on_addr"
            }
            Some(f) => {
                self.warn(n, format!("<rule filter=\"{f}\">"), "expected on_addr, on_port or on_ipid: converted to on_addr");
                "on_addr"
            }
            None => {
                self.warn(n, "<rule>", "no filter: converted to on_addr");
                "on_addr"
            }
        };
        let port = self.attr(n, "port");
        let Some(ports) = ports(port.as_deref()) else {
            self.warn(n, format!("<rule port=\"{}\">", port.unwrap_or_default()), "expected *, a port or a range N-M: rule not converted");
            return;
        };
        let vip = match self.attr(n, "virtual_addr").as_deref().map(str::trim) {
            None | Some("*") => None,
            Some(a) => match ip(a) {
                Some(v) => Some(v),
                None => {
                    self.warn(n, format!("<rule virtual_addr=\"{a}\">"), "expected * or an IP address: rule not converted");
                    return;
                }
            },
        };
        self.rules.push(RuleOut { vip, proto, ports, affinity, origin });
    }

    fn user(&mut self, n: Node) {
        self.known_attrs(n, &["nicestoptimeout", "forcestoptimeout", "logging", "userlogsize"]);
        let nice = self.dur_attr(n, "nicestoptimeout", "s").unwrap_or(Duration::from_secs(300));
        let force = self.dur_attr(n, "forcestoptimeout", "s").unwrap_or(Duration::from_secs(300));
        if self.attr(n, "logging").as_deref() == Some("none") {
            self.warn(n, "<user logging=\"none\">", "farm always writes the scripts' output to the application log");
        }
        if n.attribute("userlogsize").is_some() {
            self.warn(n, "<user userlogsize>", "farm rotates the application log itself; no size limit to set");
        }
        let mut env = Vec::new();
        for v in Self::elements(n) {
            if !v.has_tag_name("var") {
                self.unknown_element(v, "not known to the converter");
                continue;
            }
            self.known_attrs(v, &["name", "value"]);
            match (self.attr(v, "name"), self.attr(v, "value")) {
                (Some(k), Some(val)) => env.push((k, val)),
                _ => self.warn(v, "<var>", "expected name and value: not converted"),
            }
        }
        self.m.scripts = Some(ScriptsOut { dir: self.opts.scripts_dir.clone(), timeout: nice.max(force), stop_drain_timeout: nice, env });
        self.notes.push(format!(
            "copy SafeKit's start_both and stop_both (SAFE/modules/<module>/bin/) to {}; farm runs `stop_both` then `stop_both force` if needed, without SafeKit's environment ($SAFE, $SAFEMODULE) or `safekit` commands",
            self.opts.scripts_dir.display()
        ));
    }

    /// The farm action of a SafeKit checker (`None`: not converted, warned).
    fn action(&mut self, n: Node, default: &str) -> Option<&'static str> {
        let tag = n.tag_name().name().to_string();
        match self.attr(n, "when").as_deref() {
            None | Some("both") | Some("pre") => {}
            Some(w) => self.warn(n, format!("<{tag} when=\"{w}\">"), "farm runs every checker while the module runs (as when=\"both\")"),
        }
        let a = self.attr(n, "action").unwrap_or_else(|| default.to_string());
        match a.as_str() {
            "restart" => Some("restart"),
            "stopstart" => Some("stopstart"),
            "wait" => Some("wait"),
            "stop" => {
                self.warn(n, format!("<{tag} action=\"stop\">"), "farm has no stop-and-stay-stopped action: converted to stopstart ([restart] maxloop still stops the module for good)");
                Some("stopstart")
            }
            "noaction" => {
                self.warn(n, format!("<{tag} action=\"noaction\">"), "the action was a <failover> rule, which farm has not: checker not converted");
                None
            }
            other => {
                self.warn(n, format!("<{tag} action=\"{other}\">"), "a handler program: farm's actions are restart, stopstart and wait: checker not converted");
                None
            }
        }
    }

    pub(super) fn push_checker(&mut self, name: String, kind: &'static str, mut keys: Vec<(&'static str, String)>, action: &str, comment: String) {
        let mut unique = sanitize(&name);
        let mut i = 2;
        while self.m.checkers.iter().any(|c| c.name == unique) {
            unique = format!("{}-{i}", sanitize(&name));
            i += 1;
        }
        keys.push(str_key("action", action));
        keys.push(("fail_after", "1".into()));
        keys.push(("ok_after", "1".into()));
        self.m.checkers.push(CheckerOut { name: unique, kind, keys, comment });
    }

    fn check(&mut self, n: Node) {
        for c in Self::elements(n) {
            let tag = c.tag_name().name().to_string();
            match tag.as_str() {
                "tcp" | "ping" => {
                    self.known_attrs(c, &["ident", "when", "action"]);
                    let ident = self.attr(c, "ident").unwrap_or_else(|| tag.clone());
                    let Some(action) = self.action(c, if tag == "tcp" { "restart" } else { "wait" }) else { continue };
                    for to in Self::elements(c) {
                        if !to.has_tag_name("to") {
                            self.unknown_element(to, "not known to the converter");
                            continue;
                        }
                        let known: &[&str] = if tag == "tcp" { &["addr", "port", "interval", "timeout"] } else { &["addr", "interval", "timeout"] };
                        self.known_attrs(to, known);
                        let addr = self.attr(to, "addr").unwrap_or_default();
                        let Some(a) = (if addr == "localhost" { Some(IpAddr::from([127, 0, 0, 1])) } else { ip(&addr) }) else {
                            self.warn(to, format!("<to addr=\"{addr}\">"), "expected an IP address (farm's checkers read no DNS name): checker not converted");
                            continue;
                        };
                        let mut keys = vec![str_key("addr", &a.to_string())];
                        if tag == "tcp" {
                            let port = self.attr(to, "port").unwrap_or_default();
                            match port.trim().parse::<u16>() {
                                Ok(p) => keys.push(("port", p.to_string())),
                                Err(_) => {
                                    self.warn(to, format!("<to port=\"{port}\">"), "expected a TCP port: checker not converted");
                                    continue;
                                }
                            }
                        }
                        let interval = self.dur_attr(to, "interval", "s").unwrap_or(Duration::from_secs(10));
                        let timeout = self.dur_attr(to, "timeout", "s").unwrap_or(Duration::from_secs(5));
                        keys.push(dur_key("interval", interval));
                        keys.push(dur_key("timeout", timeout));
                        let comment = format!("<check><{tag} ident=\"{ident}\"> at {}", self.at(c));
                        self.push_checker(format!("{tag}.{ident}"), if tag == "tcp" { "tcp" } else { "ping" }, keys, action, comment);
                    }
                }
                "custom" => {
                    self.known_attrs(c, &["ident", "when", "exec", "arg", "action"]);
                    let ident = self.attr(c, "ident").unwrap_or_else(|| "custom".into());
                    let Some(action) = self.action(c, "noaction") else { continue };
                    let Some(exec) = self.attr(c, "exec") else {
                        self.warn(c, "<custom>", "no exec: checker not converted");
                        continue;
                    };
                    if let Some(arg) = self.attr(c, "arg") {
                        self.warn(c, format!("<custom arg=\"{arg}\">"), "farm runs a custom checker without arguments: put them in the script");
                    }
                    self.warn(
                        c,
                        format!("<custom ident=\"{ident}\">"),
                        "converted, but SafeKit's custom checker is a loop that sets its resource with `safekit set`; farm runs the script every interval and reads its exit status (0 = healthy): rewrite it",
                    );
                    // SafeKit: relative to the module's bin directory; here: the scripts' directory.
                    let script = if exec.starts_with('/') { exec.clone() } else { self.opts.scripts_dir.join(&exec).display().to_string() };
                    if script != exec {
                        self.notes.push(format!("custom checker {exec}: copy it from SAFE/modules/<module>/bin/ to {script}"));
                    }
                    let comment = format!("<check><custom ident=\"{ident}\"> at {}", self.at(c));
                    self.push_checker(format!("custom.{ident}"), "custom", vec![str_key("script", &script), dur_key("interval", Duration::from_secs(10)), dur_key("timeout", Duration::from_secs(5))], action, comment);
                }
                "intf" => self.unknown_element(c, "farm's interface checker names an interface, not an address (the uplink's is added from <interface check>)"),
                "ip" => self.unknown_element(c, "farm has no checker of a local address"),
                "module" => self.unknown_element(c, "farm has no checker of another module"),
                "splitbrain" => self.unknown_element(c, "farm's answer to partitions is [assignment] takeover = \"majority\" (with a witness for 2 nodes)"),
                _ => self.unknown_element(c, "not known to the converter"),
            }
        }
    }

    fn errd(&mut self, n: Node) {
        self.known_attrs(n, &["polltimer"]);
        self.polltimer = self.dur_attr(n, "polltimer", "s").unwrap_or(Duration::from_secs(30));
        for p in Self::elements(n) {
            if !p.has_tag_name("proc") {
                self.unknown_element(p, "not known to the converter");
                continue;
            }
            self.proc(p);
        }
    }

    fn proc(&mut self, n: Node) {
        self.known_attrs(n, &["name", "service", "nameregex", "argregex", "atleast", "action", "restart_services", "class", "start_after", "atmax"]);
        let Some(name) = self.attr(n, "name") else {
            self.warn(n, "<proc>", "no name: not converted");
            return;
        };
        if self.attr(n, "service").as_deref() == Some("yes") {
            self.warn(n, format!("<proc name=\"{name}\" service=\"yes\">"), format!("farm has no service checker: write a custom checker (`systemctl is-active --quiet {name}`): not converted"));
            return;
        }
        let Some(action) = self.action(n, "stopstart") else { return };
        match self.attr(n, "class").as_deref() {
            None | Some("both") => {}
            Some(c) => self.warn(n, format!("<proc class=\"{c}\">"), "farm checks every process while the module runs (as class=\"both\"); `safekit errd enable/disable` has no equivalent"),
        }
        if let Some(r) = self.attr(n, "restart_services") {
            self.warn(n, format!("<proc restart_services=\"{r}\">"), "farm restarts the whole application (stop_both, start_both)");
        }
        if self.attr(n, "atmax").is_some_and(|a| a.trim() != "-1") {
            self.warn(n, "<proc atmax>", "farm has no maximum number of processes: not checked");
        }
        let at_least = match self.attr(n, "atleast") {
            None => 1,
            Some(a) => match a.trim().parse::<i64>() {
                Ok(x) if x >= 1 => x as u32,
                _ => {
                    self.warn(n, format!("<proc atleast=\"{a}\">"), "farm checks at least 1 process: checker not converted");
                    return;
                }
            },
        };
        let mut keys = Vec::new();
        let nameregex = self.attr(n, "nameregex");
        let argregex = self.attr(n, "argregex");
        match (nameregex, argregex) {
            (None, None) => keys.push(str_key("process", &name)),
            (_, Some(args)) => {
                self.warn(n, format!("<proc argregex=\"{args}\">"), "farm matches one regular expression on the whole command line: pattern = argregex (the command name is no longer checked separately)");
                keys.push(str_key("pattern", &args));
            }
            (Some(re), None) => {
                self.warn(n, format!("<proc nameregex=\"{re}\">"), "farm's pattern matches the whole command line, not the command name alone");
                keys.push(str_key("pattern", &re));
            }
        }
        if at_least != 1 {
            keys.push(("at_least", at_least.to_string()));
        }
        keys.push(dur_key("interval", self.polltimer));
        if let Some(k) = self.u32_attr(n, "start_after").filter(|&k| k > 1) {
            keys.push(dur_key("start_delay", self.polltimer * (k - 1)));
        }
        let comment = format!("<errd><proc name=\"{name}\"> at {}", self.at(n));
        self.push_checker(format!("proc.{name}"), "process", keys, action, comment);
    }

}
