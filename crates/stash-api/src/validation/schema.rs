//! kubeconform-style check of a manifest against the openAPIV3Schema of our generated CRD: types, required
//! fields, enums, integer formats and unknown fields, each reported with its field path.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::Issue;

/// Calls `unknown` for a field the schema does not know; it returns `Some(issue)` to report it
/// differently (e.g. an obsolete field as a warning), or `None` for the default "unknown field" error.
pub type UnknownFieldHook<'a> = &'a dyn Fn(&str, &str) -> Option<Issue>;

/// Checks `value` against `schema`, appending issues. `path` is the field path of `value` (`""` for the root).
pub fn check(
    value: &Value,
    schema: &JSONSchemaProps,
    path: &str,
    unknown: UnknownFieldHook<'_>,
    out: &mut Vec<Issue>,
) {
    if value.is_null() {
        // The API server prunes nulls of non-nullable fields and accepts them for nullable ones.
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.push(type_issue(path, "an integer or a string", value));
        }
        return;
    }
    let Some(ty) = schema.type_.as_deref() else {
        // No type: only `x-kubernetes-preserve-unknown-fields` schemas, which accept anything.
        return;
    };
    match ty {
        "object" => check_object(value, schema, path, unknown, out),
        "array" => {
            let Some(items) = value.as_array() else {
                out.push(type_issue(path, "a list", value));
                return;
            };
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), unknown, out);
                }
            }
        }
        "string" => {
            if !value.is_string() {
                out.push(type_issue(path, "a string", value));
                return;
            }
            check_enum(value, schema, path, out);
        }
        "integer" => {
            let n = value
                .as_i64()
                .or_else(|| value.as_u64().and_then(|u| i64::try_from(u).ok()));
            let Some(n) = n else {
                out.push(type_issue(path, "an integer", value));
                return;
            };
            if schema.format.as_deref() == Some("int32") && i32::try_from(n).is_err() {
                out.push(Issue::error(
                    path,
                    format!("{n} does not fit in a 32-bit integer"),
                    format!("use a value between {} and {}", i32::MIN, i32::MAX),
                ));
            }
            #[allow(clippy::cast_precision_loss)] // bounds in CRDs are small
            check_bounds(n as f64, schema, path, out);
        }
        "number" => match value.as_f64() {
            Some(n) => check_bounds(n, schema, path, out),
            None => out.push(type_issue(path, "a number", value)),
        },
        "boolean" if !value.is_boolean() => {
            out.push(type_issue(path, "true or false", value));
        }
        _ => {}
    }
}

fn check_object(
    value: &Value,
    schema: &JSONSchemaProps,
    path: &str,
    unknown: UnknownFieldHook<'_>,
    out: &mut Vec<Issue>,
) {
    let Some(obj) = value.as_object() else {
        out.push(type_issue(path, "an object (a mapping of fields)", value));
        return;
    };
    for req in schema.required.iter().flatten() {
        if !obj.contains_key(req) {
            out.push(Issue::error(
                &join(path, req),
                format!("required field `{req}` is missing"),
                format!(
                    "add `{req}` under `{}`",
                    if path.is_empty() {
                        "the document root"
                    } else {
                        path
                    }
                ),
            ));
        }
    }
    let props = schema.properties.as_ref();
    let additional = match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_ref()),
        _ => None,
    };
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true)
        || matches!(
            schema.additional_properties,
            Some(JSONSchemaPropsOrBool::Bool(true))
        );
    for (key, child) in obj {
        let child_path = join(path, key);
        if let Some(prop) = props.and_then(|p| p.get(key)) {
            check(child, prop, &child_path, unknown, out);
        } else if let Some(add) = additional {
            check(child, add, &child_path, unknown, out);
        } else if preserve {
            // kept as is
        } else if let Some(issue) = unknown(path, key) {
            out.push(issue);
        } else {
            let known: Vec<&str> = props
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let fix = match closest(key, &known) {
                Some(s) => format!(
                    "did you mean `{s}`? Otherwise remove it (the API server would reject or drop it)"
                ),
                None if known.is_empty() => "remove it".to_owned(),
                None => format!("remove it; known fields here: {}", known.join(", ")),
            };
            out.push(Issue::error(
                &child_path,
                format!("unknown field `{key}`"),
                fix,
            ));
        }
    }
}

fn check_enum(value: &Value, schema: &JSONSchemaProps, path: &str, out: &mut Vec<Issue>) {
    let Some(allowed) = &schema.enum_ else { return };
    if allowed.iter().any(|a| a.0 == *value) {
        return;
    }
    let names: Vec<String> = allowed
        .iter()
        .filter_map(|a| a.0.as_str().map(str::to_owned))
        .collect();
    let got = value.as_str().unwrap_or_default();
    let fix = match names.iter().find(|n| n.eq_ignore_ascii_case(got)) {
        Some(n) => format!("values are case-sensitive: write `{n}`"),
        None => format!("use one of: {}", names.join(", ")),
    };
    out.push(Issue::error(
        path,
        format!("unsupported value `{got}`"),
        fix,
    ));
}

#[allow(clippy::cast_precision_loss)]
fn check_bounds(n: f64, schema: &JSONSchemaProps, path: &str, out: &mut Vec<Issue>) {
    if let Some(min) = schema.minimum
        && n < min
    {
        out.push(Issue::error(
            path,
            format!("{n} is below the minimum {min}"),
            format!("use a value >= {min}"),
        ));
    }
    if let Some(max) = schema.maximum
        && n > max
    {
        out.push(Issue::error(
            path,
            format!("{n} is above the maximum {max}"),
            format!("use a value <= {max}"),
        ));
    }
}

fn type_issue(path: &str, expected: &str, got: &Value) -> Issue {
    let got_desc = match got {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    let fix = match (expected, got) {
        ("an integer" | "true or false" | "a number", Value::String(s)) => {
            format!("remove the quotes around `{s}` so it is not a string")
        }
        ("a string", Value::Number(_) | Value::Bool(_)) => {
            "quote the value so it is a string".to_owned()
        }
        _ => format!("set `{}` to {expected}", leaf(path)),
    };
    Issue::error(path, format!("expected {expected}, got {got_desc}"), fix)
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The known field closest to `key` (edit distance <= 2, or equal ignoring case).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                levenshtein(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
