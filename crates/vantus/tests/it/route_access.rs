//! Every portal route, read from the route table the router is built from
//! (`vantus::admin::route_table`), is tried as nobody, as each role, and with bad form tokens:
//!
//! * not signed in: a page is sent to sign-in (and back after), JSON gets 401;
//! * signed in with a role that lacks the route's permission: 403; with one that has it: never
//!   403 (so the declared permission is the one the handler's `Staff<P>` checks);
//! * every state-changing route refuses a missing form token, a forged one, and a cross-site
//!   origin, even for an owner; public ones refuse a cross-site origin.
//!
//! A route added later is covered here without anyone listing it.

use reqwest::Method;
use vantus::auth::permission::{Permission, Role};
use vantus::auth::routing::{Access, RouteSpec};

use crate::both_engines;
use crate::support::staff::{Signed, cheap_hashing, must_create_user, sign_in_as};
use crate::support::{Engine, TestApp};

/// A server where sign-in is cheap and not throttled (this test signs in a hundred times),
/// with an account per role.
async fn spawn_with_every_role(engine: Engine) -> TestApp {
    let app = TestApp::spawn_with(engine, |env| {
        cheap_hashing(env);
        env.insert("VANTUS_RATE_LIMIT_LOGIN".into(), "100000/1m".into());
        env.insert("VANTUS_RATE_LIMIT_LOGIN_ACCOUNT".into(), "100000/1m".into());
    })
    .await;
    for role in Role::ALL {
        must_create_user(&app, &email_of(role), role.as_str());
    }
    app
}

fn email_of(role: Role) -> String {
    format!("{role}@example.com")
}

/// The path with each `{parameter}` replaced by a value that names nothing stored.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "0190c6a4-0000-7000-8000-000000000000".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser-like request to `route`, from this site.
fn request(app: &TestApp, route: &RouteSpec, accept: &str) -> crate::support::TestRequest {
    let req = app
        .request(route.method.clone(), &concrete(route.path))
        .header("accept", accept)
        .header("sec-fetch-site", "same-origin");
    if is_unsafe(&route.method) {
        req.header("content-type", "application/x-www-form-urlencoded")
    } else {
        req
    }
}

fn what(route: &RouteSpec) -> String {
    format!("{} {}", route.method, route.path)
}

async fn every_route_answers_only_the_roles_it_declares(engine: Engine) {
    let app = spawn_with_every_role(engine).await;
    let table = vantus::admin::route_table();
    assert!(
        table.iter().filter(|r| r.access != Access::Public).count() >= 4,
        "the table holds the portal: {table:?}"
    );
    for route in &table {
        assert!(
            route.path.starts_with("/admin"),
            "{}: portal routes live under /admin",
            what(route)
        );
        let Access::Staff(permission) = route.access else {
            // A public route answers a visitor without a session (never a 5xx).
            let res = request(&app, route, "text/html").await;
            assert!(
                res.status().as_u16() < 500,
                "{}: {}",
                what(route),
                res.status()
            );
            continue;
        };
        // Nobody signed in.
        let page = request(&app, route, "text/html").await;
        assert_eq!(page.status(), 303, "{} as nobody (page)", what(route));
        let to = page.headers()["location"].to_str().unwrap();
        assert!(
            to.starts_with("/admin/login?next="),
            "{}: {to}",
            what(route)
        );
        let json = request(&app, route, "application/json").await;
        assert_eq!(json.status(), 401, "{} as nobody (JSON)", what(route));

        for role in Role::ALL {
            // A fresh session each time: a permitted POST may end it (sign-out).
            let Signed { cookie, token } = sign_in_as(&app, &email_of(role)).await;
            let mut req = request(&app, route, "text/html").header("cookie", &cookie);
            if is_unsafe(&route.method) {
                req = req.body(format!("csrf_token={token}"));
            }
            let res = req.await;
            let status = res.status().as_u16();
            if role.can(permission) {
                assert!(
                    status != 403 && status < 500,
                    "{} as {role} (allowed to {}): {status}",
                    what(route),
                    permission.label()
                );
            } else {
                assert_eq!(status, 403, "{} as {role}", what(route));
            }
        }
    }
}

async fn every_state_changing_route_needs_its_form_token_and_this_site(engine: Engine) {
    let app = spawn_with_every_role(engine).await;
    let unsafe_routes: Vec<RouteSpec> = vantus::admin::route_table()
        .into_iter()
        .filter(|r| is_unsafe(&r.method))
        .collect();
    assert!(!unsafe_routes.is_empty());
    for route in &unsafe_routes {
        // Another site, whoever is signed in: refused before the handler.
        let Signed { cookie, token } = sign_in_as(&app, &email_of(Role::Owner)).await;
        let res = app
            .request(route.method.clone(), &concrete(route.path))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .header("cookie", &cookie)
            .body(format!("csrf_token={token}"))
            .await;
        assert_eq!(res.status(), 403, "{} from another site", what(route));
        let body = res.text().await.unwrap();
        assert!(body.contains("other sites"), "{}: {body}", what(route));
        if route.access == Access::Public {
            continue;
        }
        // An owner may do anything, so a 403 here can only be the token's.
        let forged = {
            let mut t = token.clone().into_bytes();
            t[0] = if t[0] == b'a' { b'b' } else { b'a' };
            String::from_utf8(t).unwrap()
        };
        for (body, why) in [
            (String::new(), "without a form token"),
            (format!("csrf_token={forged}"), "with a forged form token"),
            (format!("csrf_token={token}x"), "with a longer form token"),
        ] {
            let res = request(&app, route, "text/html")
                .header("cookie", &cookie)
                .body(body)
                .await;
            assert_eq!(res.status(), 403, "{} {why}", what(route));
            let text = res.text().await.unwrap();
            assert!(text.contains("expired"), "{} {why}: {text}", what(route));
        }
        // Another session's token is not this one's.
        let other = sign_in_as(&app, &email_of(Role::Owner)).await;
        let res = request(&app, route, "text/html")
            .header("cookie", &cookie)
            .body(format!("csrf_token={}", other.token))
            .await;
        assert_eq!(
            res.status(),
            403,
            "{} with another session's token",
            what(route)
        );
    }
}

both_engines!(
    every_route_answers_only_the_roles_it_declares,
    every_state_changing_route_needs_its_form_token_and_this_site,
);

/// The table is what `vantus routes --json` prints, and each permission it names is one of
/// the matrix's.
#[test]
fn the_route_table_is_printed_for_operators() {
    let out = crate::support::run_binary(&["routes", "--json"], &Default::default());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let table = vantus::admin::route_table();
    assert_eq!(printed.len(), table.len());
    for (p, r) in printed.iter().zip(&table) {
        assert_eq!(p, &r.to_json());
        if let Access::Staff(perm) = r.access {
            assert!(Permission::ALL.contains(&perm));
        }
    }
}
