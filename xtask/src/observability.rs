//! The Grafana dashboard and the alert rules only use metrics the catalog
//! (`docs/observability/metrics.md`) lists, with the labels it lists: a renamed metric breaks
//! this test rather than a panel that silently goes blank.
//!
//! The rules' behaviour is tested by `promtool test rules` (a `cargo xtask ci` step); this only
//! checks names, so it runs without promtool.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Labels Prometheus adds to every scraped series.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

/// One row of the catalog.
struct Metric {
    kind: String,
    labels: BTreeSet<String>,
}

fn read(relative: &str) -> String {
    let path = crate::project_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The catalog's table rows: `| \`name\` | type | \`label\`, \`label="value"\` | meaning |`.
fn catalog() -> BTreeMap<String, Metric> {
    let mut metrics = BTreeMap::new();
    for line in read("docs/observability/metrics.md").lines().filter(|l| l.starts_with("| `infra_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let labels = cells[3]
            .split(',')
            .map(|label| label.trim().trim_matches('`'))
            .filter(|label| !label.is_empty())
            .map(|label| label.split('=').next().unwrap_or(label).to_owned())
            .collect();
        metrics.insert(name, Metric { kind: cells[2].to_owned(), labels });
    }
    assert!(metrics.len() > 20, "the catalog's table rows were not found in metrics.md");
    metrics
}

/// Every `expr` string anywhere in the dashboard (panel targets, annotations); variable queries
/// are under `query`.
fn dashboard_exprs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    ("query", Value::String(query)) if query.contains("infra_") => found.push(query.clone()),
                    _ => dashboard_exprs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| dashboard_exprs(item, found)),
        _ => {}
    }
}

/// The rules' expressions; each rule keeps its `expr` on one line so this needs no YAML parser.
fn alert_exprs(rules: &str) -> Vec<String> {
    let exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr: "))
        .map(|expr| expr.trim().trim_matches('\'').to_owned())
        .collect();
    assert_eq!(exprs.len(), alert_names(rules).len(), "alerts.yml: write each rule's `expr` on one line");
    exprs
}

fn alert_names(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|l| l.trim_start().strip_prefix("- alert: ")).map(|n| n.trim().to_owned()).collect()
}

/// The metric selectors in `expr`: each `infra_…` name with the label names of its `{…}`.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // Skip string literals (label values, regexes).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !is_ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !name.starts_with("infra_") {
            continue;
        }
        let mut labels = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let end = expr[i..].find('}').map_or(expr.len(), |end| i + end);
            let mut inner = &expr[i + 1..end];
            // `label op "value"`, comma separated; values may hold commas, so walk the quotes.
            while let Some(op) = inner.find(['=', '!']) {
                labels.push(inner[..op].trim().trim_start_matches(',').trim().to_owned());
                let open = inner[op..].find('"').map_or(inner.len(), |q| op + q + 1);
                let mut close = open;
                while close < inner.len() && inner.as_bytes()[close] != b'"' {
                    close += if inner.as_bytes()[close] == b'\\' { 2 } else { 1 };
                }
                inner = inner.get(close + 1..).unwrap_or_default();
            }
            i = end;
        }
        found.push((name.to_owned(), labels));
    }
    found
}

/// Checks one expression against the catalog; returns the problems found.
fn check_expr(
    source: &str,
    expr: &str,
    catalog: &BTreeMap<String, Metric>,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let found = selectors(expr);
    if found.is_empty() {
        problems.push(format!("{source}: `{expr}` uses none of our metrics"));
    }
    for (name, labels) in found {
        let series_suffix = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix));
        let (base, metric) = match (catalog.get(&name), series_suffix.and_then(|base| catalog.get(base))) {
            (Some(metric), _) => (name.clone(), metric),
            (None, Some(metric)) if metric.kind == "histogram" => {
                (series_suffix.unwrap_or_default().to_owned(), metric)
            }
            _ => {
                problems.push(format!("{source}: `{name}` is not in docs/observability/metrics.md"));
                continue;
            }
        };
        if metric.kind == "histogram" && base == name {
            problems
                .push(format!("{source}: query histogram `{name}` through its `_bucket`, `_sum` or `_count` series"));
        }
        for label in labels {
            let known = metric.labels.contains(&label)
                || SCRAPE_LABELS.contains(&label.as_str())
                || (label == "le" && name.ends_with("_bucket"));
            if !known {
                problems.push(format!("{source}: `{name}` has no label `{label}` in the catalog"));
            }
        }
        used.insert(base);
    }
    problems
}

