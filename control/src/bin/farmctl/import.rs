//! `farmctl import safekit USERCONFIG [CLUSTER] [-o OUT]`: a SafeKit farm module converted to
//! a farm.toml ([`farm_control::import::safekit`]).
//!
//! The file is written to OUT (refused if it exists, unless `--force`), or to standard output.
//! It names a secret file and a token file next to OUT (`<dir>/<module>.secret`, `.token`)
//! but does not create them: secrets are never converted; `farmctl --config OUT config init`
//! creates them and a random hash_seed (the file passes `farmctl config check` before that:
//! the check reads the file, not the machine).
//!
//! Everything in the SafeKit files that has no equivalent, or changes meaning, is printed on
//! standard error as `warning: FILE:LINE: <element attr="...">: why` (and repeated as comments
//! at the top of the file); `note:` lines say what to do by hand. Exit code: 0 everything was
//! converted, 2 the file was written but some warnings say what was not, 1 error (nothing
//! written).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use farm_config::{init, Config};
use farm_control::import::safekit::{self, Options, Source};

/// `farmctl import ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ImportCmd {
    /// Convert an Evidian SafeKit farm module (userconfig.xml, and the cluster's cluster.xml)
    /// to a farm.toml. Lists what has no equivalent; exit 0: all converted, 2: written with
    /// warnings, 1: error.
    Safekit(SafekitArgs),
}

/// Options of `farmctl import safekit`.
#[derive(clap::Args, Debug)]
pub struct SafekitArgs {
    /// The module's userconfig.xml (SAFE/modules/<module>/conf/userconfig.xml).
    pub userconfig: PathBuf,
    /// The cluster's cluster.xml (SAFEVAR/cluster/cluster.xml): the nodes and their LANs.
    /// Not needed when userconfig.xml names its nodes (SafeKit 7.1's <lan><node>).
    pub cluster: Option<PathBuf>,
    /// Write the configuration here (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Module name (default: the module's directory, SAFE/modules/<name>/conf/..., else the
    /// output file's name if it is a valid one, else "farm").
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Cluster id (default: random).
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<u32>,
    /// The NIC the data plane takes over (default: from <interface name>, else a placeholder).
    #[arg(long, value_name = "DEVICE")]
    pub uplink: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().context("the current directory")?.join(p) })
}

/// Runs an import; returns the exit code.
pub fn run(cmd: &ImportCmd) -> Result<u8> {
    let ImportCmd::Safekit(a) = cmd;
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let utext = read(&a.userconfig)?;
    let ctext = a.cluster.as_deref().map(read).transpose()?;
    let out = a.output.as_deref().map(absolute).transpose()?;
    if let Some(o) = out.as_ref().filter(|o| o.exists() && !a.force) {
        anyhow::bail!("refusing to overwrite {}: it exists already; --force replaces it", o.display());
    }
    // --name, else SafeKit's module directory, else the output file's name, else "farm".
    let module = a
        .name
        .clone()
        .or_else(|| safekit::module_name_from_path(&absolute(&a.userconfig).ok()?))
        .or_else(|| {
            let stem = out.as_ref()?.file_stem()?.to_string_lossy().to_lowercase();
            farm_config::ModuleName::try_from(stem.clone()).ok().map(|_| stem)
        })
        .unwrap_or_else(|| "farm".into());
    let dir = match &out {
        Some(o) => o.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")),
        None => PathBuf::from("/etc/farm"),
    };
    let cluster_id = match a.cluster_id {
        Some(id) => id,
        None => init::random_cluster_id().context("the OS random number generator")?,
    };
    let opts = Options {
        module: module.clone(),
        cluster_id,
        secret_file: dir.join(format!("{module}.secret")),
        token_file: dir.join(format!("{module}.token")),
        scripts_dir: dir.join(&module),
        uplink: a.uplink.clone(),
    };
    let uname = a.userconfig.display().to_string();
    let cname = a.cluster.as_ref().map(|c| c.display().to_string());
    let conv = safekit::convert(
        Source { name: &uname, text: &utext },
        cname.as_deref().zip(ctext.as_deref()).map(|(name, text)| Source { name, text }),
        &opts,
    )?;
    let origin = out.as_ref().map_or("<output>".to_string(), |o| o.display().to_string());
    // A converter bug or an input farm refuses (e.g. duplicate names) must not reach a file.
    Config::from_str(&conv.toml, &origin).map_err(|e| anyhow::anyhow!("the converted configuration is not valid (nothing written):\n{e}"))?;
    match &out {
        Some(o) => {
            init::write_new(o, conv.toml.as_bytes(), 0o640, a.force).map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => anyhow::anyhow!("refusing to overwrite {} (created meanwhile)", o.display()),
                _ => anyhow::anyhow!("cannot write {}: {e}", o.display()),
            })?;
            eprintln!("wrote {} (module {module}, mode 0640)", o.display());
        }
        None => print!("{}", conv.toml),
    }
    for n in &conv.notes {
        eprintln!("note: {n}");
    }
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    let next = out.as_ref().map_or("FILE".to_string(), |o| o.display().to_string());
    eprintln!("next: `farmctl --config {next} config init` writes the secret, the token and a random hash_seed; then `farmctl config check {next}`");
    if conv.warnings.is_empty() {
        eprintln!("everything was converted");
        Ok(0)
    } else {
        eprintln!("{} warnings: not everything was converted (exit 2)", conv.warnings.len());
        Ok(2)
    }
}
