//! Test-only checks on a generated CRD schema that the API server would otherwise only report
//! at install time: the schema is structural, every CEL rule has a message, and every rule's
//! cost is bounded (each list or map it sits under has `maxItems`/`maxProperties`, each
//! string it matches a regex against has `maxLength`).
//!
//! Used by this module's and [`short_form`](crate::short_form)'s unit tests; it would serve
//! every CRD from [`crds::all`](crate::crds::all) just as well.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// One CEL rule of a schema: where it sits, its expression and its message.
#[derive(Debug)]
pub struct FoundRule {
    pub path: String,
    pub rule: String,
    pub message: Option<String>,
}

/// The `openAPIV3Schema` of the CRD's first version, as JSON.
pub fn schema(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// The schema node at a dotted path of property names, `[]` for list items and `{}` for map
/// values, e.g. `spec.template.spec.containers.[].name`.
pub fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, step| {
        let next = match step {
            "[]" => node.get("items"),
            "{}" => node.get("additionalProperties"),
            name => node.get("properties").and_then(|p| p.get(name)),
        };
        next.unwrap_or_else(|| panic!("no schema node {step:?} on the way to {path}"))
    })
}

/// Every CEL rule in the schema, with its path in the notation of [`node`].
pub fn rules(schema: &Value) -> Vec<FoundRule> {
    let mut found = Vec::new();
    walk(schema, "", &mut |path, node, _| {
        for rule in node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            found.push(FoundRule {
                path: path.to_owned(),
                rule: rule["rule"].as_str().unwrap_or_default().to_owned(),
                message: rule
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    });
    found
}

/// Panics with every problem found: non-structural nodes, rules without messages, rules whose
/// cost is unbounded.
pub fn assert_installable(crd: &CustomResourceDefinition) {
    let schema = schema(crd);
    let mut problems = Vec::new();
    walk(&schema, "", &mut |path, node, unbounded_ancestor| {
        for forbidden in ["$ref", "allOf", "anyOf", "oneOf", "not"] {
            if node.get(forbidden).is_some() {
                problems.push(format!("{path}: has {forbidden}"));
            }
        }
        let typed = node.get("type").is_some()
            || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !typed {
            problems.push(format!("{path}: has no type"));
        }
        let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            return;
        };
        if let Some(ancestor) = unbounded_ancestor {
            problems.push(format!(
                "{path}: has CEL rules under the unbounded list or map {ancestor}"
            ));
        }
        for rule in rules {
            let text = rule["rule"].as_str().unwrap_or_default();
            if rule.get("message").is_none() && rule.get("messageExpression").is_none() {
                problems.push(format!("{path}: rule {text:?} has no message"));
            }
            if text.contains("matches(") && !strings_bounded(node) {
                problems.push(format!(
                    "{path}: rule {text:?} matches a regex against strings without maxLength"
                ));
            }
        }
    });
    assert!(
        problems.is_empty(),
        "{} is not installable:\n{}",
        crd.spec.names.plural,
        problems.join("\n")
    );
}

/// Whether the strings a rule on `node` can see have a `maxLength`: the node itself, its
/// list items or its map values.
fn strings_bounded(node: &Value) -> bool {
    let bounded = |n: &Value| {
        n.get("type").and_then(Value::as_str) != Some("string") || n.get("maxLength").is_some()
    };
    bounded(node)
        && node.get("items").is_none_or(bounded)
        && node.get("additionalProperties").is_none_or(bounded)
}

/// Visits every schema node with its path and the nearest enclosing list or map (itself
/// included) that has no `maxItems`/`maxProperties`.
fn walk(schema: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value, Option<&str>)) {
    fn go(
        node: &Value,
        path: &str,
        unbounded: Option<&str>,
        visit: &mut dyn FnMut(&str, &Value, Option<&str>),
    ) {
        let own_unbounded = match (node.get("items"), node.get("additionalProperties")) {
            (Some(_), _) if node.get("maxItems").is_none() => Some(path),
            (_, Some(_)) if node.get("maxProperties").is_none() => Some(path),
            _ => None,
        };
        // A rule on the list or map itself is bounded by its own size limit or not at all.
        visit(path, node, unbounded.or(own_unbounded));
        let below = unbounded.or(own_unbounded);
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                go(child, &child_path, below, visit);
            }
        }
        if let Some(items) = node.get("items") {
            go(items, &format!("{path}.[]"), below, visit);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            go(values, &format!("{path}.{{}}"), below, visit);
        }
    }
    go(schema, path, None, visit);
}
