//! Staff accounts from the command line: `vantus user create` makes the first owner on a new
//! database, stores only an argon2id hash, refuses weak passwords and second accounts for an
//! address, and audits the creation without the address.

use std::collections::HashMap;

use secrecy::SecretString;
use vantus::auth::password::Passwords;
use vantus::config::{Argon2Settings, AuthConfig};

use crate::both_engines;
use crate::support::{Engine, TestDb, base_env, open_db, run_binary, run_binary_with_stdin};

const PASSWORD: &str = "correct horse battery staple";

/// The test database's settings, with cheap hashing (behaviour, not cost, is tested here).
fn env(db: &TestDb) -> HashMap<String, String> {
    let mut env = base_env(db);
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    env
}

fn create(
    env: &HashMap<String, String>,
    email: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    run_binary_with_stdin(
        &[
            "user",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--name",
            "Ada Lovelace",
            "--password-stdin",
        ],
        env,
        format!("{password}\n").as_bytes(),
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn the_first_owner_is_created_on_a_new_database(engine: Engine) {
    let db = TestDb::create(engine).await;
    let env = env(&db);
    let o = create(&env, "Ada@Example.COM", "owner", PASSWORD);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("created the owner account "), "{out}");
    assert!(!out.contains("ada@"), "the address is not printed: {out}");

    let pool = open_db(&db.url).await;
    let (id, email, hash): (uuid::Uuid, String, String) =
        vantus::on_db!(&pool, p => sqlx::query_as(
        "SELECT id, email, password_hash FROM users").fetch_one(p).await)
        .unwrap();
    assert_eq!(email, "ada@example.com", "stored lower-cased");
    assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let passwords = Passwords::new(&AuthConfig {
        argon2: Argon2Settings {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        hashes_at_once: 1,
    })
    .unwrap();
    assert!(
        passwords
            .verify(&SecretString::from(PASSWORD), Some(&hash))
            .await
    );
    let role: String = vantus::on_db!(&pool, p => sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1")
        .bind(id).fetch_one(p).await).unwrap();
    assert_eq!(role, "owner");
    let (resource, detail): (String, String) = vantus::on_db!(&pool, p => sqlx::query_as(
        "SELECT resource, detail FROM audit_log WHERE action = 'user.created'").fetch_one(p).await)
    .unwrap();
    assert_eq!(resource, format!("user:{id}"));
    assert!(
        detail.contains("owner") && !detail.to_lowercase().contains("ada"),
        "{detail}"
    );

    // One account per address, whatever its case.
    let again = create(&env, "ada@example.com", "viewer", "another good passphrase");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("--email: an account with this email address exists already"),
        "{}",
        stderr(&again)
    );
}

async fn bad_input_is_refused_with_a_reason_and_nothing_is_stored(engine: Engine) {
    let db = TestDb::create(engine).await;
    let env = env(&db);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "grace@example.com",
            "owner",
            "password1234",
            "the password: is one of the most common passwords",
        ),
        (
            "grace@example.com",
            "owner",
            "short",
            "the password: must be at least 12 characters",
        ),
        (
            "grace@example.com",
            "owner",
            "grace-and-more-words",
            "the password: must not contain your email address or name",
        ),
        (
            "grace@example.com",
            "superuser",
            PASSWORD,
            "--role: \"superuser\" is not a role; the roles are owner, admin, editor, sales, viewer",
        ),
        (
            "not-an-address",
            "owner",
            PASSWORD,
            "--email: must be an email address",
        ),
    ];
    for (email, role, password, expected) in cases {
        let o = create(&env, email, role, password);
        assert!(!o.status.success(), "{email} {role} {password}");
        assert!(
            stderr(&o).contains(expected),
            "expected {expected:?} in {}",
            stderr(&o)
        );
    }
    // Without a terminal and without --password-stdin/--password-file there is nobody to ask.
    let words = |line: &'static str| line.split(' ').collect::<Vec<_>>();
    let o = run_binary(
        &words("user create --email grace@example.com --role owner"),
        &env,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no password given"), "{}", stderr(&o));
    let o = run_binary_with_stdin(
        &words(
            "user create --email grace@example.com --role owner --tenant nowhere --password-stdin",
        ),
        &env,
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        stderr(&o).contains("--tenant: no tenant \"nowhere\""),
        "{}",
        stderr(&o)
    );

    let pool = open_db(&db.url).await;
    let users: i64 = vantus::on_db!(&pool, p => sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(p).await).unwrap();
    assert_eq!(users, 0, "nothing was stored");
}

both_engines!(
    the_first_owner_is_created_on_a_new_database,
    bad_input_is_refused_with_a_reason_and_nothing_is_stored,
);
