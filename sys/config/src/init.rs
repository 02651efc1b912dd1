//! The files of a new cluster, as `farmctl config init` and the namespace lab make them: the
//! heartbeat secret, the API token (random hex, mode 0600) and a random `module.hash_seed`
//! written into the configuration ([`crate::seed`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut};

use crate::seed::{format_seed, random_hex};

/// Random bytes in a new secret file (written as 64 hex characters).
pub const SECRET_BYTES: usize = 32;
/// Random bytes in a new token file (written as 64 hex characters).
pub const TOKEN_BYTES: usize = 32;

/// The content of a new heartbeat secret file: [`SECRET_BYTES`] random bytes as hex, newline.
pub fn new_secret() -> io::Result<String> {
    Ok(random_hex(SECRET_BYTES)? + "\n")
}

/// The content of a new API token file: [`TOKEN_BYTES`] random bytes as hex, newline.
pub fn new_token() -> io::Result<String> {
    Ok(random_hex(TOKEN_BYTES)? + "\n")
}

/// A temporary name next to `path` (same directory, so a rename replaces `path` atomically).
fn temp_next_to(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `contents` to a new file `tmp` with `mode`, then renames it to `path`.
fn write_then_rename(tmp: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let res = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp)?;
        // The umask may have removed bits of `mode`; the mode is what the caller asked for.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// Writes a private file (mode 0600 from its creation: the content is never readable by
/// others). An existing `path` is refused (`ErrorKind::AlreadyExists`) unless `overwrite`;
/// overwriting writes a new file next to it and renames it over. Creates missing parent
/// directories.
pub fn write_private(path: &Path, contents: &[u8], overwrite: bool) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    if !overwrite {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        return f.sync_all();
    }
    write_then_rename(&temp_next_to(path), path, contents, 0o600)
}

/// Replaces the content of the existing file `path`, keeping its mode (written next to it,
/// then renamed over it).
pub fn replace_keeping_mode(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    write_then_rename(&temp_next_to(path), path, contents, mode)
}

/// Comment written after a seed set by [`set_hash_seed`].
pub const SEED_COMMENT: &str = "# random (farmctl config init): the same on every node, keep it private";

/// The configuration `text` with `[module] hash_seed` set to `seed` (as `"0x..."`, with
/// [`SEED_COMMENT`]); everything else, comments and layout included, is kept. Fails when `text`
/// is not TOML or has no `[module]` table.
pub fn set_hash_seed(text: &str, seed: u64) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("not a TOML file: {e}"))?;
    let module = doc
        .get_mut("module")
        .and_then(|m| m.as_table_like_mut())
        .ok_or("expected a [module] table")?;
    let mut v = value(format_seed(seed));
    if let Some(val) = v.as_value_mut() {
        val.decor_mut().set_suffix(format!("  {SEED_COMMENT}"));
    }
    module.insert("hash_seed", v);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_private(&p, b"one\n", false).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = write_private(&p, b"two\n", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"two\n", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn seed_is_set_keeping_the_rest() {
        let text = "# head\n[module]\nname = \"web\"   # the name\ncluster_id = 7\n\n[api]\nlisten = \"0.0.0.0:9010\"\n";
        let out = set_hash_seed(text, 0x0123_4567_89ab_cdef).unwrap();
        assert!(out.starts_with("# head\n[module]\nname = \"web\"   # the name\n"), "{out}");
        assert!(out.contains(&format!("hash_seed = \"0x0123456789abcdef\"  {SEED_COMMENT}\n")), "{out}");
        assert!(out.find("hash_seed").unwrap() < out.find("[api]").unwrap(), "{out}");
        // Replacing drops the old value and its comment.
        let again = set_hash_seed(&out.replace("0x0123456789abcdef", "0x5eed\"  # old"), 0xfedc_ba98_7654_3210).unwrap();
        assert!(!again.contains("0x5eed") && !again.contains("# old"), "{again}");
        assert_eq!(again.matches("hash_seed").count(), 1, "{again}");
        assert!(set_hash_seed("[api]\n", 1).unwrap_err().contains("[module]"));
        assert!(set_hash_seed("[module\n", 1).is_err());
    }

    #[test]
    fn replacing_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("farm.toml");
        fs::write(&p, "a").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        replace_keeping_mode(&p, b"b").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"b");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn new_material_is_long_hex() {
        let s = new_secret().unwrap();
        assert_eq!(s.trim().len(), 2 * SECRET_BYTES);
        assert!(s.ends_with('\n'));
        assert_ne!(s, new_secret().unwrap());
        assert_eq!(new_token().unwrap().trim().len(), 2 * TOKEN_BYTES);
    }
}
