//! `vantus routes`: the portal's route table, each route with who may call it. Read from the
//! same declarations that build the router (`auth::routing`), without a database.

use clap::Args;

use super::CliError;
use crate::auth::routing::Access;

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RoutesArgs) -> Result<(), CliError> {
    let table = crate::admin::route_table();
    if args.json {
        let rows: Vec<serde_json::Value> = table.iter().map(|r| r.to_json()).collect();
        crate::say!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    let width = table.iter().map(|r| r.path.len()).max().unwrap_or(0);
    for r in &table {
        let access = match r.access {
            Access::Public => "public".to_owned(),
            Access::Staff(p) => format!("staff who may {}", p.label()),
        };
        crate::say!("{:<7}{:<width$}  {access}", r.method.as_str(), r.path);
    }
    Ok(())
}
