//! `module.hash_seed`: the forms it is written in, the seed derived from the secret file when
//! the file sets none, the weak-seed warning, and the examples' seeds.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{patch, write_mode};
use farm_config::seed::{derive_from_secret, PUBLISHED_SEEDS};
use farm_config::{Config, HashSeedFrom};

/// The shared base with `seed_line` (line 4) and the secret file `secret`.
fn text(secret: &Path, seed_line: &str) -> String {
    patch(
        "secret_file = \"/etc/farm/web.secret\"",
        &format!("{seed_line}\nsecret_file = \"{}\"", secret.display()),
    )
}

fn seed_of(line: &str) -> u64 {
    let c = Config::from_str(&text(Path::new("/etc/farm/s"), line), "t.toml").unwrap();
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::Config);
    c.module.hash_seed
}

/// A directory with a secret file (0600) and the config file `farm.toml` using it.
fn farm(seed_line: &str, secret: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("secret");
    write_mode(&s, secret, 0o600);
    let cfg = dir.path().join("farm.toml");
    std::fs::write(&cfg, text(&s, seed_line)).unwrap();
    (dir, cfg)
}

#[test]
fn seed_forms() {
    assert_eq!(seed_of("hash_seed = \"0x9C3E_71D4_A85F_02B6\""), 0x9c3e_71d4_a85f_02b6);
    assert_eq!(seed_of("hash_seed = \"0xffffffffffffffff\""), u64::MAX);
    assert_eq!(seed_of("hash_seed = \"18446744073709551615\""), u64::MAX);
    assert_eq!(seed_of("hash_seed = 12345"), 12345);
    for bad in ["hash_seed = -1", "hash_seed = \"0x1_0000_0000_0000_0000\"", "hash_seed = \"seed\""] {
        let e = Config::from_str(&text(Path::new("/etc/farm/s"), bad), "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml:4:") && e.contains("module.hash_seed"), "{bad}: {e}");
    }
}

#[test]
fn without_a_seed_it_comes_from_the_secret_never_from_cluster_id() {
    let (_d, path) = farm("", b"0123456789abcdef0123456789abcdef\n");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::SecretFile);
    // The secret as used for the heartbeats: surrounding whitespace trimmed.
    assert_eq!(c.module.hash_seed, derive_from_secret(b"0123456789abcdef0123456789abcdef"));
    assert_ne!(c.module.hash_seed, 7);
    assert_eq!(c.hash_key(), farm_table::HashKey::from_seed(c.module.hash_seed));
    assert_eq!(c.hash_seed_warning(), None);
    c.check_runtime().unwrap_or_else(|e| match e {
        // No farm-dataplane in PATH here; everything before it passed.
        farm_config::ConfigError::Runtime { ref key, .. } if key == "dataplane.binary" => {}
        e => panic!("{e}"),
    });
    // Another node with the same secret computes the same seed; another secret moves clients.
    let (_d2, other) = farm("", b"0123456789abcdef0123456789abcdef");
    assert_eq!(Config::load(&other).unwrap().module.hash_seed, c.module.hash_seed);
    let (_d3, third) = farm("", b"another secret of 32 characters.");
    assert_ne!(Config::load(&third).unwrap().module.hash_seed, c.module.hash_seed);
    // load_local (farmd, the data plane) derives it too.
    let (lc, _) = Config::load_local(&path, Some("n1")).unwrap();
    assert_eq!(lc.module.hash_seed, c.module.hash_seed);
}

#[test]
fn an_unreadable_secret_leaves_the_seed_unresolved_with_a_clear_error() {
    let (d, path) = farm("", b"0123456789abcdef0123456789abcdef");
    let secret = d.path().join("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Loading still works (farmctl state needs no seed) ...
    let c = Config::load(&path).unwrap();
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::Unresolved);
    // ... but nothing computes a bucket with it.
    let e = c.try_hash_key().unwrap_err().to_string();
    for part in [path.to_str().unwrap(), "module.hash_seed", secret.to_str().unwrap(), "0600", "farmctl config init"] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
    assert!(c.check_runtime().is_err());
    let panic = std::panic::catch_unwind(|| c.hash_key()).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("module.hash_seed"), "{msg}");

    // from_str reads no file: unresolved until resolve_hash_seed.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = Config::from_str(&std::fs::read_to_string(&path).unwrap(), "t.toml").unwrap();
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::Unresolved);
    assert!(c.try_hash_key().unwrap_err().to_string().contains("not read when the configuration was loaded"));
    c.resolve_hash_seed().unwrap();
    assert_eq!(c.module.hash_seed_from, HashSeedFrom::SecretFile);
    assert_eq!(c.module.hash_seed, Config::load(&path).unwrap().module.hash_seed);
}

#[test]
fn weak_seeds_are_warned_about() {
    let warn = |line: &str| {
        let c = Config::from_str(&text(Path::new("/etc/farm/s"), line), "t.toml").unwrap();
        c.hash_seed_warning()
    };
    for (line, why) in [
        ("hash_seed = 0", "it is 0"),
        ("hash_seed = 7", "equals cluster_id"),
        ("hash_seed = \"0x0000000700000007\"", "cluster_id"),
        ("hash_seed = \"0x5eed\"", "small"),
        ("hash_seed = \"0x8000000000000001\"", "bits"),
        ("hash_seed = \"0xdeadbeefdeadbeef\"", "halves"),
        ("hash_seed = \"0xf000f1a4c577ead1\"", "configs/apache-farm.toml"),
    ] {
        let w = warn(line).unwrap_or_else(|| panic!("no warning for {line}"));
        assert!(w.starts_with("t.toml: module.hash_seed: weak seed: "), "{w}");
        assert!(w.contains(why) && w.contains("config init --seed-only"), "{line}: {w}");
    }
    assert_eq!(warn("hash_seed = \"0x3d8f27c194abe605\""), None);
}

/// Every shipped example has its own seed, listed as published so that `farmctl config check`
/// warns a farm that copied it.
#[test]
fn example_seeds_are_listed_as_published() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<String> = std::fs::read_dir(root.join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| format!("configs/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.push("vagrant/farm.toml".to_string());
    for f in &files {
        let c = Config::from_str(&std::fs::read_to_string(root.join(f)).unwrap(), f).unwrap();
        assert_eq!(c.module.hash_seed_from, HashSeedFrom::Config, "{f} sets hash_seed");
        assert!(
            PUBLISHED_SEEDS.contains(&(c.module.hash_seed, f.as_str())),
            "{f}: its seed {:#x} is not in PUBLISHED_SEEDS",
            c.module.hash_seed
        );
        assert!(c.hash_seed_warning().unwrap().contains(f.as_str()));
    }
    assert_eq!(files.len(), PUBLISHED_SEEDS.len(), "{files:?}");
}
