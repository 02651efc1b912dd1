//! cluster.xml, and what is decided once everything is read: the nodes and their LANs, the
//! weights, the rules placed on their VIPs; and [`convert`], the whole conversion.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use roxmltree::Document;

use super::emit::{str_key, Model, NodeOut, RuleOut};
use super::walk::{ip, sanitize, Conv, Member};
use super::{Conversion, ImportError, Options, Source, Warning};

impl Conv<'_> {
    // ---- cluster.xml ----

    pub(super) fn cluster(&mut self, doc: &Document) -> Result<(), ImportError> {
        let root = doc.root_element();
        if !root.has_tag_name("cluster") {
            return Err(self.invalid(root, format!("<{}>", root.tag_name().name()), "expected <cluster> as the root of cluster.xml"));
        }
        for lans in Self::elements(root) {
            if !lans.has_tag_name("lans") {
                self.unknown_element(lans, "not known to the converter");
                continue;
            }
            self.known_attrs(lans, &["port", "pulse", "mlost_count", "slost_count"]);
            for a in ["port", "pulse", "mlost_count", "slost_count"] {
                if let Some(v) = self.attr(lans, a) {
                    self.warn(lans, format!("<lans {a}=\"{v}\">"), "SafeKit's cluster-wide protocol, not the module's: farm's heartbeat comes from <farm> (or farm's defaults)");
                }
            }
            for lan in Self::elements(lans) {
                if !lan.has_tag_name("lan") {
                    self.unknown_element(lan, "not known to the converter");
                    continue;
                }
                self.known_attrs(lan, &["name", "command", "console", "framework"]);
                for a in ["command", "console", "framework"] {
                    if lan.attribute(a).is_some() {
                        self.notes.push(format!("<lan {a}>: SafeKit's distributed commands and console; farmctl acts on its own node"));
                    }
                }
                let name = self.attr(lan, "name").unwrap_or_default();
                let mut nodes = Vec::new();
                for node in Self::elements(lan) {
                    if !node.has_tag_name("node") {
                        self.unknown_element(node, "not known to the converter");
                        continue;
                    }
                    self.known_attrs(node, &["name", "addr", "laddr"]);
                    if let Some(l) = self.attr(node, "laddr") {
                        self.warn(node, format!("<node laddr=\"{l}\">"), "farm has no NAT between nodes: heartbeats must come from the address in addrs (addr kept)");
                    }
                    match (self.attr(node, "name"), self.attr(node, "addr")) {
                        (Some(nm), Some(a)) => {
                            let at = self.at(node);
                            nodes.push((nm, a, at));
                        }
                        _ => self.warn(node, "<node>", "expected name and addr: ignored"),
                    }
                }
                self.lan_nodes.push((name, nodes));
            }
        }
        Ok(())
    }

    // ---- after the walk ----

    /// The nodes and heartbeat LANs.
    pub(super) fn nodes(&mut self) -> Result<(), ImportError> {
        let mut lans: Vec<String> = self.farm_lans.clone();
        if lans.is_empty() {
            lans = self.lan_nodes.iter().map(|(l, _)| l.clone()).collect();
            if !lans.is_empty() {
                self.notes.push(format!("no <farm><lan>: every LAN of cluster.xml carries heartbeats ({lans:?})"));
            }
        }
        for (l, _) in &self.lan_nodes {
            if !lans.contains(l) {
                self.notes.push(format!("LAN {l:?} of cluster.xml is not used by this module's <farm>: left out"));
            }
        }
        let mut used: Vec<(String, Vec<Member>)> = Vec::new();
        for l in &lans {
            match self.lan_nodes.iter().find(|(n, _)| n == l) {
                Some(x) => used.push(x.clone()),
                None => {
                    return Err(ImportError::Invalid {
                        at: self.file.clone(),
                        what: format!("<lan name=\"{l}\">"),
                        why: "no such LAN with nodes: give the cluster.xml that defines it (SAFEVAR/cluster/cluster.xml)".into(),
                    })
                }
            }
        }
        let Some((first_lan, first)) = used.first().cloned() else {
            return Err(ImportError::Invalid {
                at: self.file.clone(),
                what: "<farm>".into(),
                why: "no nodes: give cluster.xml (SAFEVAR/cluster/cluster.xml) as the second file".into(),
            });
        };
        let mut nodes: Vec<NodeOut> = Vec::new();
        for (name, addr, at) in &first {
            let Some(a) = ip(addr) else {
                return Err(ImportError::Invalid { at: at.clone(), what: format!("<node addr=\"{addr}\">"), why: "expected an IP address: farm's heartbeats read no DNS name".into() });
            };
            if sanitize(name) != *name {
                return Err(ImportError::Invalid { at: at.clone(), what: format!("<node name=\"{name}\">"), why: "expected a name of characters [A-Za-z0-9_.-]".into() });
            }
            nodes.push(NodeOut { name: name.clone(), addrs: vec![a], weight: None });
        }
        let mut kept = vec![first_lan];
        'lan: for (lan, members) in used.iter().skip(1) {
            let mut addrs = Vec::new();
            for n in &nodes {
                match members.iter().find(|(nm, _, _)| *nm == n.name).and_then(|(_, a, _)| ip(a)) {
                    Some(a) => addrs.push(a),
                    None => {
                        self.warnings.push(Warning {
                            at: self.file.clone(),
                            what: format!("<lan name=\"{lan}\">"),
                            why: format!("node {} has no IP address on it: farm needs every node on every heartbeat LAN: LAN left out", n.name),
                        });
                        continue 'lan;
                    }
                }
            }
            for (n, a) in nodes.iter_mut().zip(addrs) {
                n.addrs.push(a);
            }
            kept.push(lan.clone());
        }
        self.m.nodes = nodes;
        self.m.lans = kept;
        let pulse = self.m.pulse.unwrap_or(Duration::from_millis(100));
        self.m.dead_after = Some(pulse * self.slost_count.unwrap_or(10));
        Ok(())
    }

    /// Weights from `<host power>`.
    pub(super) fn weights(&mut self) {
        let hosts = std::mem::take(&mut self.hosts);
        let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
        for h in &hosts {
            let Some(node) = self.m.nodes.iter_mut().find(|n| n.name == h.name) else {
                self.warnings.push(Warning { at: h.at.clone(), what: format!("<host name=\"{}\">", h.name), why: "no such node in cluster.xml: ignored".into() });
                continue;
            };
            let power = h.power.trim().parse::<u32>();
            if let Some((p, at)) = seen.get(&h.name) {
                if *p != h.power {
                    let why = format!("farm has one weight per node: the power {p} of {at} is kept");
                    self.warnings.push(Warning { at: h.at.clone(), what: format!("<host name=\"{}\" power=\"{}\">", h.name, h.power), why });
                }
                continue;
            }
            seen.insert(h.name.clone(), (h.power.clone(), h.at.clone()));
            match power {
                Ok(0) => self.warnings.push(Warning {
                    at: h.at.clone(),
                    what: format!("<host name=\"{}\" power=\"0\">", h.name),
                    why: "farm weights are 1-1000: weight left at 1; `farmctl drain` on that node sends its clients elsewhere".into(),
                }),
                Ok(p) if p > 1000 => {
                    node.weight = Some(1000);
                    self.warnings.push(Warning { at: h.at.clone(), what: format!("<host power=\"{p}\">"), why: "farm weights are 1-1000: weight 1000".into() });
                }
                Ok(1) => {}
                Ok(p) => node.weight = Some(p),
                Err(_) => self.warnings.push(Warning { at: h.at.clone(), what: format!("<host power=\"{}\">", h.power), why: "expected a whole number: weight left at 1".into() }),
            }
        }
        // A group whose <cluster> leaves nodes out: farm's rules apply on every node.
        for (g, has) in self.group_has_cluster.clone().into_iter().enumerate() {
            let names: Vec<&str> = hosts.iter().filter(|h| h.group == g).map(|h| h.name.as_str()).collect();
            let missing: Vec<String> = self.m.nodes.iter().filter(|n| !names.contains(&n.name.as_str())).map(|n| n.name.clone()).collect();
            if has && !missing.is_empty() {
                let at = hosts.iter().find(|h| h.group == g).map_or(self.file.clone(), |h| h.at.clone());
                self.warnings.push(Warning {
                    at,
                    what: "<group><cluster>".into(),
                    why: format!("leaves out {}: farm spreads every rule over every node (a node can only be drained as a whole)", missing.join(", ")),
                });
            }
        }
    }

    /// The rules placed on their VIPs; overlapping ones dropped (farm refuses overlaps).
    pub(super) fn place_rules(&mut self) -> Result<(), ImportError> {
        let rules = std::mem::take(&mut self.rules);
        for r in &rules {
            if let Some(v) = r.vip.filter(|v| !self.m.vips.contains(v)) {
                self.warnings.push(Warning { at: r.origin.clone(), what: format!("<rule virtual_addr=\"{v}\">"), why: "not a VIP of this module: rule not converted".into() });
            }
        }
        let mut placed = Vec::new();
        for vip in self.m.vips.clone() {
            let mut mine: Vec<RuleOut> = Vec::new();
            for r in rules.iter().filter(|r| r.vip.is_none_or(|v| v == vip)) {
                match mine.iter().find(|m| m.proto == r.proto && m.ports.0 <= r.ports.1 && r.ports.0 <= m.ports.1) {
                    Some(m) if m.ports == r.ports && m.affinity == r.affinity => {}
                    Some(m) => {
                        let why = format!("{} ports {} overlap the rule at {} on VIP {vip}: farm's rules must not overlap: not converted (the first one applies)", r.proto, r.ports_text(), m.origin);
                        self.warnings.push(Warning { at: r.origin.clone(), what: format!("<rule port=\"{}\">", r.ports_text()), why });
                    }
                    None => mine.push(RuleOut { vip: Some(vip), ..r.clone() }),
                }
            }
            if mine.is_empty() {
                return Err(ImportError::Invalid {
                    at: self.file.clone(),
                    what: format!("<virtual_addr addr=\"{vip}\">"),
                    why: "no tcp or udp <rule> for this VIP: expected at least one in <loadbalancing_list>".into(),
                });
            }
            placed.push(mine);
        }
        self.m.vip_rules = placed;
        Ok(())
    }
}

