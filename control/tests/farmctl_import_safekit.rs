//! `farmctl import safekit` on the fixtures (tests/fixtures/safekit/), then `farmctl config
//! check` and `config init` on its output: the real binaries in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use farm_config::Config;

fn fixture(module: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/safekit").join(module).join(file)
}

fn farmctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farmctl")).args(args).output().expect("run farmctl")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Imports `module`'s fixtures to `dir/<out>`; returns the exit code and stderr.
fn import(module: &str, out: &Path, extra: &[&str]) -> (i32, String) {
    let (u, c) = (fixture(module, "userconfig.xml"), fixture(module, "cluster.xml"));
    let o = farmctl(&[&["import", "safekit", s(&u), s(&c), "-o", s(out)], extra].concat());
    (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn check_passes(out: &Path) {
    let o = farmctl(&["config", "check", s(out)]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn apache_farm_converts_completely() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("web.toml");
    let (code, err) = import("apache_farm", &out, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning:"), "{err}");
    assert!(err.contains("everything was converted") && err.contains("config init"), "{err}");
    check_passes(&out);
    let cfg = Config::load(&out).unwrap();
    assert_eq!(cfg.module.name.to_string(), "web", "from the output's name");
    assert!(cfg.module.autostart);
    let nodes: Vec<(String, usize, u16)> = cfg.nodes.iter().map(|n| (n.name.to_string(), n.addrs.len(), n.weight.get())).collect();
    assert_eq!(nodes, [("web1".to_string(), 2, 1), ("web2".to_string(), 2, 1), ("web3".to_string(), 2, 2)]);
    assert_eq!(cfg.vips[0].addr.to_string(), "198.18.5.100", "the macro %VIRTUAL_IP%");
    assert_eq!(cfg.vips[0].rules.len(), 2);
    assert_eq!(cfg.checkers.iter().map(|c| c.name.to_string()).collect::<Vec<_>>(), ["intf.uplink", "tcp.HTTP_httpd", "proc.httpd"]);
    assert_eq!(cfg.restart.maxloop, 4);
    assert_eq!(cfg.restart.loop_interval, std::time::Duration::from_secs(12 * 3600), "hours without a unit");
    assert_eq!(cfg.scripts.dir.as_deref(), Some(dir.path().join("web").as_path()));

    // Not over an existing file without --force; with it, yes.
    let before = fs::read(&out).unwrap();
    let (code, err) = import("apache_farm", &out, &[]);
    assert!(code == 1 && err.contains("refusing to overwrite") && err.contains(s(&out)), "{code} {err}");
    assert_eq!(fs::read(&out).unwrap(), before);
    assert_eq!(import("apache_farm", &out, &["--force", "--cluster-id", "9"]).0, 0);
    assert_eq!(Config::load(&out).unwrap().module.cluster_id, 9);

    // The next step: config init makes the secret, the token and the seed; the file stays valid.
    let o = farmctl(&["--config", s(&out), "config", "init"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_passes(&out);
    let cfg = Config::load(&out).unwrap();
    assert_eq!(cfg.read_secret().unwrap().len(), 64);
    assert_eq!(cfg.read_token().unwrap().map(|t| t.len()), Some(64));
}

#[test]
fn generic_farm_converts_and_reports_what_has_no_equivalent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("svc.toml");
    let (code, err) = import("generic_farm", &out, &["--uplink", "0000:03:00.0"]);
    assert_eq!(code, 2, "written, with warnings: {err}");
    check_passes(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    let expected = [
        "userconfig.xml:5: <service automatic_reboot=\"on\">",
        "userconfig.xml:12: <virtual_interface type=\"vmac_directed\">",
        "userconfig.xml:20: <rule filter=\"on_ipid\">",
        "userconfig.xml:25: <rfs>",
        "userconfig.xml:29: <ping action=\"noaction\">",
        "userconfig.xml:35: <proc nameregex=\"worker-[0-9]+\">",
        "userconfig.xml:36: <proc name=\"svc-agent\" service=\"yes\">",
        "cluster.xml:2: <lans port=\"4800\">",
        "cluster.xml:5: <node laddr=\"10.0.0.2\">",
    ];
    for e in expected {
        assert!(warnings.iter().any(|w| w.contains(e)), "{e:?} not in\n{}", warnings.join("\n"));
    }
    assert_eq!(warnings.len(), expected.len(), "{}", warnings.join("\n"));
    assert!(err.contains(&format!("{} warnings", expected.len())), "{err}");
    // The warnings are in the file too, as comments.
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.contains("# NOT CONVERTED") && text.contains("<rule filter=\"on_ipid\">"), "{text}");

    let cfg = Config::load(&out).unwrap();
    // errd: svcd (atleast 2, stopstart) and worker (pattern); the service is not converted.
    let procs: Vec<String> = cfg.checkers.iter().filter(|c| c.check.kind() == "process").map(|c| c.name.to_string()).collect();
    assert_eq!(procs, ["proc.svcd", "proc.worker"]);
    let svcd = cfg.checkers.iter().find(|c| c.name.to_string() == "proc.svcd").unwrap();
    assert_eq!((svcd.interval, svcd.action), (std::time::Duration::from_secs(15), farm_config::Action::Stopstart));
    assert_eq!(cfg.vips[0].rules.len(), 2, "tcp 9000 on_port, udp 5000 (on_ipid as on_addr)");
    assert_eq!(cfg.nodes.len(), 2);
    assert_eq!(cfg.nodes[0].addrs.len(), 1, "the \"repli\" LAN is not the module's");

    // Standard output without -o; the exit code says the same.
    let (u, c) = (fixture("generic_farm", "userconfig.xml"), fixture("generic_farm", "cluster.xml"));
    let o = farmctl(&["import", "safekit", s(&u), s(&c), "--uplink", "0000:03:00.0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[[vip]]"));
    // Errors: nothing written, exit 1.
    let o = farmctl(&["import", "safekit", s(&u), "-o", s(&dir.path().join("x.toml"))]);
    assert_eq!(o.status.code(), Some(1), "no cluster.xml: no nodes");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cluster.xml"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("x.toml").exists());
}
