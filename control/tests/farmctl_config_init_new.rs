//! `farmctl config init --nodes ... --vip ...`: a new cluster from nothing (configuration,
//! secret, token, hash seed), on the real binary in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use farm_config::seed::seed_weakness;
use farm_config::{Config, HashSeedFrom};

fn farmctl(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farmctl")).arg("--config").arg(config).args(args).output().expect("run farmctl")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const NEW: &[&str] =
    &["config", "init", "--vip", "198.18.0.100", "--nodes", "n1=198.18.0.1", "n2=198.18.0.2", "--module", "web", "--port", "80", "--port", "5000-5100/udp", "--uplink", "net_af_packet0,iface=eth1"];

#[test]
fn init_from_nothing_writes_a_valid_configuration_and_private_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("etc/farm.toml");
    let (secret, token) = (dir.path().join("etc/web.secret"), dir.path().join("etc/web.token"));

    let o = farmctl(&cfg_path, NEW);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for p in [&cfg_path, &secret, &token] {
        assert!(out.contains(&format!("wrote {}", p.display())), "{out}");
        assert!(out.contains(&format!("  {}", p.display())), "{} is in the list to copy: {out}", p.display());
    }
    assert_eq!((mode(&secret), mode(&token), mode(&cfg_path)), (0o600, 0o600, 0o640));
    for p in [&secret, &token] {
        let s = fs::read_to_string(p).unwrap();
        assert!(s.trim().len() == 64 && s.trim().bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
    }
    assert_ne!(fs::read(&secret).unwrap(), fs::read(&token).unwrap());

    // What the options said, a random seed and cluster id, comments for the rest.
    let written = fs::read_to_string(&cfg_path).unwrap();
    assert!(written.starts_with("# farm configuration of module \"web\""), "{written}");
    assert!(written.contains("# [[checker]]") && written.contains("# [scripts]"), "{written}");
    let cfg = Config::load(&cfg_path).unwrap();
    assert_eq!(cfg.module.name.to_string(), "web");
    assert_eq!(cfg.nodes.len(), 2);
    assert_eq!(cfg.vips[0].rules.len(), 3, "tcp 80, udp 5000-5100, icmp");
    assert_eq!(cfg.module.secret_file, secret);
    assert_eq!(cfg.api.token_file.as_deref(), Some(token.as_path()));
    assert_eq!(cfg.module.hash_seed_from, HashSeedFrom::Config);
    assert_eq!(seed_weakness(cfg.module.hash_seed, cfg.module.cluster_id), None);
    assert_eq!(cfg.read_secret().unwrap().len(), 64);

    // `config check` accepts it, without a warning.
    let o = farmctl(&cfg_path, &["config", "check", cfg_path.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).starts_with("OK: "), "{}", text(&o));
    assert!(!text(&o).contains("warning"), "{}", text(&o));

    // A second run refuses, names the file, and changes nothing.
    let before: Vec<Vec<u8>> = [&cfg_path, &secret, &token].iter().map(|p| fs::read(p).unwrap()).collect();
    let o = farmctl(&cfg_path, NEW);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("refusing to overwrite") && err.contains(cfg_path.to_str().unwrap()) && err.contains("--force"), "{err}");
    let after: Vec<Vec<u8>> = [&cfg_path, &secret, &token].iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(before, after);
    // Any one of the three existing is enough to refuse, and it is named.
    fs::remove_file(&cfg_path).unwrap();
    fs::remove_file(&token).unwrap();
    let o = farmctl(&cfg_path, NEW);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains(secret.to_str().unwrap()) && !cfg_path.exists() && !token.exists(), "{}", text(&o));

    // --force: new files, all valid, modes kept private.
    let o = farmctl(&cfg_path, &[NEW, &["--force"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(fs::read(&secret).unwrap(), before[1]);
    assert_eq!((mode(&secret), mode(&token), mode(&cfg_path)), (0o600, 0o600, 0o640));
    let again = Config::load(&cfg_path).unwrap();
    assert_ne!(again.module.hash_seed, cfg.module.hash_seed);
    assert_eq!(fs::read_dir(dir.path().join("etc")).unwrap().count(), 3, "no temporary file left");

    // Without --nodes, config init completes an existing configuration as before.
    let o = farmctl(&cfg_path, &["config", "init", "--seed-only"]);
    assert_eq!(o.status.code(), Some(1), "a strong seed is kept: {}", text(&o));
}

#[test]
fn init_from_nothing_without_uplink_or_vip_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    // No uplink: the data plane is written off (and said so), the file valid.
    let p = dir.path().join("a.toml");
    let o = farmctl(&p, &["config", "init", "--nodes", "n1=198.18.0.1,198.19.0.1", "--nodes", "n2=198.18.0.2,198.19.0.2", "--vip", "198.18.0.100", "--on-port"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no --uplink"), "{}", text(&o));
    let cfg = Config::load(&p).unwrap();
    assert!(!cfg.dataplane.enabled);
    assert_eq!(cfg.nodes[1].addrs.len(), 2, "two heartbeat LANs");
    assert!(dir.path().join("farm.secret").exists(), "module farm by default: farm.secret next to the file");
    // No VIP: control-only.
    let p = dir.path().join("b.toml");
    let o = farmctl(&p, &["config", "init", "--nodes", "n1=198.18.0.1", "--module", "b", "--cluster-id", "42"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg = Config::load(&p).unwrap();
    assert!(cfg.vips.is_empty() && !cfg.dataplane.enabled && cfg.module.cluster_id == 42);
    // Invalid options: nothing written, the reason given.
    let p = dir.path().join("c.toml");
    for (args, why) in [
        (&["--nodes", "n1"][..], "NAME=ADDR"),
        (&["--nodes", "n1=not-an-ip"][..], "expected an IP address"),
        (&["--nodes", "n1=198.18.0.1", "--vip", "198.18.0.100", "--port", "80/sctp"][..], "tcp or udp"),
        (&["--nodes", "bad name=198.18.0.1"][..], "node[0].name"),
        (&["--nodes", "n1=198.18.0.1", "--module", "Web!"][..], "module.name"),
    ] {
        let o = farmctl(&p, &[&["config", "init"], args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(why), "{args:?}: {}", text(&o));
        assert!(!p.exists() && !dir.path().join("c.secret").exists());
    }
}
