//! Every file in the repository's `configs/` directory parses and validates (new files are
//! picked up automatically), and a few facts about the shipped examples hold.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use farm_config::{
    Affinity, Check, Config, HashSeedFrom, InterfaceTarget, Mode, Ports, Proto, Takeover, Uplink,
};

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn load(name: &str) -> Config {
    let path = configs_dir().join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_config_file_parses() {
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(configs_dir()).expect("configs/ exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        if let Err(e) = Config::load(&path) {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "invalid example configs:\n{}",
        failures.join("\n")
    );
    assert!(
        n >= 5,
        "expected at least the 5 shipped examples, found {n}"
    );
}

#[test]
fn apache_farm() {
    let c = load("apache-farm.toml");
    assert_eq!(c.module.name.as_str(), "web");
    assert_eq!(c.module.hash_seed, 0xf000_f1a4_c577_ead1);
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::Config);
    assert_eq!(c.module.table_file, PathBuf::from("/dev/shm/farm-web"));
    assert_eq!(c.module.log_dir, PathBuf::from("/var/log/farm/web"));
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(
        c.nodes.iter().map(|n| n.id.get()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(c.node_by_name("web3").map(|n| n.weight.get()), Some(2));
    let vip = c.vip("198.18.1.100".parse().unwrap()).expect("the VIP");
    let rule = vip.rule_for(Proto::Tcp, 80).expect("tcp/80 rule");
    assert_eq!(rule.affinity, Affinity::OnAddr);
    assert!(vip.rule_for(Proto::Tcp, 443).is_none());
    assert!(vip.rule_for(Proto::Icmp, 0).is_some());
    assert_eq!(c.dataplane.uplink, Some(Uplink::Pci("0000:03:00.0".into())));
    assert_eq!(c.dataplane.file_prefix, "farm-web");
    assert_eq!(
        c.scripts.start_both,
        Some(PathBuf::from("/etc/farm/web/start_both"))
    );
    assert!(matches!(
        c.checkers[0].check,
        Check::Http {
            expect_status: 200,
            ..
        }
    ));
    assert_eq!(c.checkers[0].start_delay, Duration::from_secs(5));
    assert_eq!(c.checkers[2].action, farm_config::Action::Wait);
    assert!(matches!(
        c.checkers[2].check,
        Check::Interface {
            target: InterfaceTarget::Uplink
        }
    ));
    assert_eq!(c.hash_key(), farm_table::HashKey::from_seed(0xf000_f1a4_c577_ead1));
}

#[test]
fn generic_tcp_udp() {
    let c = load("generic-tcp-udp.toml");
    assert_eq!(c.buckets(), 8192);
    assert_eq!(c.nodes[0].addrs.len(), 2);
    assert_eq!(c.node_by_id(4).map(|n| n.name.as_str()), Some("d"));
    let v4 = &c.vips[0];
    assert_eq!(
        v4.rule_for(Proto::Tcp, 8050).map(|r| r.affinity),
        Some(Affinity::OnPort)
    );
    assert_eq!(
        v4.rule_for(Proto::Udp, 15000).map(|r| r.ports),
        Some(Ports::Range {
            first: 10000,
            last: 20000
        })
    );
    assert!(v4.rule_for(Proto::Udp, 443).is_none());
    assert!(c.vips[1].addr.is_ipv6());
    assert_eq!(
        c.vips[1].rules[1].ports,
        Ports::Range {
            first: 53,
            last: 53
        }
    );
    assert_eq!(c.dataplane.lcores, Some(vec![2, 3]));
    assert_eq!(
        c.scripts.env.get("SVC_CONF").map(String::as_str),
        Some("/etc/svc/svc.conf")
    );
}

#[test]
fn control_only_and_active_passive() {
    let c = load("control-only-cloud-lb.toml");
    assert!(!c.dataplane.enabled);
    assert!(c.vips.is_empty());

    let c = load("active-passive.toml");
    assert_eq!(c.assignment.mode, Mode::Failover);
    assert_eq!(c.assignment.takeover, Takeover::Majority);
    assert_eq!(
        c.assignment.witness,
        Some("198.18.4.254".parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        c.nodes.iter().map(|n| n.priority).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(c.checkers[0].action, farm_config::Action::Stopstart);
}

#[test]
fn lab_template_localizes_per_node_paths() {
    let mut c = load("lab.toml");
    for n in &c.nodes {
        for a in &n.addrs {
            let IpAddr::V4(v4) = a else {
                panic!("lab addresses are IPv4")
            };
            assert_eq!(
                v4.octets()[0],
                198,
                "lab addresses must be in 198.18.0.0/15: {a}"
            );
            assert!(
                matches!(v4.octets()[1], 18 | 19),
                "lab addresses must be in 198.18.0.0/15: {a}"
            );
        }
    }
    let n2 = c.local_node(Some("n2")).expect("n2 exists").clone();
    assert_eq!(n2.id.get(), 1);
    c.localize(n2.name.as_str());
    assert_eq!(c.module.table_file, PathBuf::from("/dev/shm/farm-lab-n2"));
    assert_eq!(c.module.run_dir, PathBuf::from("/run/farm-lab/n2/run"));
    assert_eq!(c.dataplane.file_prefix, "farm-lab-n2");
    // farmd puts each node's own address on its TAP.
    let tap: Vec<String> = c
        .dataplane
        .tap_addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(tap, [format!("{}/16", n2.addrs[0])]);
}

#[test]
fn vagrant_lab_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vagrant/farm.toml");
    let mut c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nodes.len(), 3);
    assert!(matches!(c.dataplane.uplink, Some(Uplink::Vdev(ref v)) if v == "net_af_packet0,iface=eth1"), "{:?}", c.dataplane.uplink);
    let web2 = c.local_node(Some("web2")).expect("web2 exists").clone();
    c.localize(web2.name.as_str());
    let tap: Vec<String> = c.dataplane.tap_addrs.iter().map(ToString::to_string).collect();
    assert_eq!(tap, ["198.18.1.12/24"]);
}
