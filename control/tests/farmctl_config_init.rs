//! `farmctl config init` (the secret, token and hash seed of a new cluster) and the weak-seed
//! warning of `farmctl config check`, on the real binary in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use farm_config::seed::seed_weakness;
use farm_config::{Config, HashSeedFrom};

fn farmctl(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farmctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run farmctl")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A control-only farm (so that `config check --runtime` needs no data-plane program) whose
/// secret and token live in `dir`.
fn write_config(dir: &Path, seed_line: &str) -> PathBuf {
    let path = dir.join("farm.toml");
    fs::write(
        &path,
        format!(
            r#"# a new cluster
[module]
name = "web"            # kept
cluster_id = 42
{seed_line}
secret_file = "{d}/etc/web.secret"

[[node]]
name = "n1"
addrs = ["198.18.0.1"]

[[node]]
name = "n2"
addrs = ["198.18.0.2"]

[dataplane]
enabled = false

[api]
token_file = "{d}/etc/web.token"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    path
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn check(config: &Path) -> (bool, String, String) {
    let o = farmctl(config, &["config", "check", "--runtime", config.to_str().unwrap()]);
    let (out, err) = text(&o);
    (o.status.success(), out, err)
}

#[test]
fn init_writes_private_files_and_a_strong_seed_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_config(dir.path(), "");
    let secret = dir.path().join("etc/web.secret");
    let token = dir.path().join("etc/web.token");

    let o = farmctl(&cfg_path, &["config", "init"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    for p in [&secret, &token] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
        let s = fs::read_to_string(p).unwrap();
        assert_eq!(s.trim().len(), 64, "{s:?}");
        assert!(s.trim().bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
        assert!(out.contains(&format!("wrote {}", p.display())), "{out}");
    }
    assert_ne!(fs::read(&secret).unwrap(), fs::read(&token).unwrap());
    // What to copy where.
    assert!(out.contains("copy to every other node"), "{out}");
    for p in [cfg_path.as_path(), &secret, &token] {
        assert!(out.contains(&format!("  {}", p.display())), "{} not in {out}", p.display());
    }
    // The seed went into the file, which kept its comments and mode.
    let written = fs::read_to_string(&cfg_path).unwrap();
    assert!(written.starts_with("# a new cluster\n[module]\nname = \"web\"            # kept\n"), "{written}");
    assert_eq!(mode(&cfg_path), 0o640);
    let cfg = Config::load(&cfg_path).unwrap();
    assert_eq!(cfg.module.hash_seed_from, HashSeedFrom::Config);
    assert_eq!(seed_weakness(cfg.module.hash_seed, 42), None);
    assert!(!out.contains(&format!("{:016x}", cfg.module.hash_seed)), "the seed is not printed when written: {out}");
    assert_eq!(cfg.read_secret().unwrap().len(), 64);
    assert_eq!(cfg.read_token().unwrap().map(|t| t.len()), Some(64));

    // The result passes the check, runtime included, without a warning.
    let (ok, out, err) = check(&cfg_path);
    assert!(ok && out.starts_with("OK: "), "{out}{err}");
    assert!(!err.contains("warning"), "{err}");

    // A second run refuses, and changes nothing.
    let before: Vec<Vec<u8>> = [&secret, &token, &cfg_path].iter().map(|p| fs::read(p).unwrap()).collect();
    let o = farmctl(&cfg_path, &["config", "init"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("refusing to overwrite") && err.contains(secret.to_str().unwrap()) && err.contains("--force"), "{err}");
    let after: Vec<Vec<u8>> = [&secret, &token, &cfg_path].iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(before, after);
    // Only the token missing: still refused (the secret exists).
    fs::remove_file(&token).unwrap();
    assert_eq!(farmctl(&cfg_path, &["config", "init"]).status.code(), Some(1));
    assert!(!token.exists(), "nothing written when refusing");

    // --force: new secret and token, new seed.
    let o = farmctl(&cfg_path, &["config", "init", "--force"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_ne!(fs::read(&secret).unwrap(), before[0]);
    assert_eq!((mode(&secret), mode(&token)), (0o600, 0o600));
    assert_ne!(Config::load(&cfg_path).unwrap().module.hash_seed, cfg.module.hash_seed);
    assert_eq!(fs::read_dir(dir.path().join("etc")).unwrap().count(), 2, "no temporary file left");
}

#[test]
fn check_warns_about_weak_seeds_and_seed_only_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_config(dir.path(), "hash_seed = 42");
    // A weak seed is replaced by a full init (no --force needed); a strong one is kept.
    let o = farmctl(&cfg_path, &["config", "init"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("replaces a weak one") && out.contains("cluster_id"), "{out}");
    let strong = Config::load(&cfg_path).unwrap().module.hash_seed;
    assert_eq!(seed_weakness(strong, 42), None);

    for (seed_line, why) in [
        ("hash_seed = 42", "equals cluster_id"),
        ("hash_seed = 0", "it is 0"),
        ("hash_seed = \"0x5eed\"", "small"),
        ("hash_seed = \"0x000000000000002a\"", "cluster_id"),
        ("hash_seed = \"0x8000000100000001\"", "bits"),
        ("hash_seed = \"0xf000f1a4c577ead1\"", "configs/apache-farm.toml"),
    ] {
        let text_now = fs::read_to_string(&cfg_path).unwrap();
        let start = text_now.find("hash_seed").unwrap();
        let end = start + text_now[start..].find('\n').unwrap();
        fs::write(&cfg_path, format!("{}{seed_line}{}", &text_now[..start], &text_now[end..])).unwrap();
        let (ok, out, err) = check(&cfg_path);
        assert!(ok, "a weak seed is a warning, not an error: {out}{err}");
        assert!(err.contains("warning:") && err.contains("module.hash_seed: weak seed") && err.contains(why), "{seed_line}: {err}");
        assert!(err.contains("config init --seed-only"), "{err}");

        // --seed-only: a new seed, the secret and token untouched.
        let secret = fs::read(dir.path().join("etc/web.secret")).unwrap();
        let o = farmctl(&cfg_path, &["config", "init", "--seed-only"]);
        assert!(o.status.success(), "{:?}", text(&o));
        assert_eq!(fs::read(dir.path().join("etc/web.secret")).unwrap(), secret);
        let (ok, out, err) = check(&cfg_path);
        assert!(ok && !err.contains("warning"), "{out}{err}");
    }
    // A strong seed is not replaced by --seed-only without --force.
    let seed = Config::load(&cfg_path).unwrap().module.hash_seed;
    let o = farmctl(&cfg_path, &["config", "init", "--seed-only"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("--force"));
    assert_eq!(Config::load(&cfg_path).unwrap().module.hash_seed, seed);
    assert!(farmctl(&cfg_path, &["config", "init", "--seed-only", "--force"]).status.success());
    assert_ne!(Config::load(&cfg_path).unwrap().module.hash_seed, seed);
}

#[test]
fn without_a_config_file_the_seed_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let o = farmctl(&missing, &["config", "init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("--secret-file"), "{:?}", text(&o));

    let secret = dir.path().join("s");
    let o = farmctl(&missing, &["config", "init", "--secret-file", secret.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(mode(&secret), 0o600);
    assert!(!missing.exists());
    let line = out.lines().find(|l| l.trim_start().starts_with("hash_seed = \"0x")).expect("a seed line");
    let hex = line.trim().trim_start_matches("hash_seed = \"0x").trim_end_matches('"');
    let seed = u64::from_str_radix(hex, 16).unwrap();
    assert_eq!(seed_weakness(seed, 0), None);
    // The printed line is valid in a configuration.
    let cfg_path = write_config(dir.path(), line.trim());
    assert_eq!(Config::load(&cfg_path).unwrap().module.hash_seed, seed);
}
