//! validate, deptree, dump: commands that read the environment file and contact no ship.

use super::super::{Cli, CliError};
use super::load;
use crate::config;
use crate::orchestrate::plan::select::{self, Graph};
use crate::orchestrate::plan::spec;
use crate::ui;

/// `maestro validate`: the whole file is loaded and checked (template, YAML, model, cross
/// references, cycles); nothing is contacted.
pub(in crate::cli) fn validate(cli: &Cli) -> Result<i32, CliError> {
    let env = load(cli)?;
    warn_without_services(&env);
    warn_weak_secrets(&env);
    for warning in &env.warnings.0 {
        ui::eprintln(&warning.as_warning());
    }
    let graph = Graph::new(&env);
    graph.topological_order()?;
    let instances = graph.nodes.len();
    if cli.json {
        // The shape of the failure's document (`CliError::to_json`), `valid` included.
        let report = serde_json::json!({
            "ok": true,
            "valid": true,
            "exit_code": 0,
            "file": env.source,
            "name": env.name,
            "schema": env.schema,
            "ships": env.ships.len(),
            "services": env.services.len(),
            "instances": instances,
        });
        // Names and counts only: as written.
        ui::println_fields(&report.to_string());
    } else {
        ui::println_fields(&format!(
            "{}: environment `{}` is valid (schema {}): {}, {}, {}",
            env.source,
            env.name,
            env.schema,
            ui::count(env.ships.len(), "ship"),
            ui::count(env.services.len(), "service"),
            ui::count(instances, "instance")
        ));
    }
    Ok(0)
}

/// `maestro deptree`: the services and what they require, as a tree.
pub(in crate::cli) fn deptree(
    cli: &Cli,
    names: &[String],
    recursive: bool,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    warn_without_services(&env);
    if cli.json {
        let tree = select::deptree(&env, names, recursive)?;
        let text = serde_json::to_string_pretty(&tree)
            .map_err(|err| CliError::Failed(format!("cannot print the tree: {err}")))?;
        ui::println_fields(&text);
    } else {
        // Only names of the file: as written, never masked as text.
        ui::print_fields(&select::render_deptree(&env, names, recursive)?);
    }
    Ok(0)
}

/// `maestro dump`: the environment after templating, inheritance and defaults, as a schema 2
/// file that loads again into the same environment (JSON with `--json`); with `--containers`,
/// what `start` would send to Docker for each container, in start order. Secrets print as
/// `***` unless `--show-secrets`.
pub(in crate::cli) fn dump(
    cli: &Cli,
    containers: bool,
    show_secrets: bool,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    let masker = crate::secrets::global();
    let text = if containers {
        dump_containers(&env)?
    } else {
        let reveal = if show_secrets {
            config::Reveal::Secrets
        } else {
            config::Reveal::Masks
        };
        let failed = |err: config::WriteError| CliError::Failed(err.to_string());
        let mut doc = config::to_schema2(&env, reveal).map_err(failed)?;
        // Values are masked before the text is made: in YAML a secret may be spelled
        // otherwise (quoted, escaped, its template syntax escaped), and the text masking
        // below would then miss it.
        if !show_secrets {
            // A value that is a whole name of the file (`SERVICE_NAME: postgres`) is a name,
            // shown as written even when a secret has the same spelling.
            let names = env_names(&env);
            doc.mask_fields(&|name| masker.is_secret_name(name), &|value| {
                if names.contains(value) {
                    value.to_owned()
                } else {
                    masker.mask(value)
                }
            });
        }
        if cli.json {
            doc.to_json().map_err(failed)?
        } else {
            doc.to_yaml().map_err(failed)?
        }
    };
    if show_secrets {
        ui::output::println_revealed(text.trim_end());
    } else if containers {
        ui::println(text.trim_end());
    } else {
        // Masked field by field above: names, images, paths and hosts as the file gave them.
        ui::println_fields(text.trim_end());
    }
    Ok(0)
}

/// The names the file gives: environment, ships (and their addresses), services, instances.
fn env_names(env: &config::Environment) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::from([env.name.clone()]);
    for ship in &env.ships {
        names.insert(ship.name.clone());
        names.insert(ship.ip.clone());
        names.insert(ship.endpoint.clone());
    }
    for service in &env.services {
        names.insert(service.name.clone());
    }
    for (_, instance) in env.instances() {
        names.insert(instance.name.clone());
    }
    names
}

/// The JSON of `dump --containers`: one object per container, in start order.
fn dump_containers(env: &config::Environment) -> Result<String, CliError> {
    let containers: Vec<serde_json::Value> = spec::start_order(env)?
        .into_iter()
        .map(|planned| {
            serde_json::json!({
                "name": planned.spec.name,
                "service": planned.service,
                "ship": planned.ship,
                "create": planned.spec.to_create_body(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&containers)
        .map_err(|err| CliError::Failed(format!("cannot print the containers: {err}")))
}

/// A file of ships alone loads (MaestroNG's does), but every command acts on services: say
/// so rather than print nothing.
/// Secret values that are short, a name of the file, or a common word: each is warned about
/// once, naming where it is set, never showing it.
fn warn_weak_secrets(env: &config::Environment) {
    let masker = crate::secrets::global();
    let names = env_names(env);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut seen = std::collections::BTreeSet::new();
    for (service, instance) in env.instances() {
        for (var, value) in &instance.env {
            if !masker.is_secret_name(var) || !seen.insert((service.name.clone(), var.clone())) {
                continue;
            }
            if let Some(why) = crate::secrets::weak_secret(value, &names) {
                ui::output::eprintln_fields(&format!(
                    "warning: {}: service `{}`: the value of {var} is a weak secret: {why}\n  \
                     = help: use a long random value (from the environment: \
                     `{{{{ env.{var} }}}}`)",
                    env.source, service.name
                ));
            }
        }
    }
    for registry in &env.registries {
        let Some(password) = &registry.password else {
            continue;
        };
        if let Some(why) = crate::secrets::weak_secret(password.expose(), &names) {
            ui::output::eprintln_fields(&format!(
                "warning: {}: registry `{}`: its password is a weak secret: {why}\n  \
                 = help: use a long random value, or a token",
                env.source, registry.name
            ));
        }
    }
}

fn warn_without_services(env: &crate::config::Environment) {
    if env.services.is_empty() {
        ui::eprintln(&format!(
            "warning: {} has no services: start, stop, status and the others have nothing to \
             act on\n  = help: add a `services:` section (see docs/configuration.md)",
            env.source
        ));
    }
}