#[test]
fn the_selector_parser_finds_names_and_labels() {
    assert_eq!(
        selectors(r#"sum by (le) (rate(infra_a_bucket{op="get", x=~"a,b\"c"}[5m])) or infra_b * 2 - time()"#),
        vec![("infra_a_bucket".to_owned(), vec!["op".to_owned(), "x".to_owned()]), ("infra_b".to_owned(), vec![])]
    );
}

#[test]
fn the_dashboard_is_importable_and_charts_only_catalogued_metrics() {
    let text = read("docs/observability/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("grafana-dashboard.json: {e}"));
    assert_eq!(dashboard["title"], "infra");
    assert!(dashboard["uid"].as_str().is_some_and(|uid| !uid.is_empty()), "the dashboard needs a uid");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion too old or missing");
    assert!(dashboard.get("id").is_none_or(Value::is_null), "an importable dashboard carries no database id");
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "the dashboard needs a `datasource` variable so it imports into any Grafana as is"
    );

    let panels = dashboard["panels"].as_array().expect("the dashboard has panels");
    let mut ids = BTreeSet::new();
    let mut charts = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(ids.insert(panel["id"].as_u64().expect("every panel has a numeric id")), "duplicate id at {title}");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap_or(99), grid["w"].as_u64().unwrap_or(99));
        assert!(x + w <= 24 && grid["h"].as_u64().is_some(), "{title}: gridPos outside the 24-column grid");
        if panel["type"] == "row" {
            continue;
        }
        charts += 1;
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: use the `datasource` variable");
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(!targets.is_empty(), "{title}: a panel without queries");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: use the `datasource` variable");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}: a target without `expr`");
        }
    }
    assert!(charts >= 10, "only {charts} panels");

    let catalog = catalog();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let mut used = BTreeSet::new();
    let problems: Vec<String> =
        exprs.iter().flat_map(|expr| check_expr("grafana-dashboard.json", expr, &catalog, &mut used)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let uncharted: Vec<&String> = catalog.keys().filter(|name| !used.contains(*name)).collect();
    assert!(uncharted.is_empty(), "metrics in the catalog that no panel charts: {uncharted:?}");
}

#[test]
fn every_alert_uses_catalogued_metrics_and_has_a_unit_test() {
    let rules = read("docs/observability/alerts.yml");
    let catalog = catalog();
    let mut used = BTreeSet::new();
    let problems: Vec<String> =
        alert_exprs(&rules).iter().flat_map(|expr| check_expr("alerts.yml", expr, &catalog, &mut used)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let names = alert_names(&rules);
    let count = |needle: &str| rules.lines().filter(|l| l.trim_start().starts_with(needle)).count();
    for needle in ["severity: ", "summary: ", "description: "] {
        assert_eq!(count(needle), names.len(), "alerts.yml: every rule needs a `{needle}`");
    }
    let severities = rules.lines().filter_map(|l| l.trim_start().strip_prefix("severity: "));
    for severity in severities {
        assert!(["page", "warning"].contains(&severity.trim()), "alerts.yml: unknown severity `{severity}`");
    }
    let tests = read("docs/observability/alerts_test.yml");
    for name in &names {
        assert!(tests.contains(&format!("alertname: {name}\n")), "alerts_test.yml: no test for `{name}`");
    }
}
