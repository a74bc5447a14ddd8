//! The compiled `vantus` executable: one-shot commands and `vantus serve` child processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::app::{client, request_verbs};
use super::wait::{eventually, poll};

/// The compiled `vantus` executable.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vantus"))
}

/// Runs `vantus <args>` with exactly `env` (plus PATH) and waits for it.
pub fn run_binary(args: &[&str], env: &HashMap<String, String>) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .expect("vantus runs")
}

/// Like [`run_binary`], with `stdin` written to the command's standard input.
pub fn run_binary_with_stdin(
    args: &[&str],
    env: &HashMap<String, String>,
    stdin: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vantus runs");
    // A command that exits before reading all of it closes the pipe: not this test's concern.
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    child.wait_with_output().expect("vantus runs")
}

/// A `vantus serve` child process whose stdout (JSON logs) is collected in the background.
/// Dropping it kills the process.
pub struct ServeProcess {
    pub child: Child,
    pub addr: String,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

request_verbs!(ServeProcess);

impl ServeProcess {
    /// Starts `vantus serve` and waits until it logs its address and `/readyz` answers 200.
    pub async fn start(env: &HashMap<String, String>) -> Self {
        let this = Self::spawn_listening(env).await;
        this.wait_ready(Duration::from_secs(30)).await;
        this
    }

    /// Starts `vantus serve` and returns as soon as it is listening (possibly not ready).
    pub async fn spawn_listening(env: &HashMap<String, String>) -> Self {
        Self::spawn_with(env, Command::new(binary())).await
    }

    pub async fn spawn_with(env: &HashMap<String, String>, mut cmd: Command) -> Self {
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            // The harness finds the address in the "listening" line, logged at info.
            .env(
                "RUST_LOG",
                match env.get("RUST_LOG").map(String::as_str) {
                    None | Some("warn") => "info",
                    Some(other) => other,
                },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("vantus serve spawns");
        let stdout = child.stdout.take().expect("piped");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = eventually(
            Duration::from_secs(30),
            "vantus serve to start listening",
            async || {
                let found = logs.lock().unwrap().iter().find_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    (v["message"] == "listening")
                        .then(|| v["addr"].as_str().unwrap_or("").to_owned())
                });
                if found.is_none()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    let mut err = String::new();
                    use std::io::Read;
                    child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                    panic!("vantus serve exited with {status} before listening: {err}");
                }
                found
            },
        )
        .await;
        Self {
            child,
            addr,
            logs,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait_ready(&self, within: Duration) {
        eventually(within, "vantus serve to become ready", async || {
            let res = self.get("/readyz").try_send().await;
            res.map(|r| r.status() == 200).unwrap_or(false)
        })
        .await
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for exit (bounded) and returns the exit code; kills the process on timeout.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let exited = poll(within, Duration::from_millis(25), async || {
            self.child.try_wait().expect("wait works")
        })
        .await;
        match exited {
            Ok(status) => status.code(),
            Err(_) => {
                let _ = self.child.kill();
                panic!("vantus did not exit within {within:?}");
            }
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
