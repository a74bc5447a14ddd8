//! A real SMTP server for tests: Python's `aiosmtpd` (scripts/ensure-services installs it)
//! writing every message it accepts into a maildir, which [`SmtpServer::messages`] reads back
//! with Python's own email parser (headers decoded, MIME parts decoded), so the test checks
//! what a mail client would show, not lettre's encoding choices.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// One delivered message, as a mail client reads it.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Header name (lower case) to its values, decoded (RFC 2047).
    pub headers: BTreeMap<String, Vec<String>>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl Mail {
    /// The first value of a header, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// `aiosmtpd` on 127.0.0.1, stopped when dropped; its maildir outlives restarts.
pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

const READ_MAILDIR: &str = r#"
import email, email.policy, json, mailbox, os, sys
out = []
path = sys.argv[1]
if os.path.isdir(os.path.join(path, "new")):
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        with box.get_file(key) as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        headers = {}
        for name, value in msg.items():
            headers.setdefault(name.lower(), []).append(str(value))
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        out.append({
            "headers": headers,
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        })
print(json.dumps(out))
"#;

impl SmtpServer {
    /// Starts on a free port.
    pub fn start() -> Self {
        let mut this = Self::not_started();
        this.resume();
        this
    }

    /// Picks a free port and a maildir but starts nothing yet: a mail server that is down.
    pub fn not_started() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain: the server is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Starts (again) on the same port and maildir; waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/ensure-services installs aiosmtpd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "aiosmtpd exited with {status}: is it installed (python3 -m pip install aiosmtpd)?"
                );
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (the maildir stays): the outage of a test.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message delivered so far.
    pub fn messages(&self) -> Vec<Mail> {
        let out = Command::new("python3")
            .args(["-c", READ_MAILDIR])
            .arg(self.maildir())
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "reading the maildir failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("the reader prints JSON");
        parsed
            .into_iter()
            .map(|m| Mail {
                headers: serde_json::from_value(m["headers"].clone()).unwrap_or_default(),
                text: m["text"].as_str().map(str::to_owned),
                html: m["html"].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// How many delivered messages carry each Message-ID.
    pub fn count_by_message_id(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in self.messages() {
            *counts.entry(m.header("message-id").to_owned()).or_default() += 1;
        }
        counts
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
