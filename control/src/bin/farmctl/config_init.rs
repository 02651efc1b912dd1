//! `farmctl config init`: the secrets of a new cluster, made once and copied to every node.
//!
//! Writes the heartbeat secret (`module.secret_file`) and the API token (`api.token_file`) as
//! random hex, mode 0600, and a random `module.hash_seed` into the configuration (all from the
//! OS random number generator, `farm_config::init`). Existing secret and token files are never
//! replaced without `--force` (every node must keep the same secret). A `hash_seed` already in
//! the file is kept unless it is weak (`farm_config::seed::seed_weakness`: e.g. a shipped
//! example's) or `--force` is given. Without a configuration file, `--secret-file` (and
//! `--token-file`) say where to write, and the seed is printed for pasting.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use farm_config::seed::{format_seed, random_seed, seed_weakness};
use farm_config::{init, Config, HashSeedFrom};

/// Options of `farmctl config init` (the configuration is the global `--config`).
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Heartbeat secret file to write (default: `module.secret_file` of the configuration).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// API token file to write (default: `api.token_file` of the configuration, when set).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Only write a new `hash_seed` into the configuration (e.g. to replace a weak one); the
    /// secret and token files are left alone.
    #[arg(long)]
    pub seed_only: bool,
    /// Replace existing secret and token files, and a `hash_seed` already in the configuration
    /// (a new seed moves clients between nodes; a new secret must reach every node at once).
    #[arg(long)]
    pub force: bool,
}

/// What to do with the configuration's seed.
enum SeedPlan {
    /// Write this seed into the configuration (new text, validated), saying why.
    Write { text: String, why: String },
    /// Keep the seed already there.
    Keep,
    /// No configuration file: print the seed for the user to paste.
    Print(u64),
}

/// Runs `farmctl --config CONFIG config init ARGS`; returns the exit code.
pub fn run(config: &Path, args: &InitArgs) -> Result<u8> {
    let origin = config.display().to_string();
    let existing = match std::fs::read_to_string(config) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {origin}")),
    };
    let cfg = match &existing {
        Some(text) => Some(Config::from_str(text, &origin)?),
        None => None,
    };

    // The files to write.
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    if !args.seed_only {
        let secret = match (&args.secret_file, &cfg) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => c.module.secret_file.clone(),
            (None, None) => bail!(
                "{origin} does not exist: write the configuration first (configs/ has examples) and run this again, or give --secret-file (and --token-file) and paste the printed hash_seed into it"
            ),
        };
        files.push(("heartbeat secret", secret));
        if let Some(t) = args.token_file.clone().or_else(|| cfg.as_ref().and_then(|c| c.api.token_file.clone())) {
            if t == files[0].1 {
                bail!("the token file and the secret file are both {}: expected two files", t.display());
            }
            files.push(("API token", t));
        }
        if !args.force {
            let present: Vec<String> = files.iter().filter(|(_, p)| p.exists()).map(|(_, p)| p.display().to_string()).collect();
            if !present.is_empty() {
                bail!(
                    "refusing to overwrite {}: every node of a cluster must keep the same secret and token (copy them from the node that has them); --force makes new ones (then copy them to every node at once), --seed-only writes only a new hash_seed",
                    present.join(" and ")
                );
            }
        }
    }

    let plan = match (&existing, &cfg) {
        (Some(text), Some(c)) => {
            let why = match (c.module.hash_seed_from, seed_weakness(c.module.hash_seed, c.module.cluster_id)) {
                (HashSeedFrom::Config, _) if args.force => Some("; it replaces the one there (--force)".to_string()),
                (HashSeedFrom::Config, Some(weak)) => Some(format!("; it replaces a weak one: {weak}")),
                (HashSeedFrom::Config, None) => None,
                _ => Some(String::new()),
            };
            match why {
                Some(why) => {
                    let seed = random_seed(c.module.cluster_id).context("the OS random number generator")?;
                    let new = init::set_hash_seed(text, seed).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
                    // The file must stay valid (it was before: only hash_seed changed).
                    Config::from_str(&new, &origin)?;
                    SeedPlan::Write { text: new, why }
                }
                None if args.seed_only => bail!(
                    "{origin}: module.hash_seed is set and not weak: kept; --force replaces it (which moves clients between nodes)"
                ),
                None => SeedPlan::Keep,
            }
        }
        _ => SeedPlan::Print(random_seed(0).context("the OS random number generator")?),
    };

    // Everything is decided: write.
    for (what, path) in &files {
        let content = if *what == "API token" { init::new_token()? } else { init::new_secret()? };
        init::write_private(path, content.as_bytes(), args.force).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => anyhow::anyhow!("refusing to overwrite {} (created meanwhile)", path.display()),
            _ => anyhow::anyhow!("cannot write {}: {e}", path.display()),
        })?;
        println!("wrote {} ({what}, {} random bytes as hex, mode 0600)", path.display(), if *what == "API token" { init::TOKEN_BYTES } else { init::SECRET_BYTES });
    }
    match &plan {
        SeedPlan::Write { text, why } => {
            init::replace_keeping_mode(config, text.as_bytes()).with_context(|| format!("cannot write {origin}"))?;
            println!("wrote module.hash_seed (64 random bits) into {origin}{why}");
        }
        SeedPlan::Keep => println!("kept module.hash_seed of {origin} (already set, not weak; --force replaces it)"),
        SeedPlan::Print(seed) => {
            println!("hash seed (64 random bits); put this line in the [module] section of the configuration of every node:");
            println!("  hash_seed = \"{}\"", format_seed(*seed));
        }
    }

    // What the other nodes need.
    let mut copy: Vec<String> = Vec::new();
    if existing.is_some() {
        copy.push(format!("{origin} (the configuration, the same on every node: it holds hash_seed)"));
    }
    copy.extend(files.iter().map(|(what, p)| {
        // Written elsewhere than the configuration says (--secret-file, --token-file).
        let configured = cfg.as_ref().and_then(|c| match *what {
            "API token" => c.api.token_file.clone(),
            _ => Some(c.module.secret_file.clone()),
        });
        match configured.filter(|c| c != p) {
            Some(c) => format!("{} -> {} ({what}, mode 0600; the path the configuration names)", p.display(), c.display()),
            None => format!("{} ({what}, mode 0600, same path)", p.display()),
        }
    }));
    println!("copy to every other node of the cluster, same content, same mode (e.g. scp -p, or install -m 0600):");
    for c in &copy {
        println!("  {c}");
    }
    println!("run config init once per cluster, not on each node: all nodes need the same secret and seed");
    if matches!(plan, SeedPlan::Write { .. }) {
        if let Ok(m) = std::fs::metadata(config) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                println!("note: {origin} is readable by every local user (mode {mode:04o}); the seed tells which node serves which client: consider chmod 640");
            }
        }
    }
    Ok(0)
}

/// The warning of `farmctl config check` about a weak `hash_seed` (stderr; the check still
/// passes: the farm works, it is only predictable).
pub fn warn_seed(cfg: &Config) {
    if let Some(w) = cfg.hash_seed_warning() {
        eprintln!("warning: {w}");
    }
}
