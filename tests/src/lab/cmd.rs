//! Running the system tools the lab drives (`ip`, `sysctl`, `nft`, `curl`, `ss`, `apache2`).
//!
//! Every child runs in its own process group, so a Ctrl-C in the terminal reaches only
//! farm-lab, which then tears down in order instead of losing its helpers half-way.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::error::LabError;

/// A command line for messages.
pub fn describe<I, S>(program: &OsStr, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut s = program.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// `program` as an absolute path when [`find_program`] finds it (so /usr/sbin tools run even
/// with a PATH without it), else unchanged.
pub fn resolve(program: &OsStr) -> std::ffi::OsString {
    program
        .to_str()
        .and_then(find_program)
        .map_or_else(|| program.to_owned(), |p| p.into_os_string())
}

/// A `Command` with null stdin and its own process group.
pub fn command<S: AsRef<OsStr>>(program: S) -> Command {
    let mut c = Command::new(resolve(program.as_ref()));
    c.stdin(Stdio::null()).process_group(0);
    c
}

/// Runs `program args`, returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run<P, I, S>(program: P, args: I) -> Result<String, LabError>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let out = output(program.as_ref(), args, None)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], with `input` on stdin (for `ip -batch -`, `nft -f -`).
pub fn run_with_input<P, I, S>(program: P, args: I, input: &str) -> Result<String, LabError>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let out = output(program.as_ref(), args, Some(input))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args` and returns its output whatever the exit status (only a failure to
/// start is an error).
pub fn run_status<P, I, S>(program: P, args: I) -> Result<Output, LabError>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let cmd = describe(program, args.clone());
    command(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| LabError::Spawn { cmd, source })
}

fn output<I, S>(program: &OsStr, args: I, input: Option<&str>) -> Result<Output, LabError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let cmd = describe(program, args.clone());
    tracing::debug!(%cmd, "run");
    let mut c = command(program);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    }
    let out = child.wait_with_output().map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip netns exec <ns> <program> <args>`: stdout, or an error.
pub fn ns_run<I, S>(ns: &str, program: impl AsRef<OsStr>, args: I) -> Result<String, LabError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let mut full: Vec<std::ffi::OsString> = vec!["netns".into(), "exec".into(), ns.into()];
    full.push(resolve(program.as_ref()));
    full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    run("ip", full)
}

/// `sysctl -q -w k=v ...` inside `ns`.
pub fn ns_sysctl(ns: &str, settings: &[(&str, &str)]) -> Result<(), LabError> {
    let args: Vec<String> = ["-q", "-w"]
        .iter()
        .map(|s| s.to_string())
        .chain(settings.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    ns_run(ns, "sysctl", args).map(drop)
}

/// Looks `name` up in `PATH` and then in /usr/sbin and /sbin (root's tools are there, and
/// `cargo test` may run with a user's PATH). A name with a `/` is taken as is.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if name.contains('/') {
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|c| is_executable(c))
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last `lines` lines of a text file (empty when it cannot be read): for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_errors_carry_stderr() {
        assert_eq!(run("sh", ["-c", "echo hi"]).unwrap(), "hi\n");
        let e = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sh -c") && msg.contains("oops") && msg.contains('3'), "{msg}");
        assert_eq!(run_with_input("cat", Vec::<&str>::new(), "abc").unwrap(), "abc");
        let e = run("/nonexistent/prog", ["x"]).unwrap_err();
        assert!(matches!(e, LabError::Spawn { .. }), "{e}");
    }

    #[test]
    fn programs_are_found_in_path_and_sbin() {
        assert!(find_program("sh").is_some());
        assert!(find_program("ip").is_some_and(|p| p.is_absolute()));
        assert!(find_program("no-such-program-farm").is_none());
        assert!(find_program("/nonexistent/apache2").is_none());
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&f, 10), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("none"), 3), "");
    }
}
