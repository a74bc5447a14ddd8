//! The portal's route table: every `/admin` route is declared here, through [`Portal`], with
//! who may call it: the public (sign-in, invitations, password reset) or staff holding one
//! [`Permission`].
//!
//! The same declarations build the router and the table that `vantus routes` prints, so the
//! table cannot drift from what is served. The route-enumerating tests read that table and
//! prove, for every entry, that a visitor who is not signed in is sent to sign-in (HTML) or
//! gets 401 (JSON), that a role without the permission gets 403, and that every state-changing
//! route refuses a missing or forged form token and a cross-site origin. A route declared with
//! a permission its handler's `Staff<P>` does not match fails them; there is no way to add a
//! portal route without declaring its access.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::Auth;
use super::permission::{Permission, perm};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the handler takes no `Staff` (the sign-in form, an invitation link).
    Public,
    /// A signed-in staff member whose role has the permission.
    Staff(Permission),
}

/// One declared route.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

impl RouteSpec {
    /// `{"method": "POST", "path": "/admin/x", "access": "public" | "staff", "permission": …}`
    pub fn to_json(&self) -> serde_json::Value {
        let (access, permission) = match self.access {
            Access::Public => ("public", None),
            Access::Staff(p) => ("staff", Some(format!("{p:?}"))),
        };
        serde_json::json!({
            "method": self.method.as_str(),
            "path": self.path,
            "access": access,
            "permission": permission,
        })
    }
}

/// Declares portal routes: builds the router (with the state's layers) and records the table.
pub struct Portal {
    /// `None` when only the table is wanted (`vantus routes`): no state, no router.
    auth: Option<Auth>,
    router: Router<Auth>,
    table: Vec<RouteSpec>,
}

impl Portal {
    /// Declarations that build the served router.
    pub fn wired(auth: &Auth) -> Self {
        Self {
            auth: Some(auth.clone()),
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Declarations that only record the table.
    pub fn table_only() -> Self {
        Self {
            auth: None,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// A route for staff allowed `P`; its handler takes `Staff<P>`.
    pub fn staff<P: perm::Required, H, T>(
        &mut self,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> &mut Self
    where
        H: Handler<T, Auth>,
        T: 'static,
    {
        self.add(
            method,
            path,
            Access::Staff(P::PERMISSION),
            handler,
            |r, _| r,
        )
    }

    /// A route anyone may call.
    pub fn public<H, T>(&mut self, method: Method, path: &'static str, handler: H) -> &mut Self
    where
        H: Handler<T, Auth>,
        T: 'static,
    {
        self.add(method, path, Access::Public, handler, |r, _| r)
    }

    /// A public route with a layer built from the state (a rate limit).
    pub fn public_layered<H, T>(
        &mut self,
        method: Method,
        path: &'static str,
        handler: H,
        layer: impl FnOnce(MethodRouter<Auth>, &Auth) -> MethodRouter<Auth>,
    ) -> &mut Self
    where
        H: Handler<T, Auth>,
        T: 'static,
    {
        self.add(method, path, Access::Public, handler, layer)
    }

    fn add<H, T>(
        &mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
        layer: impl FnOnce(MethodRouter<Auth>, &Auth) -> MethodRouter<Auth>,
    ) -> &mut Self
    where
        H: Handler<T, Auth>,
        T: 'static,
    {
        assert!(
            !self
                .table
                .iter()
                .any(|r| r.method == method && r.path == path),
            "{method} {path} is declared twice"
        );
        if let Some(auth) = &self.auth {
            let filter = MethodFilter::try_from(method.clone())
                .unwrap_or_else(|_| panic!("{method} cannot be routed"));
            let route = layer(on(filter, handler), auth);
            self.router = std::mem::take(&mut self.router).route(path, route);
        }
        self.table.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }

    pub fn into_router(self) -> Router<Auth> {
        self.router
    }

    pub fn into_table(self) -> Vec<RouteSpec> {
        self.table
    }
}
