//! Signed-in staff in tests: whether a cookie opens the portal, a page as its holder sees it,
//! and the form token a page carries.

use std::collections::HashMap;

use super::{ResponseExt, TestApp, run_binary_with_stdin};

/// `vantus user create` for "Ada Lovelace" with `password` on stdin.
pub fn create_user(
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

/// Whether `cookie` opens the dashboard (else it is sent away: to sign in, or to enrolment).
pub async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let res = app.get("/admin").header("cookie", cookie).await;
    match res.status().as_u16() {
        200 => true,
        303 => false,
        other => panic!("GET /admin answered {other}"),
    }
}

/// A portal page as the holder of `cookie` sees it (it must answer 200).
pub async fn page_as(app: &TestApp, path: &str, cookie: &str) -> String {
    app.get(path)
        .header("cookie", cookie)
        .await
        .assert_status(200)
        .html()
        .await
}

/// The session's form token, as a portal page carries it.
pub fn form_token(page: &str) -> String {
    let after = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .expect("a form token");
    after.split('"').next().unwrap().to_owned()
}
