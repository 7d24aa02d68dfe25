//! The servers the loadtest starts (atserver, redis-server), their `/proc`
//! figures, test certificates, and stopping everything on Ctrl-C.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra start time allowed per hosted atSign: each new one has an RSA-2048
/// signing key pair generated before the server listens (~0.2 s measured).
const START_PER_ATSIGN: Duration = Duration::from_secs(1);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag that every loop polls, so the run
/// stops, reports what it has and the child servers are killed by their
/// guards' `Drop`.
pub fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` is given a valid function pointer.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Spawns `cmd` so that the child is killed if the loadtest itself dies
/// (even by SIGKILL), on top of the guard's `Drop`.
fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    cmd.spawn()
}

/// Kills and reaps the child when dropped, however the run ends.
pub struct ChildGuard {
    pub child: Child,
    pub name: &'static str,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process with SIGTERM (the server flushes its stores and
    /// exits) and waits up to `timeout` for it; kills it after that. Fails
    /// when it had exited before being asked, or exited with an error.
    pub fn stop(mut self, timeout: Duration) -> Result<(), String> {
        self.check_alive()?;
        let Ok(pid) = libc::pid_t::try_from(self.pid()) else {
            return Err(format!("{}: pid out of range", self.name));
        };
        // SAFETY: kill(2) takes no pointers; `pid` is our own unreaped
        // child, so it cannot have been reused by another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{} stopped with {status}", self.name)),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot wait for {}: {e}", self.name)),
            }
        }
        Err(format!(
            "{} did not stop within {} s of SIGTERM; killed",
            self.name,
            timeout.as_secs()
        ))
    }

    /// Fails when the process has already exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited early: {status}", self.name)),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("cannot check {}: {e}", self.name)),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates for the run: `ca.pem`, `server.pem` (leaf + CA), `server.key`.
pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// ECDSA P-256 (rcgen, via `atserver`'s dev certificates).
pub fn ecdsa_certs(dir: &Path) -> Result<CertFiles, String> {
    let certs = atserver::devcerts::ensure(dir)?;
    Ok(CertFiles {
        ca: certs.ca,
        cert: certs.cert,
        key: certs.key,
    })
}

fn run_openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl (needed for --cert-type rsa): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// RSA-2048 CA and leaf made with the `openssl` CLI at run time (ring cannot
/// generate RSA keys), for the handshake-cost comparison.
pub fn rsa_certs(dir: &Path) -> Result<CertFiles, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
               extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n";
    std::fs::write(dir.join("leaf.ext"), ext).map_err(|e| format!("cannot write leaf.ext: {e}"))?;
    run_openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=loadtest RSA CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    run_openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    run_openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
        ],
    )?;
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    };
    let chain = format!("{}{}", read("leaf.pem")?, read("ca.pem")?);
    std::fs::write(dir.join("server.pem"), chain)
        .map_err(|e| format!("cannot write server.pem: {e}"))?;
    Ok(CertFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// Everything needed to run `atserver serve`.
pub struct AtServerSpec<'a> {
    pub bin: &'a Path,
    /// The atSigns to host with their CRAM secrets (at least one).
    pub hosted: &'a [(String, String)],
    /// Write the secrets to this file (mode 0600) and pass it as
    /// `--cram-secret-file` instead of a `-s` per atSign on the command
    /// line (`many-atsigns`: a thousand of them, and `ps` shows them).
    pub secret_file: Option<&'a Path>,
    pub certs: &'a CertFiles,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub shards: Option<usize>,
    /// Extra command-line arguments, passed as given.
    pub extra_args: &'a [String],
    pub durability: &'a str,
}

/// Removes ANSI colour escapes (in case the server logs to a terminal).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts the server on 127.0.0.1 port 0 and returns it with the address it
/// reports (`atServer ready addr=…`). Its log goes to `spec.log`.
pub fn start_atserver(spec: &AtServerSpec<'_>) -> Result<(ChildGuard, SocketAddr), String> {
    spawn_atserver(spec)?.wait_ready()
}

/// Spawns the server without waiting for it, so several can start at once.
/// Always call it from the thread that lives as long as the run: the
/// kernel's parent-death signal fires when the spawning *thread* ends.
pub fn spawn_atserver(spec: &AtServerSpec<'_>) -> Result<Starting, String> {
    if spec.hosted.is_empty() {
        return Err("an atserver needs at least one atSign to host".into());
    }
    let mut cmd = Command::new(spec.bin);
    cmd.arg("serve");
    match spec.secret_file {
        Some(path) => {
            write_secret_file(path, spec.hosted)?;
            for (atsign, _) in spec.hosted {
                cmd.args(["-a", atsign]);
            }
            cmd.arg("--cram-secret-file").arg(path);
        }
        None => {
            for (atsign, secret) in spec.hosted {
                cmd.args(["-a", atsign, "-s", secret]);
            }
        }
    }
    cmd.args(["-p", "0", "--host", "127.0.0.1"])
        .arg("--tls-cert")
        .arg(&spec.certs.cert)
        .arg("--tls-key")
        .arg(&spec.certs.key)
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .args(["--durability", spec.durability]);
    if let Some(shards) = spec.shards {
        cmd.args(["--shards", &shards.to_string()]);
    }
    cmd.args(spec.extra_args);
    let timeout =
        START_TIMEOUT + START_PER_ATSIGN * u32::try_from(spec.hosted.len()).unwrap_or(u32::MAX);
    spawn_logged(cmd, "atserver", "atServer ready", &spec.log, timeout)
}

/// Writes `@atsign secret` lines, readable by the owner only (the server
/// warns about a file others can read).
fn write_secret_file(path: &Path, hosted: &[(String, String)]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    for (atsign, secret) in hosted {
        text.push_str(&format!("{atsign} {secret}\n"));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Starts `atserver directory` listening on `listen` (loopback) with the
/// `name=host:port` lines of `records_file`; returns once it is ready.
pub fn start_directory(
    bin: &Path,
    listen: SocketAddr,
    records_file: &Path,
    certs: &CertFiles,
    log: &Path,
) -> Result<(ChildGuard, SocketAddr), String> {
    let mut cmd = Command::new(bin);
    cmd.args(["directory", "--listen", &listen.to_string()])
        .arg("--records-file")
        .arg(records_file)
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key);
    spawn_logged(
        cmd,
        "atserver directory",
        "atDirectory ready",
        log,
        START_TIMEOUT,
    )?
    .wait_ready()
}

/// A spawned process whose log has not said it is ready yet.
pub struct Starting {
    guard: ChildGuard,
    /// Addresses from the log lines with the ready marker.
    ready: std::sync::mpsc::Receiver<String>,
    ready_marker: &'static str,
    log: PathBuf,
    timeout: Duration,
}

/// Spawns `cmd` with its log (stderr) copied to `log`; [`Starting::wait_ready`]
/// then waits for a log line with `ready_marker` naming the address it
/// listens on (`addr=…`).
fn spawn_logged(
    mut cmd: Command,
    name: &'static str,
    ready_marker: &'static str,
    log: &Path,
    timeout: Duration,
) -> Result<Starting, String> {
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(&mut cmd).map_err(|e| format!("cannot start {name}: {e}"))?;
    let stderr = child.stderr.take();
    let guard = ChildGuard { child, name };
    let Some(stderr) = stderr else {
        return Err(format!("{name} stderr was not piped"));
    };
    let mut log_file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the log for the process's whole life so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let plain = strip_ansi(&line);
            let _ = writeln!(log_file, "{plain}");
            if plain.contains(ready_marker)
                && let Some(addr) = plain
                    .split("addr=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    Ok(Starting {
        guard,
        ready: rx,
        ready_marker,
        log: log.to_path_buf(),
        timeout,
    })
}

impl Starting {
    /// Waits until the process says it is ready; returns it with its address.
    pub fn wait_ready(self) -> Result<(ChildGuard, SocketAddr), String> {
        let Starting {
            mut guard,
            ready,
            ready_marker,
            log,
            timeout,
        } = self;
        let name = guard.name;
        let deadline = Instant::now() + timeout;
        loop {
            match ready.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    let addr = addr
                        .parse()
                        .map_err(|e| format!("{name} reported a bad address {addr:?}: {e}"))?;
                    return Ok((guard, addr));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{name} exited before it was ready; see {}",
                        log.display()
                    ));
                }
            }
            guard
                .check_alive()
                .map_err(|e| format!("{e}; see {}", log.display()))?;
            if interrupted() {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not report `{ready_marker}` within {} s; see {}",
                    timeout.as_secs(),
                    log.display()
                ));
            }
        }
    }
}

/// A free loopback port (there is a small race until the server binds it).
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Starts `redis-server` with TLS only (plain port 0) on a free loopback
/// port, using the same certificates as the atserver, with its data (and
/// any AOF) and log in `dir`. `persistence` are the arguments that set its
/// persistence (`redis::Persistence::server_args`); RDB snapshots are off
/// in every case. The tools must be installed (`redis::ensure_installed`).
pub fn start_redis(
    certs: &CertFiles,
    dir: &Path,
    persistence: &[&str],
) -> Result<(ChildGuard, SocketAddr), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = free_port()?;
    let log = dir.join("redis.log");
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--tls-port",
        &port.to_string(),
    ])
    .arg("--tls-cert-file")
    .arg(&certs.cert)
    .arg("--tls-key-file")
    .arg(&certs.key)
    .arg("--tls-ca-cert-file")
    .arg(&certs.ca)
    .args([
        "--tls-auth-clients",
        "no",
        "--save",
        "",
        "--daemonize",
        "no",
    ])
    .args(persistence)
    .args(["--maxclients", "20000", "--logfile"])
    .arg(&log)
    .arg("--dir")
    .arg(dir)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let child = spawn_tied(&mut cmd).map_err(|e| format!("cannot start redis-server: {e}"))?;
    let mut guard = ChildGuard {
        child,
        name: "redis-server",
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        guard
            .check_alive()
            .map_err(|e| format!("{e}; see {}", log.display()))?;
        if interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "redis-server did not listen on {addr} within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((guard, addr))
}

/// Memory and CPU of a process from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// cutime + cstime, seconds: the CPU of the children the process has
    /// waited for (redis-server's AOF-rewrite children once reaped).
    pub reaped_children_cpu_seconds: f64,
    pub threads: u64,
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Reads a sample; `pid` `None` means this process.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after its `)`.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) overall are 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Fields 16 (cutime) and 17 (cstime).
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    let ticks = clock_ticks_per_second();
    Some(ProcSample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_seconds: (utime + stime) as f64 / ticks,
        reaped_children_cpu_seconds: (cutime + cstime) as f64 / ticks,
        threads: field("Threads:"),
    })
}

/// Established TCP connections whose local end is `127.0.0.1:port`, from
/// `/proc/net/tcp`: for a server listening there, the connections it has
/// accepted and not yet closed. `None` when the table cannot be read.
pub fn established_into(port: u16) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    Some(count_established_into(&table, port))
}

/// The counting of [`established_into`] over the text of a `/proc/net/tcp`.
fn count_established_into(table: &str, port: u16) -> usize {
    // 127.0.0.1 as the kernel prints it (little-endian hex), then the port.
    let local = format!("0100007F:{port:04X}");
    const ESTABLISHED: &str = "01";
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let local_field = fields.nth(1);
            let state = fields.nth(1);
            local_field == Some(local.as_str()) && state == Some(ESTABLISHED)
        })
        .count()
}

/// Raises the soft open-files limit to the hard one (idle runs hold
/// thousands of sockets); returns the limit now in force.
pub fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(None).expect("sample self");
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
    }

    #[test]
    fn only_established_connections_into_the_port_are_counted() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000\n\
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000\n\
   3: 0100007F:1F90 0100007F:D432 06 00000000:00000000\n\
   4: 0100007F:1F90 0100007F:D433 01 00000000:00000000\n";
        assert_eq!(count_established_into(table, 0x1F90), 2);
        assert_eq!(count_established_into(table, 0x1F91), 0);
    }

    #[test]
    fn colour_escapes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m1.2.3.4:5"),
            "addr=1.2.3.4:5"
        );
    }
}
