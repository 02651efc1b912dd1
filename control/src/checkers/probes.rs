//! One run of each kind of check. Every probe returns within its timeout (or, for the process
//! and link probes, which only read `/proc` and `/sys`, right away).

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use regex::Regex;

/// How a process checker recognises its processes.
#[derive(Clone, Debug)]
pub enum ProcMatcher {
    /// `/proc/<pid>/comm` equals the name (the kernel truncates it to 15 bytes), or the file
    /// name of `argv[0]` does.
    Name(String),
    /// The command line (arguments joined by spaces) matches.
    Pattern(Regex),
}

impl ProcMatcher {
    /// Whether a process with this `comm` and command line matches.
    pub fn matches(&self, comm: &str, argv: &[String]) -> bool {
        match self {
            ProcMatcher::Name(n) => {
                let truncated = n.get(..15).filter(|_| n.len() > 15);
                comm == n
                    || truncated.is_some_and(|t| comm == t)
                    || argv.first().and_then(|a0| Path::new(a0).file_name()).is_some_and(|f| f == n.as_str())
            }
            ProcMatcher::Pattern(re) => !argv.is_empty() && re.is_match(&argv.join(" ")),
        }
    }
}

/// Counts the processes under `proc_root` (normally `/proc`) that match.
pub fn count_processes(proc_root: &Path, m: &ProcMatcher) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.to_str().is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let dir = entry.path();
        // A process may exit between read_dir and the reads: skip it.
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else { continue };
        let argv: Vec<String> = match fs::read(dir.join("cmdline")) {
            Ok(raw) => raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
            Err(_) => continue,
        };
        if m.matches(comm.trim_end_matches('\n'), &argv) {
            n += 1;
        }
    }
    Ok(n)
}

/// A probe's verdict for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// Healthy.
    pub ok: bool,
    /// What was seen (for the log and the status API).
    pub detail: String,
}

impl ProbeResult {
    /// A success.
    pub fn ok(detail: impl Into<String>) -> ProbeResult {
        ProbeResult { ok: true, detail: detail.into() }
    }
    /// A failure.
    pub fn fail(detail: impl Into<String>) -> ProbeResult {
        ProbeResult { ok: false, detail: detail.into() }
    }
}

/// Process check.
pub fn process(proc_root: &Path, m: &ProcMatcher, at_least: u32) -> ProbeResult {
    let what = match m {
        ProcMatcher::Name(n) => format!("process {n:?}"),
        ProcMatcher::Pattern(re) => format!("processes matching {:?}", re.as_str()),
    };
    match count_processes(proc_root, m) {
        Ok(n) if n >= at_least as usize => ProbeResult::ok(format!("{n} {what} running")),
        Ok(n) => ProbeResult::fail(format!("{n} {what} running, expected at least {at_least}")),
        Err(e) => ProbeResult::fail(format!("cannot list {}: {e}", proc_root.display())),
    }
}

/// TCP check: a connection to `addr` succeeds within `timeout`.
pub fn tcp(addr: SocketAddr, timeout: Duration) -> ProbeResult {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => ProbeResult::ok(format!("connected to {addr}")),
        Err(e) => ProbeResult::fail(format!("cannot connect to {addr}: {e}")),
    }
}

/// Largest body read by the HTTP check.
const HTTP_BODY_LIMIT: u64 = 1 << 20;

/// An HTTP agent for checks: no redirects, statuses are not errors, `timeout` overall.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("farmd-checker")
        .build()
        .into()
}

