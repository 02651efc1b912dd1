//! Who serves whom: one `curl` request to the VIP from each of many client addresses (one curl
//! process, `--parallel`, one transfer per address with its own `--interface`), and the result
//! as counts per node and a text mosaic (one cell per client address).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::error::LabError;
use super::Lab;

/// The node that answered each client (None: the request failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    /// Per client address: the node that answered, or the error.
    pub results: Vec<(Ipv4Addr, Result<usize, String>)>,
}

/// Cell characters: node `i` is `CELLS[i - 1]` (1..9, then letters).
const CELLS: &[u8] = b"123456789abcdefghijklmnopqrstuvw";
/// ANSI colours for the cells of nodes 1, 2, 3, ... (cycled).
const COLOURS: &[&str] = &["\x1b[30;42m", "\x1b[30;44m", "\x1b[30;43m", "\x1b[30;45m", "\x1b[30;46m", "\x1b[30;47m"];

impl Spread {
    /// Requests per node.
    pub fn counts(&self) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for n in self.results.iter().filter_map(|(_, r)| r.as_ref().ok()) {
            *m.entry(*n).or_default() += 1;
        }
        m
    }

    /// The failed requests.
    pub fn failures(&self) -> Vec<(Ipv4Addr, String)> {
        self.results.iter().filter_map(|(a, r)| r.as_ref().err().map(|e| (*a, e.clone()))).collect()
    }

    /// The node that served `client`.
    pub fn node_of(&self, client: Ipv4Addr) -> Option<usize> {
        self.results.iter().find(|(a, _)| *a == client).and_then(|(_, r)| r.as_ref().ok().copied())
    }

    /// The largest relative deviation from an even share among `nodes` (0.1 = 10%).
    pub fn max_deviation(&self, nodes: &[usize]) -> f64 {
        max_deviation(&self.counts(), nodes)
    }

    /// One cell per client, `width` per row: the node's digit (coloured when `colour`), `.`
    /// for a failure.
    pub fn mosaic(&self, width: usize, colour: bool) -> String {
        let mut s = String::new();
        for row in self.results.chunks(width.max(1)) {
            s.push_str("  ");
            for (_, r) in row {
                match r {
                    Ok(n) => {
                        let c = char::from(CELLS[(n - 1) % CELLS.len()]);
                        if colour {
                            let _ = write!(s, "{}{c}\x1b[0m", COLOURS[(n - 1) % COLOURS.len()]);
                        } else {
                            s.push(c);
                        }
                    }
                    Err(_) => s.push('.'),
                }
            }
            s.push('\n');
        }
        s
    }

    /// `n1 169 (33.3%)  n2 ...  failed 0` over nodes `1..=nodes`.
    pub fn summary(&self, nodes: usize) -> String {
        let counts = self.counts();
        let total = self.results.len().max(1) as f64;
        let mut s = String::new();
        for i in 1..=nodes {
            let c = counts.get(&i).copied().unwrap_or(0);
            let _ = write!(s, "n{i} {c:>4} ({:>4.1}%)   ", 100.0 * c as f64 / total);
        }
        let _ = write!(s, "failed {}", self.failures().len());
        s
    }
}

/// Clients answered by another node in `now` than in `before`: (from, to) → count.
pub fn moves(before: &Spread, now: &Spread) -> BTreeMap<(usize, usize), usize> {
    let mut m = BTreeMap::new();
    for (c, r) in &now.results {
        if let (Ok(to), Some(from)) = (r, before.node_of(*c)) {
            if from != *to {
                *m.entry((from, *to)).or_default() += 1;
            }
        }
    }
    m
}

/// `187 clients moved: n2->n1 104, n2->n3 83` (or `no client moved`).
pub fn describe_moves(m: &BTreeMap<(usize, usize), usize>) -> String {
    let total: usize = m.values().sum();
    if total == 0 {
        return "no client moved".to_owned();
    }
    let parts: Vec<String> = m.iter().map(|((f, t), n)| format!("n{f}->n{t} {n}")).collect();
    format!("{total} clients moved: {}", parts.join(", "))
}

impl Spread {
    /// Saves the answering node per client (`addr node` lines; failures left out).
    pub fn save(&self, path: &std::path::Path) -> Result<(), LabError> {
        let text: String = self
            .results
            .iter()
            .filter_map(|(a, r)| r.as_ref().ok().map(|n| format!("{a} {n}\n")))
            .collect();
        std::fs::write(path, text).map_err(|e| LabError::io(path, e))
    }

    /// Reads what [`Spread::save`] wrote.
    pub fn load(path: &std::path::Path) -> Result<Spread, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?;
        let results = text
            .lines()
            .filter_map(|l| {
                let (a, n) = l.split_once(' ')?;
                Some((a.parse().ok()?, Ok(n.trim().parse().ok()?)))
            })
            .collect();
        Ok(Spread { results })
    }
}

/// The largest relative deviation of `counts` from an even share among `nodes`.
pub fn max_deviation(counts: &BTreeMap<usize, usize>, nodes: &[usize]) -> f64 {
    let total: usize = nodes.iter().map(|n| counts.get(n).copied().unwrap_or(0)).sum();
    let even = total as f64 / nodes.len().max(1) as f64;
    nodes
        .iter()
        .map(|n| (counts.get(n).copied().unwrap_or(0) as f64 - even).abs() / even.max(1.0))
        .fold(0.0, f64::max)
}

