//! A Postgres server of the test's own, which it may stop and start again: the outage cases
//! cannot touch the shared server that other tests use.
//!
//! Postgres refuses to run as root, so when the tests run as root the server's commands run as
//! the `postgres` user (`runuser -u postgres --`), in a temporary data directory owned by it.
//! The server listens on `127.0.0.1` only, on a free port that it keeps across restarts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A private Postgres server: `initdb` in a temporary directory, `pg_ctl start`, and
/// `pg_ctl stop -m immediate` when dropped (also when the test panics), after which the
/// directory is removed.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some("postgres")` when the commands must run as that user (we are root).
    run_as: Option<&'static str>,
    running: bool,
}

impl PrivatePostgres {
    /// Makes and starts the server.
    ///
    /// # Panics
    /// When the Postgres server binaries cannot be found, or `initdb` or `pg_ctl start` fails:
    /// the outage cases must fail rather than skip when they cannot run.
    #[must_use]
    pub fn start() -> Self {
        let bin = server_bindir().unwrap_or_else(|| {
            panic!(
                "the outage cases need the Postgres server binaries (initdb, pg_ctl): none found \
                 by `pg_config --bindir` or in /usr/lib/postgresql/*/bin"
            )
        });
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("faults-pg-")
            .tempdir()
            .expect("a temporary directory for Postgres");
        if let Some(user) = run_as {
            let uid = user_id(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), None)
                .unwrap_or_else(|e| panic!("cannot give {} to {user}: {e}", dir.path().display()));
        }
        let port = free_port();
        let mut server = Self {
            dir,
            bin,
            port,
            run_as,
            running: false,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
            ],
        );
        server.start_again();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The port the server listens on (the same across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An admin URL for the server: `postgres://postgres@127.0.0.1:PORT/postgres`.
    #[must_use]
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way an operator does (`pg_ctl stop -m fast`: sessions are ended
    /// with `admin_shutdown`, then the server exits).
    ///
    /// # Panics
    /// When `pg_ctl stop` fails.
    pub fn stop(&mut self) {
        let data = self.data_dir().display().to_string();
        self.run(
            "pg_ctl",
            &["stop", "-D", &data, "-m", "fast", "-w", "-t", "30"],
        );
        self.running = false;
    }

    /// Starts the (stopped) server again on the same port and data.
    ///
    /// # Panics
    /// When `pg_ctl start` fails.
    pub fn start_again(&mut self) {
        let data = self.data_dir().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let socket_dir = self.dir.path().display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c unix_socket_directories={socket_dir} \
             -c max_connections=100",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options,
            ],
        );
        self.running = true;
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        output
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            // Never panic here: the server may already be gone.
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-D", &data, "-m", "immediate", "-w", "-t", "30"])
                .output();
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir` when it holds them, else the
/// newest `/usr/lib/postgresql/*/bin` that does.
fn server_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_tools(&dir) {
            return Some(dir);
        }
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, dir)| dir)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_id(user: &str) -> u32 {
    let output = Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `id -u {user}`: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!("the outage cases run Postgres as the user {user}, who does not exist")
        })
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    // Let the kernel forget the socket before Postgres binds it.
    std::thread::sleep(Duration::from_millis(10));
    port
}
