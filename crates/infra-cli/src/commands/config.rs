//! `infractl config show`: the effective configuration, secrets redacted, each value with its
//! source.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{commands::Context, error::CliError, output::Format};

/// Prints the configuration: TOML with a `# source` comment per value (text), or one object
/// with the values and their sources (JSON).
pub(crate) fn show(context: &Context) -> Result<(), CliError> {
    let config = &context.loaded.config;
    let origins = &context.loaded.origins;
    // `RedisUrl` serializes redacted, so neither form can carry a password.
    let table = toml::Table::try_from(config)
        .map_err(|error| CliError::Runtime(format!("cannot render the configuration: {error}")))?;
    match context.printer.format() {
        Format::Text => {
            let text = render(config.environment.as_str(), &table, origins);
            context.printer.emit(&serde_json::Value::Null, || text)
        }
        Format::Json => {
            let values = serde_json::to_value(config)
                .map_err(|error| CliError::Runtime(format!("cannot render the configuration: {error}")))?;
            let record = json!({"environment": config.environment.as_str(), "config": values, "sources": origins});
            context.printer.emit(&record, String::new)
        }
    }
}

/// The configuration as TOML in the shape of one environment's table of `infra.toml`, each
/// value followed by a comment naming its source.
fn render(environment: &str, table: &toml::Table, origins: &BTreeMap<String, String>) -> String {
    let mut out =
        format!("# environment: {environment}\n# each value is followed by its source; secrets are redacted\n");
    section(&mut out, "", table, origins);
    out.trim_end().to_owned()
}

fn section(out: &mut String, path: &str, table: &toml::Table, origins: &BTreeMap<String, String>) {
    let key_of = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    let leaves: Vec<_> = table.iter().filter(|(_, value)| !value.is_table()).collect();
    if !leaves.is_empty() {
        if !path.is_empty() {
            out.push_str(&format!("\n[{path}]\n"));
        }
        let width = leaves.iter().map(|(name, value)| name.len() + value.to_string().len()).max().unwrap_or(0);
        for (name, value) in leaves {
            let key = key_of(name);
            let origin = origins.get(&key).map_or("unknown source", String::as_str);
            let assignment = format!("{name} = {value}");
            out.push_str(&format!("{assignment:<pad$}  # {origin}\n", pad = width + 3));
        }
    }
    for (name, value) in table {
        if let toml::Value::Table(inner) = value {
            section(out, &key_of(name), inner, origins);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_carries_its_source_and_the_result_is_toml() {
        let table: toml::Table =
            toml::from_str("[state]\nnamespace = \"eu\"\n[resilience.retry]\nmax_attempts = 3\n").unwrap();
        let origins = BTreeMap::from([
            ("state.namespace".to_owned(), "command-line option `--namespace`".to_owned()),
            ("resilience.retry.max_attempts".to_owned(), "the staging preset".to_owned()),
        ]);
        let text = render("staging", &table, &origins);
        assert!(text.contains("namespace = \"eu\"  # command-line option `--namespace`"), "{text}");
        assert!(text.contains("[resilience.retry]\nmax_attempts = 3  # the staging preset"), "{text}");
        assert_eq!(text.parse::<toml::Table>().unwrap(), table);
    }
}