pub(super) fn convert(userconfig: Source<'_>, cluster: Option<Source<'_>>, opts: &Options) -> Result<Conversion, ImportError> {
    fn parse<'t>(s: Source<'t>) -> Result<Document<'t>, ImportError> {
        // SafeKit's files start with <!DOCTYPE safe>.
        let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
        Document::parse_with_options(s.text, opts).map_err(|source| ImportError::Xml { file: s.name.to_string(), source })
    }
    let udoc = parse(userconfig)?;
    let cdoc = cluster.map(parse).transpose()?;
    let mut c = Conv {
        opts,
        file: userconfig.name.to_string(),
        macros: HashMap::new(),
        warned_vars: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        m: Model {
            module: opts.module.clone(),
            cluster_id: opts.cluster_id,
            secret_file: opts.secret_file.clone(),
            token_file: opts.token_file.clone(),
            ..Model::default()
        },
        farm_lans: Vec::new(),
        lan_nodes: Vec::new(),
        slost_count: None,
        rules: Vec::new(),
        hosts: Vec::new(),
        group_has_cluster: Vec::new(),
        interface_check: false,
        polltimer: Duration::from_secs(30),
    };
    c.m.sources.push(userconfig.name.to_string());
    c.userconfig(&udoc)?;
    if let (Some(doc), Some(src)) = (&cdoc, cluster) {
        c.file = src.name.to_string();
        c.m.sources.push(src.name.to_string());
        if !c.lan_nodes.is_empty() {
            c.notes.push("userconfig.xml names its nodes (<lan><node>, SafeKit 7.1): cluster.xml's LANs of the same name are used instead".into());
            c.lan_nodes.clear();
        }
        c.cluster(doc)?;
    }
    c.file = userconfig.name.to_string();
    c.nodes()?;
    c.weights();
    c.place_rules()?;
    if !c.m.vips.is_empty() {
        if let Some(u) = &opts.uplink {
            c.m.uplink = Some((u.clone(), "farmctl import --uplink".into()));
        } else if c.m.uplink.is_none() {
            c.m.uplink = Some(("net_af_packet0,iface=eth0".into(), "PLACEHOLDER: set the NIC the data plane takes over".into()));
            c.warnings.push(Warning {
                at: userconfig.name.to_string(),
                what: "<interface>".into(),
                why: "no interface name (SafeKit finds it from the VIP's subnet): [dataplane] uplink is a placeholder (eth0); set it, or import with --uplink".into(),
            });
        }
        if c.interface_check {
            let comment = "<interface check=\"on\"> (SafeKit's default): WAIT while the link is down".to_string();
            let keys = vec![str_key("interface", "uplink")];
            c.push_checker("intf.uplink".into(), "interface", keys, "wait", comment);
            // The link checker first, as SafeKit's interface checker runs before the others.
            let intf = c.m.checkers.pop().expect("pushed");
            c.m.checkers.insert(0, intf);
        }
        c.notes.push("the data plane takes over the uplink NIC: the node address moves to the TAP (dataplane.tap_addrs), the VIP to lo (see vagrant/provision-node.sh)".into());
    }
    c.notes.push("farmd's API listens on port 9010 like SafeKit's web service: stop SafeKit on the node first (or change [api] listen)".into());
        c.m.warnings = c.warnings.iter().map(ToString::to_string).collect();
    Ok(Conversion { toml: c.m.to_toml(), warnings: c.warnings, notes: c.notes })
}
