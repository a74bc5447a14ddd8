//! `vantus user create --email ADDRESS --role ROLE`: a staff account, made from the command
//! line. This is how the first owner comes to exist; there is no default account or password.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{CliError, command_telemetry, load_config};
use crate::audit::{self, Actor, AuditAction};
use crate::auth::password::{self, Passwords};
use crate::auth::permission::Role;
use crate::auth::users::{self, CreateError, LoginEmail, StaffName};
use crate::content::seed;
use crate::store;
use crate::tenancy;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account and its membership of a tenant. The password is prompted for
    /// (twice, not echoed), or read from standard input (--password-stdin) or a file
    /// (--password-file). Applies pending migrations first, so it works on a new database.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The address the person signs in with.
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,
    /// owner, admin, editor, sales or viewer.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// The person's name, as shown in the portal [default: the address's local part].
    #[arg(long)]
    pub name: Option<String>,
    /// The tenant the account belongs to [default: VANTUS_SITE_TENANT].
    #[arg(long, value_name = "SLUG")]
    pub tenant: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password_file")]
    pub password_stdin: bool,
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

pub async fn run(config_file: &Option<PathBuf>, cmd: UserCommand) -> Result<(), CliError> {
    let UserCommand::Create(args) = cmd;
    let failed = |what: &str, e: &dyn std::fmt::Display| CliError::Failed(format!("{what}: {e}"));
    let email = LoginEmail::parse(&args.email).map_err(|why| failed("--email", &why))?;
    let role: Role = args
        .role
        .parse()
        .map_err(|why: String| failed("--role", &why))?;
    let name = match &args.name {
        Some(n) => StaffName::parse(n)
            .map_err(|why| failed("--name", &why))?
            .as_str()
            .to_owned(),
        None => email
            .as_str()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let secret = read_password(&args)?;
    password::check_policy(secret.expose_secret(), &[email.as_str(), &name])
        .map_err(|why| failed("the password", &why))?;
    let hash = Passwords::new(&config.auth)
        .map_err(|e| failed("password hashing", &e))?
        .hash(&secret)
        .await
        .map_err(|e| failed("password hashing", &e))?;

    let db = store::connect(&config.database).await?;
    let outcome = async {
        seed::migrate_and_seed(&db, &config.site_tenant)
            .await
            .map_err(|e| failed("database", &e))?;
        let slug = args.tenant.as_deref().unwrap_or(&config.site_tenant);
        in_write_tx!(&db, conn => {
            let scope = tenancy::find_by_slug(conn, slug)
                .await?
                .ok_or_else(|| failed("--tenant", &format!("no tenant \"{slug}\"")))?;
            let id = users::create(conn, &email, &name, Some(&hash), &scope, role)
                .await
                .map_err(|e| match e {
                    CreateError::EmailTaken => failed("--email", &e),
                    CreateError::Database(e) => e.into(),
                })?;
            // Who was made what; the address stays out of the log (the id names the account).
            audit::record_for(conn, &scope, &Actor::Cli, AuditAction::UserCreated,
                &format!("user:{id}"), json!({ "role": role.as_str() }))
                .await?;
            Ok::<_, CliError>((id, scope))
        })
    }
    .await;
    db.close().await;
    let (id, scope) = outcome?;
    crate::say!("created the {role} account {id} in tenant {}", scope.slug());
    Ok(())
}

/// The longest password input read, in bytes: password::MAX_CHARS of up to four bytes.
const MAX_PASSWORD_BYTES: u64 = (password::MAX_CHARS as u64) * 4 + 2;

fn read_password(args: &CreateArgs) -> Result<SecretString, CliError> {
    let line = |reader: &mut dyn BufRead, source: &str| -> Result<SecretString, CliError> {
        let mut line = String::new();
        reader
            .take(MAX_PASSWORD_BYTES)
            .read_line(&mut line)
            .map_err(|e| {
                CliError::Failed(format!("cannot read the password from {source}: {e}"))
            })?;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            return Err(CliError::Failed(format!("{source} holds no password")));
        }
        Ok(SecretString::from(line.to_owned()))
    };
    if let Some(path) = &args.password_file {
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::Failed(format!("--password-file {}: {e}", path.display())))?;
        return line(
            &mut std::io::BufReader::new(file),
            &format!("--password-file {}", path.display()),
        );
    }
    if args.password_stdin {
        return line(&mut std::io::stdin().lock(), "standard input");
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Failed(
            "no password given: run this in a terminal to be asked, or use --password-stdin or --password-file".into(),
        ));
    }
    let first = prompt_hidden("Password: ")?;
    let again = prompt_hidden("Repeat the password: ")?;
    if first.expose_secret() != again.expose_secret() {
        return Err(CliError::Failed("the two passwords differ".into()));
    }
    Ok(first)
}

/// Asks on the terminal with echo off, and turns echo back on whatever happens.
fn prompt_hidden(prompt: &str) -> Result<SecretString, CliError> {
    use rustix::termios::{self, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let failed = |e: &dyn std::fmt::Display| {
        CliError::Failed(format!("cannot read the password from the terminal: {e}"))
    };
    let saved = termios::tcgetattr(&stdin).map_err(|e| failed(&e))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    termios::tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(|e| failed(&e))?;
    struct Restore<'a>(&'a std::io::Stdin, rustix::termios::Termios);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ =
                rustix::termios::tcsetattr(self.0, rustix::termios::OptionalActions::Now, &self.1);
            eprintln!();
        }
    }
    let _restore = Restore(&stdin, saved);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_PASSWORD_BYTES)
        .read_line(&mut line)
        .map_err(|e| failed(&e))?;
    Ok(SecretString::from(
        line.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}