/// HTTP check (like ldirectord's request/receive): `GET url` answers `expect_status` and, if
/// given, its body contains `expect_text`.
pub fn http(agent: &ureq::Agent, url: &str, expect_status: u16, expect_text: Option<&str>) -> ProbeResult {
    let mut resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => return ProbeResult::fail(format!("GET {url}: {e}")),
    };
    let status = resp.status().as_u16();
    if status != expect_status {
        return ProbeResult::fail(format!("GET {url}: status {status}, expected {expect_status}"));
    }
    let Some(text) = expect_text else {
        return ProbeResult::ok(format!("GET {url}: status {status}"));
    };
    let mut body = Vec::new();
    if let Err(e) = resp.body_mut().as_reader().take(HTTP_BODY_LIMIT).read_to_end(&mut body) {
        return ProbeResult::fail(format!("GET {url}: reading the body: {e}"));
    }
    if String::from_utf8_lossy(&body).contains(text) {
        ProbeResult::ok(format!("GET {url}: status {status}, body contains {text:?}"))
    } else {
        ProbeResult::fail(format!("GET {url}: status {status}, body does not contain {text:?}"))
    }
}

/// Kernel interface check: `/sys/class/net/<name>/operstate` is `up`, or `unknown` with
/// carrier (loopback, some virtual devices).
pub fn kernel_link(sys_net: &Path, name: &str) -> ProbeResult {
    let dir = sys_net.join(name);
    let oper = match fs::read_to_string(dir.join("operstate")) {
        Ok(s) => s.trim().to_string(),
        Err(e) => return ProbeResult::fail(format!("interface {name}: {e}")),
    };
    let carrier = fs::read_to_string(dir.join("carrier")).map(|s| s.trim() == "1").unwrap_or(false);
    match oper.as_str() {
        "up" => ProbeResult::ok(format!("interface {name} is up")),
        "unknown" if carrier => ProbeResult::ok(format!("interface {name} has carrier")),
        _ => ProbeResult::fail(format!("interface {name} is {oper}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matching_rules() {
        let m = ProcMatcher::Name("apache2".into());
        assert!(m.matches("apache2", &[]));
        assert!(m.matches("other", &["/usr/sbin/apache2".into(), "-k".into()]));
        assert!(!m.matches("apache", &["/usr/sbin/apache".into()]));
        let long = ProcMatcher::Name("a-very-long-process-name".into());
        assert!(long.matches("a-very-long-pro", &[]));
        let re = ProcMatcher::Pattern(Regex::new(r"java .*-jar app\.jar").unwrap());
        assert!(re.matches("java", &["java".into(), "-Xmx1g".into(), "-jar".into(), "app.jar".into()]));
        assert!(!re.matches("java", &[]));
    }

    #[test]
    fn fake_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |pid: &str, comm: &str, cmd: &[u8]| {
            let d = dir.path().join(pid);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), cmd).unwrap();
        };
        mk("1", "init", b"/sbin/init\0");
        mk("10", "nginx", b"nginx: master process\0");
        mk("11", "nginx", b"nginx: worker process\0");
        mk("12", "kworker/0:1", b"");
        fs::create_dir(dir.path().join("self")).unwrap();
        let nginx = ProcMatcher::Name("nginx".into());
        assert_eq!(count_processes(dir.path(), &nginx).unwrap(), 2);
        assert!(process(dir.path(), &nginx, 2).ok);
        let r = process(dir.path(), &nginx, 3);
        assert!(!r.ok && r.detail.contains("expected at least 3"), "{r:?}");
        let workers = ProcMatcher::Pattern(Regex::new("worker").unwrap());
        assert_eq!(count_processes(dir.path(), &workers).unwrap(), 1);
        assert!(!process(&dir.path().join("missing"), &nginx, 1).ok);
    }

    #[test]
    fn fake_sys_class_net() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, oper: &str, carrier: &str| {
            let d = dir.path().join(name);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("operstate"), format!("{oper}\n")).unwrap();
            fs::write(d.join("carrier"), format!("{carrier}\n")).unwrap();
        };
        mk("eth0", "up", "1");
        mk("eth1", "down", "0");
        mk("tap0", "unknown", "1");
        mk("tap1", "unknown", "0");
        assert!(kernel_link(dir.path(), "eth0").ok);
        assert!(!kernel_link(dir.path(), "eth1").ok);
        assert!(kernel_link(dir.path(), "tap0").ok);
        assert!(!kernel_link(dir.path(), "tap1").ok);
        assert!(!kernel_link(dir.path(), "nope").ok);
    }
}
