//! Throwaway PostgreSQL clusters for tests that need more than a database: a primary with
//! replication enabled and streaming replicas made by `pg_basebackup`. Each cluster lives in a
//! temporary folder on its own port and is stopped when dropped. As root, the server binaries
//! run as the `postgres` user (PostgreSQL refuses to run as root).
//!
//! Needs PostgreSQL's server binaries: `PG_BIN`, or the newest `/usr/lib/postgresql/*/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct PgCluster {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    dir: TempDir,
    running: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.retain(|p| p.join("pg_ctl").exists());
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop().expect(
        "PostgreSQL server binaries are needed for replica tests: install postgresql or set PG_BIN",
    )
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn owned_temp_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vantus-pg-")
        .tempdir()
        .expect("temp dir");
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status()
            .expect("chown runs");
        assert!(status.success());
    }
    dir
}

impl PgCluster {
    /// A new primary that accepts replication connections from 127.0.0.1.
    pub fn primary() -> Self {
        let bin = bin_dir();
        let dir = owned_temp_dir();
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        run(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nwal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '64MB'\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        let mut c = Self {
            port: free_port(),
            data,
            bin,
            dir,
            running: false,
        };
        c.start();
        c
    }

    /// A streaming replica of `primary`, cloned with `pg_basebackup`.
    pub fn replica_of(primary: &PgCluster) -> Self {
        let bin = primary.bin.clone();
        let dir = owned_temp_dir();
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        let port_s = primary.port.to_string();
        run(
            &bin,
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port_s,
                "-U",
                "postgres",
                "-D",
                &data_s,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\nunix_socket_directories = '{}'\nhot_standby = on\n",
                dir.path().display()
            ),
        );
        let mut c = Self {
            port: free_port(),
            data,
            bin,
            dir,
            running: false,
        };
        c.start();
        c
    }

    pub fn start(&mut self) {
        let data_s = self.data.display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let opts = format!("-p {}", self.port);
        run(
            &self.bin,
            "pg_ctl",
            &["start", "-w", "-D", &data_s, "-l", &log, "-o", &opts],
        );
        self.running = true;
    }

    /// Stops abruptly, as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        if self.running {
            let data_s = self.data.display().to_string();
            run(
                &self.bin,
                "pg_ctl",
                &["stop", "-w", "-D", &data_s, "-m", "immediate"],
            );
            self.running = false;
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("config file");
    f.write_all(text.as_bytes()).expect("config written");
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data_s = self.data.display().to_string();
            let _ = std::panic::catch_unwind(|| {
                run(
                    &self.bin,
                    "pg_ctl",
                    &["stop", "-w", "-D", &data_s, "-m", "fast"],
                )
            });
        }
    }
}
