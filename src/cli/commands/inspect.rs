//! validate, deptree, dump: commands that read the environment file and contact no ship.

use super::super::{Cli, CliError, Things};
use super::load;
use crate::orchestrate::plan::{self, Graph};

/// `maestro validate`: the whole file is loaded and checked (template, YAML, model, cross
/// references, cycles); nothing is contacted.
pub(in crate::cli) fn validate(cli: &Cli) -> Result<i32, CliError> {
    let env = load(cli)?;
    let graph = Graph::new(&env);
    graph.topological_order()?;
    let instances = graph.nodes.len();
    if cli.json {
        let report = serde_json::json!({
            "valid": true,
            "file": env.source,
            "name": env.name,
            "schema": env.schema,
            "ships": env.ships.len(),
            "services": env.services.len(),
            "instances": instances,
        });
        println!("{report}");
    } else {
        println!(
            "{}: environment `{}` is valid (schema {}): {} ships, {} services, {} instances",
            env.source,
            env.name,
            env.schema,
            env.ships.len(),
            env.services.len(),
            instances
        );
    }
    Ok(0)
}

/// `maestro deptree`: the services and what they require, as a tree.
pub(in crate::cli) fn deptree(
    cli: &Cli,
    things: &Things,
    recursive: bool,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    print!("{}", plan::render_deptree(&env, &things.names, recursive)?);
    Ok(0)
}

/// `maestro dump`: the environment after templating, inheritance and defaults, as YAML (or
/// JSON with `--json`). Secrets print as `***`.
pub(in crate::cli) fn dump(cli: &Cli) -> Result<i32, CliError> {
    let env = load(cli)?;
    let text = if cli.json {
        serde_json::to_string_pretty(&env).map_err(|err| err.to_string())
    } else {
        serde_saphyr::to_string(&env).map_err(|err| err.to_string())
    }
    .map_err(|err| CliError::Failed(format!("cannot print the environment: {err}")))?;
    println!("{}", text.trim_end());
    Ok(0)
}