/// The curl config: one transfer per client, each with its own source address, output file
/// and write-out line `<client> <HTTP code> <error>`.
fn curl_config(srcs: &[Ipv4Addr], url: &str, out_dir: &std::path::Path) -> String {
    let mut cfg = String::new();
    for (k, a) in srcs.iter().enumerate() {
        if k > 0 {
            cfg.push_str("next\n");
        }
        let _ = write!(
            cfg,
            "url = \"{url}\"\ninterface = \"{a}\"\noutput = \"{}/{a}\"\nmax-time = 3\n\
             write-out = \"{a} %{{http_code}} %{{errormsg}}\\n\"\n",
            out_dir.display()
        );
    }
    cfg
}

impl Lab {
    /// `GET http://<VIP>:<port>/` once from every address of `srcs`, with curl in the client
    /// namespace (up to 32 transfers at a time): which node answered each.
    pub fn curl_spread(&self, srcs: &[Ipv4Addr], port: u16) -> Result<Spread, LabError> {
        let dir = self.run_dir().join("spread");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        let cfg_path = self.run_dir().join("spread.curl");
        let url = format!("http://{}:{port}/", self.vip());
        std::fs::write(&cfg_path, curl_config(srcs, &url, &dir)).map_err(|e| LabError::io(&cfg_path, e))?;
        let cfg = cfg_path.to_string_lossy().into_owned();
        // curl exits non-zero when a transfer fails: read the write-out lines either way.
        let o = self.exec(&self.client_ns(), &["curl", "-s", "--parallel", "--parallel-max", "32", "-K", &cfg])?;
        let out = String::from_utf8_lossy(&o.stdout);
        let mut status: BTreeMap<Ipv4Addr, (String, String)> = BTreeMap::new();
        for line in out.lines() {
            let mut f = line.splitn(3, ' ');
            if let (Some(Ok(a)), Some(code)) = (f.next().map(str::parse), f.next()) {
                status.insert(a, (code.to_owned(), f.next().unwrap_or("").trim().to_owned()));
            }
        }
        let results = srcs
            .iter()
            .map(|a| {
                let r = match status.get(a) {
                    Some((code, _)) if code == "200" => {
                        let body = std::fs::read_to_string(dir.join(a.to_string())).unwrap_or_default();
                        super::client::node_of_body(&body).ok_or_else(|| format!("unexpected body {body:?}"))
                    }
                    Some((code, err)) => Err(format!("HTTP {code} {err}")),
                    None => Err("no result from curl".to_owned()),
                };
                (*a, r)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Spread { results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread() -> Spread {
        Spread {
            results: vec![
                (Ipv4Addr::new(198, 18, 1, 1), Ok(1)),
                (Ipv4Addr::new(198, 18, 1, 2), Ok(2)),
                (Ipv4Addr::new(198, 18, 1, 3), Ok(1)),
                (Ipv4Addr::new(198, 18, 1, 4), Err("timeout".into())),
                (Ipv4Addr::new(198, 18, 1, 5), Ok(3)),
            ],
        }
    }

    #[test]
    fn counts_mosaic_and_summary() {
        let s = spread();
        assert_eq!(s.counts(), BTreeMap::from([(1, 2), (2, 1), (3, 1)]));
        assert_eq!(s.failures().len(), 1);
        assert_eq!(s.node_of(Ipv4Addr::new(198, 18, 1, 2)), Some(2));
        assert_eq!(s.mosaic(3, false), "  121\n  .3\n");
        assert!(s.mosaic(3, true).contains("\x1b[30;42m1\x1b[0m"));
        let sum = s.summary(3);
        assert!(sum.starts_with("n1    2 (40.0%)"), "{sum}");
        assert!(sum.ends_with("failed 1"), "{sum}");
        // Even share among 1..3 of 4 answers is 4/3; node 1 has 2: +50%.
        assert!((s.max_deviation(&[1, 2, 3]) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn moves_between_spreads_and_save_load() {
        let a = spread();
        let mut b = spread();
        b.results[1].1 = Ok(3);
        b.results[2].1 = Ok(3);
        let m = moves(&a, &b);
        assert_eq!(m, BTreeMap::from([((1, 3), 1), ((2, 3), 1)]));
        assert_eq!(describe_moves(&m), "2 clients moved: n1->n3 1, n2->n3 1");
        assert_eq!(describe_moves(&moves(&a, &a)), "no client moved");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        a.save(&f).unwrap();
        let back = Spread::load(&f).unwrap();
        assert_eq!(back.results.len(), 4, "failures are not saved");
        assert_eq!(back.node_of(Ipv4Addr::new(198, 18, 1, 5)), Some(3));
    }

    #[test]
    fn curl_config_has_one_transfer_per_client() {
        let srcs = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)];
        let c = curl_config(&srcs, "http://198.18.0.100:80/", std::path::Path::new("/r/s"));
        assert_eq!(c.matches("url = ").count(), 2);
        assert_eq!(c.matches("next\n").count(), 1, "a trailing next would add an empty transfer");
        assert!(c.contains("interface = \"198.18.1.2\"\noutput = \"/r/s/198.18.1.2\""));
        assert!(c.contains("write-out = \"198.18.1.1 %{http_code} %{errormsg}\\n\""));
    }
}
