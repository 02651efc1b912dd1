//! The conversion on small documents: each mapping, each warning, each error.

use std::time::Duration;

use farm_config::{Affinity, Check, Config, InterfaceTarget, ProcessMatch, Proto};

use super::walk::duration;
use super::*;

fn opts() -> Options {
    Options {
        module: "web".into(),
        cluster_id: 7,
        secret_file: "/etc/farm/web.secret".into(),
        token_file: "/etc/farm/web.token".into(),
        scripts_dir: "/etc/farm/web".into(),
        uplink: None,
    }
}

const CLUSTER: &str = r#"<cluster><lans>
  <lan name="default"><node name="n1" addr="198.18.0.1"/><node name="n2" addr="198.18.0.2"/></lan>
  <lan name="second"><node name="n1" addr="198.19.0.1"/><node name="n2" addr="198.19.0.2"/></lan>
</lans></cluster>"#;

/// A farm module around `body` (inside <service>), with one VIP and a TCP 80 rule unless
/// `body` has its own <vip>.
fn module(body: &str) -> String {
    let vip = if body.contains("<vip") {
        String::new()
    } else {
        r#"<vip><interface_list><interface name="eth1"><virtual_interface type="vmac_invisible">
             <virtual_addr addr="198.18.0.100" where="alias" check="off"/></virtual_interface></interface></interface_list>
           <loadbalancing_list><group name="g"><rule port="80" proto="tcp" filter="on_addr"/></group></loadbalancing_list></vip>"#
            .to_string()
    };
    format!(r#"<!DOCTYPE safe><safe><service mode="farm"><farm><lan name="default"/></farm>{vip}{body}</service></safe>"#)
}

fn convert_ok(userconfig: &str) -> (Conversion, Config) {
    let c = convert(Source { name: "u.xml", text: userconfig }, Some(Source { name: "c.xml", text: CLUSTER }), &opts()).unwrap();
    let cfg = Config::from_str(&c.toml, "out.toml").unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
    (c, cfg)
}

fn warned(c: &Conversion, what: &str) -> bool {
    c.warnings.iter().any(|w| w.to_string().contains(what))
}

#[test]
fn durations_take_the_attributes_unit_without_one() {
    assert_eq!(duration("24", "h"), Some(Duration::from_secs(86_400)));
    assert_eq!(duration("24h", "s"), Some(Duration::from_secs(86_400)));
    assert_eq!(duration("700ms", "s"), Some(Duration::from_millis(700)));
    assert_eq!(duration("200", "ms"), Some(Duration::from_millis(200)));
    assert_eq!(duration("1d", "s"), Some(Duration::from_secs(86_400)));
    assert_eq!(duration("0.5", "s"), Some(Duration::from_millis(500)));
    assert_eq!(duration("10 parsecs", "s"), None);
    assert_eq!(duration("", "s"), None);
    assert_eq!(emit::fmt_duration(Duration::from_millis(1600)), "1600ms");
    assert_eq!(emit::fmt_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(emit::fmt_duration(Duration::ZERO), "0s");
}

#[test]
fn a_minimal_module_converts_without_warnings() {
    let (c, cfg) = convert_ok(&module(""));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(cfg.nodes.iter().map(|n| n.name.to_string()).collect::<Vec<_>>(), ["n1", "n2"]);
    assert_eq!(cfg.nodes[0].addrs.len(), 1, "only the LAN <farm> names");
    assert_eq!(cfg.vips.len(), 1);
    assert_eq!((cfg.vips[0].rules[0].proto, cfg.vips[0].rules[0].affinity), (Proto::Tcp, Affinity::OnAddr));
    assert_eq!(cfg.dataplane.uplink.as_ref().map(|u| u.device_name().to_string()).as_deref(), Some("net_af_packet0"));
    assert!(matches!(cfg.checkers[0].check, Check::Interface { target: InterfaceTarget::Uplink }), "interface check defaults to on");
    assert!(c.notes.iter().any(|n| n.contains("LAN \"second\"")), "{:?}", c.notes);
    assert_eq!((cfg.heartbeat.pulse, cfg.heartbeat.dead_after), (Duration::from_millis(100), Duration::from_secs(1)));
}

#[test]
fn macros_are_substituted_everywhere_and_unknown_ones_reported() {
    let xml = r#"<safe><macro name="IP" value="198.18.0.100"/><macro name="PORT" value="8080"/><macro name="ADDR" value="%IP%"/>
      <service mode="farm" maxloop="5" loop_interval="%HOURS%">
      <farm><lan name="default"/></farm>
      <vip><interface_list><interface check="off" name="eth1"><virtual_interface><virtual_addr addr="%ADDR%"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group><rule port="%PORT%" proto="tcp" filter="on_port"/><rule virtual_addr="%IP%" port="%PORT%" proto="udp" filter="on_addr"/></group></loadbalancing_list></vip>
      </service></safe>"#;
    let (c, cfg) = convert_ok(xml);
    assert_eq!(cfg.vips[0].addr.to_string(), "198.18.0.100");
    assert_eq!(cfg.vips[0].rules.len(), 2);
    assert_eq!(cfg.vips[0].rules[0].affinity, Affinity::OnPort);
    assert!(cfg.vips[0].rules[0].matches(Proto::Tcp, 8080));
    assert!(cfg.checkers.is_empty(), "check=\"off\": no interface checker");
    assert_eq!(cfg.restart.maxloop, 5);
    assert!(warned(&c, "%HOURS%") && warned(&c, "environment variable HOURS"), "{:?}", c.warnings);
    assert!(warned(&c, "loop_interval=\"%HOURS%\""), "an unparsable duration is reported: {:?}", c.warnings);
}

#[test]
fn rules_filters_and_overlaps() {
    let body = r#"<vip><interface_list><interface name="eth1"><virtual_interface type="vmac_directed">
        <virtual_addr addr="198.18.0.100"/><virtual_addr addr="2001:db8::100"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="a">
        <rule port="80" proto="tcp" filter="on_addr"/>
        <rule port="5000-5100" proto="udp" filter="on_ipid"/>
        <rule port="*" proto="tcp" filter="on_port"/>
        <rule port="80" proto="tcp" filter="on_addr"/>
        <rule virtual_addr="2001:db8::100" port="443" proto="udp" filter="on_port"/>
        <rule virtual_addr="198.18.9.9" port="22" proto="tcp" filter="on_addr"/>
        <rule proto="arp" filter="on_addr"/>
      </group></loadbalancing_list></vip>"#;
    let (c, cfg) = convert_ok(&module(body));
    assert_eq!(cfg.vips.len(), 2);
    // tcp 80, udp 5000-5100 (on_ipid as on_addr); "*" overlaps 80: dropped; the duplicate 80: silently one.
    assert_eq!(cfg.vips[0].rules.len(), 2, "{}", c.toml);
    assert_eq!(cfg.vips[1].rules.len(), 3, "the VIP-specific udp 443 too: {}", c.toml);
    assert!(warned(&c, "<rule filter=\"on_ipid\">: farm cannot hash on the IP id"), "{:?}", c.warnings);
    assert!(warned(&c, "<rule port=\"all\">") && warned(&c, "overlap"), "{:?}", c.warnings);
    assert!(warned(&c, "<rule virtual_addr=\"198.18.9.9\">"), "{:?}", c.warnings);
    assert!(warned(&c, "vmac_directed"), "{:?}", c.warnings);
    assert!(!warned(&c, "arp"), "an ARP rule is what farm does anyway: {:?}", c.warnings);
    assert_eq!(c.warnings.iter().filter(|w| w.what.contains("port=\"all\"")).count(), 2, "once per VIP");
}

#[test]
fn weights_from_host_power() {
    let body = r#"<vip><interface_list><interface name="eth1"><virtual_interface><virtual_addr addr="198.18.0.100"/></virtual_interface></interface></interface_list>
      <loadbalancing_list>
        <group name="a"><cluster><host name="n1" power="3"/><host name="n2" power="0"/><host name="ghost" power="1"/></cluster>
          <rule port="80" proto="tcp" filter="on_addr"/></group>
        <group name="b"><cluster><host name="n1" power="5"/></cluster><rule port="443" proto="tcp" filter="on_addr"/></group>
      </loadbalancing_list></vip>"#;
    let (c, cfg) = convert_ok(&module(body));
    assert_eq!(cfg.nodes[0].weight.get(), 3);
    assert_eq!(cfg.nodes[1].weight.get(), 1);
    assert!(warned(&c, "power=\"0\""), "{:?}", c.warnings);
    assert!(warned(&c, "<host name=\"ghost\">"), "{:?}", c.warnings);
    assert!(warned(&c, "one weight per node"), "{:?}", c.warnings);
    assert!(warned(&c, "leaves out n2"), "group b's <cluster> leaves n2 out: {:?}", c.warnings);
}

#[test]
fn checkers_errd_and_scripts() {
    let body = r#"<user nicestoptimeout="120" forcestoptimeout="30s" logging="none"><var name="A" value="1"/></user>
      <check>
        <tcp ident="web" when="both"><to addr="127.0.0.1" port="80" interval="3" timeout="2"/></tcp>
        <tcp ident="stopper" action="stop"><to addr="localhost" port="81"/></tcp>
        <ping ident="gw"><to addr="198.18.0.254"/></ping>
        <custom ident="mine" exec="/usr/local/bin/check" arg="-v" action="restart"/>
        <custom ident="rel" exec="mycheck" action="wait"/>
        <module name="db"><to addr="198.18.0.50" port="9010"/></module>
      </check>
      <errd polltimer="10">
        <proc name="httpd" atleast="2" action="restart" class="both" start_after="4"/>
        <proc name="java" argregex=".*tomcat.*" class="prim"/>
        <proc name="x" atleast="-1" atmax="3" action="restart" class="both"/>
        <proc name="h" action="myhandler" class="h"/>
      </errd>"#;
    let (c, cfg) = convert_ok(&module(body));
    let names: Vec<String> = cfg.checkers.iter().map(|k| k.name.to_string()).collect();
    assert_eq!(names, ["intf.uplink", "tcp.web", "tcp.stopper", "ping.gw", "custom.mine", "custom.rel", "proc.httpd", "proc.java"], "{}", c.toml);
    let web = &cfg.checkers[1];
    assert_eq!((web.interval, web.timeout, web.fail_after, web.ok_after), (Duration::from_secs(3), Duration::from_secs(2), 1, 1));
    assert_eq!(web.action, farm_config::Action::Restart);
    assert_eq!(cfg.checkers[2].action, farm_config::Action::Stopstart);
    assert!(warned(&c, "<tcp action=\"stop\">"), "{:?}", c.warnings);
    assert_eq!(cfg.checkers[3].action, farm_config::Action::Wait, "ping defaults to wait");
    assert!(warned(&c, "<custom arg=\"-v\">") && warned(&c, "rewrite it"), "{:?}", c.warnings);
    assert!(warned(&c, "<module>"), "{:?}", c.warnings);
    assert!(matches!(&cfg.checkers[5].check, Check::Custom { script } if script == std::path::Path::new("/etc/farm/web/mycheck")), "{:?}", cfg.checkers[5].check);
    let httpd = &cfg.checkers[6];
    assert!(matches!(&httpd.check, Check::Process { matcher: ProcessMatch::Name(n), at_least: 2 } if n == "httpd"), "{:?}", httpd.check);
    assert_eq!((httpd.interval, httpd.start_delay), (Duration::from_secs(10), Duration::from_secs(30)));
    let java = &cfg.checkers[7];
    assert!(matches!(&java.check, Check::Process { matcher: ProcessMatch::Pattern(_), .. }), "{:?}", java.check);
    assert_eq!(java.action, farm_config::Action::Stopstart, "errd's default action is stopstart");
    assert!(warned(&c, "<proc class=\"prim\">") && warned(&c, "argregex"), "{:?}", c.warnings);
    assert!(warned(&c, "<proc atleast=\"-1\">") && warned(&c, "<proc atmax>"), "{:?}", c.warnings);
    assert!(warned(&c, "<proc action=\"myhandler\">"), "{:?}", c.warnings);
    assert_eq!(cfg.scripts.timeout, Duration::from_secs(120));
    assert_eq!(cfg.scripts.stop_drain_timeout, Duration::from_secs(120));
    assert_eq!(cfg.scripts.env.get("A").map(String::as_str), Some("1"));
    assert!(warned(&c, "logging=\"none\""), "{:?}", c.warnings);
    assert!(c.notes.iter().any(|n| n.contains("copy SafeKit's start_both")), "{:?}", c.notes);
}

#[test]
fn unknown_and_mirror_only_parts_are_reported() {
    let body = r#"<rfs><replicated dir="/data"/></rfs><heart/><vhost/><failover><![CDATA[ x ]]></failover><bogus/>"#;
    let xml = module(body).replace("<service mode=\"farm\"", "<service mode=\"farm\" frobnicate=\"yes\" boot=\"auto\"");
    let (c, cfg) = convert_ok(&xml);
    for what in ["<rfs>", "<heart>", "<vhost>", "<failover>", "<bogus>", "<service frobnicate=\"yes\">", "<service boot=\"auto\">"] {
        assert!(c.warnings.iter().any(|w| w.what == what), "{what} not in {:?}", c.warnings);
    }
    assert!(cfg.module.autostart);
    assert!(c.toml.contains("#   - u.xml:"), "the warnings are comments at the top: {}", c.toml);
    // Lines are right.
    let w = c.warnings.iter().find(|w| w.what == "<rfs>").unwrap();
    assert_eq!(w.at, "u.xml:3", "the line of <rfs>");
}

#[test]
fn cluster_lans_and_errors() {
    // Two LANs, both used: two addresses per node; a node missing on the second drops it.
    let xml = module("").replace(r#"<farm><lan name="default"/></farm>"#, r#"<farm pulse="50" slost_count="20"><lan name="default"/><lan name="second"/></farm>"#);
    let (c, cfg) = convert_ok(&xml);
    assert_eq!(cfg.nodes[1].addrs.iter().map(ToString::to_string).collect::<Vec<_>>(), ["198.18.0.2", "198.19.0.2"]);
    assert_eq!((cfg.heartbeat.pulse, cfg.heartbeat.dead_after), (Duration::from_millis(50), Duration::from_secs(1)));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let holed = CLUSTER.replace(r#"<node name="n2" addr="198.19.0.2"/>"#, "");
    let c = convert(Source { name: "u.xml", text: &xml }, Some(Source { name: "c.xml", text: &holed }), &opts()).unwrap();
    assert!(warned(&c, "node n2 has no IP address on it"), "{:?}", c.warnings);
    Config::from_str(&c.toml, "x").unwrap();

    let err = |u: &str, cl: Option<&str>| convert(Source { name: "u.xml", text: u }, cl.map(|t| Source { name: "c.xml", text: t }), &opts()).unwrap_err().to_string();
    assert!(err(&module(""), None).contains("no such LAN"), "{}", err(&module(""), None));
    assert!(err(&module("").replace("mode=\"farm\"", "mode=\"mirror\""), Some(CLUSTER)).contains("only farm modules"));
    assert!(err("<safe><service", Some(CLUSTER)).contains("u.xml: not an XML file"));
    assert!(err(&module(""), Some(&CLUSTER.replace("198.18.0.1", "web1.example"))).contains("expected an IP address"));
    let no_rule = module("").replace(r#"<rule port="80" proto="tcp" filter="on_addr"/>"#, "");
    assert!(err(&no_rule, Some(CLUSTER)).contains("no tcp or udp <rule>"), "{}", err(&no_rule, Some(CLUSTER)));
    // SafeKit 7.1: the nodes in userconfig.xml, no cluster.xml.
    let legacy = module("").replace(r#"<lan name="default"/>"#, r#"<lan name="default"><node name="a" addr="198.18.0.1"/><node name="b" addr="198.18.0.2"/></lan>"#);
    let c = convert(Source { name: "u.xml", text: &legacy }, None, &opts()).unwrap();
    assert!(c.toml.contains("name = \"b\""), "{}", c.toml);
}

#[test]
fn a_module_without_vip_is_control_only() {
    let (c, cfg) = convert_ok(&module("<vip/>"));
    assert!(cfg.vips.is_empty() && !cfg.dataplane.enabled, "{}", c.toml);
    assert!(cfg.checkers.is_empty(), "no uplink to check");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn the_module_name_comes_from_safekits_directory() {
    use std::path::Path;
    assert_eq!(module_name_from_path(Path::new("/opt/safekit/modules/Apache_Farm/conf/userconfig.xml")).as_deref(), Some("apache_farm"));
    assert_eq!(module_name_from_path(Path::new("/tmp/farm.safe/conf/userconfig.xml")).as_deref(), Some("farm"));
    assert_eq!(module_name_from_path(Path::new("/tmp/userconfig.xml")), None);
}
