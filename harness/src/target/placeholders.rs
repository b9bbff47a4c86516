//! The placeholders of a target file: which names a file may use
//! (`{state}`, `{name}`, the timings'...), `{env:NAME}` expanded as the file
//! is read, and `{name}`s expanded in JSON templates (documents, patches).

use contract::Timings;
use serde_json::Value;

/// The placeholders a target file may use besides the timings'
/// ([`Timings::NAMES`]).
pub(super) const PLACEHOLDERS: &[&str] = &[
    "reconciler",
    "state",
    "lima_home",
    "home",
    "sandbox",
    "bin",
    "name",
    "patch",
    "id",
    "namespace",
    "kubeconfig",
    "running",
    "template",
    "vm_type",
    "now",
    "slot",
];

/// Every placeholder, for error messages.
pub(super) fn known_placeholders() -> String {
    [PLACEHOLDERS, Timings::NAMES].concat().join(", ")
}

/// True when `name` is a placeholder a target file may use.
pub(super) fn is_placeholder(name: &str) -> bool {
    PLACEHOLDERS.contains(&name) || Timings::NAMES.contains(&name)
}

/// The first unknown `{placeholder}` in `arg`, if any.
pub(super) fn check_placeholders(arg: &str) -> Result<(), String> {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if !is_placeholder(name) {
            return Err(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Expands `{placeholder}`s in every string of a JSON-like template. A
/// string that is exactly `{running}` becomes a JSON boolean; every other
/// placeholder is replaced as text (`{template}` by the lima.yaml text, so
/// the YAML lands in a string value, quoted by the serialiser).
pub(super) fn expand_value(template: &Value, values: &dyn Fn(&str) -> String) -> Value {
    match template {
        Value::String(s) if s == "{running}" => Value::Bool(values("running") == "true"),
        Value::String(s) => Value::String(expand_text(s, values)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| expand_value(v, values)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (expand_text(k, values), expand_value(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces every `{name}` whose name `values` knows (an empty answer
/// counts as known) in `text`.
fn expand_text(text: &str, values: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                out.push_str(&values(&after[..close]));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// Every `{name}` used in the strings (and keys) of `value`.
pub(super) fn placeholders_in(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut text = |s: &str| {
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) if is_name(&after[..close]) => {
                    found.push(after[..close].to_owned());
                    rest = &after[close + 1..];
                }
                _ => rest = after,
            }
        }
    };
    fn walk(v: &Value, text: &mut dyn FnMut(&str)) {
        match v {
            Value::String(s) => text(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, text)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                text(k);
                walk(v, text)
            }),
            _ => {}
        }
    }
    walk(value, &mut text);
    found
}

/// Replaces every `{env:NAME}` in a target file's text by the value of
/// environment variable NAME (escaped for a TOML basic string); an unset
/// variable is an error naming it.
pub(super) fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{env:") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 5..];
        let close = after
            .find('}')
            .ok_or_else(|| "an {env: placeholder is not closed".to_owned())?;
        let name = &after[..close];
        let value = std::env::var(name).map_err(|_| {
            format!("environment variable {name} is not set (the file uses {{env:{name}}})")
        })?;
        out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> String {
        match name {
            "name" => "vm".into(),
            "running" => "true".into(),
            "template" => "images: []\n".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn running_becomes_a_boolean_and_text_is_replaced() {
        let template = serde_json::json!({
            "metadata": {"name": "{name}-lima"},
            "spec": {"running": "{running}", "t": "{template}", "n": 3, "json": "{\"a\": 1}"}
        });
        let doc = expand_value(&template, &values);
        assert_eq!(doc["metadata"]["name"], "vm-lima");
        assert_eq!(doc["spec"]["running"], true);
        assert_eq!(doc["spec"]["t"], "images: []\n");
        assert_eq!(doc["spec"]["n"], 3);
        assert_eq!(doc["spec"]["json"], "{\"a\": 1}", "not a placeholder");
        assert_eq!(placeholders_in(&template), ["name", "running", "template"]);
    }

    #[test]
    fn env_placeholders_are_replaced_escaped_and_an_unset_one_is_named() {
        let path = std::env::var("PATH").unwrap();
        let text = expand_env("start = [\"{env:PATH}\"]").unwrap();
        // Escaped for a TOML string (Windows paths hold backslashes): the
        // file reads back the value itself.
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(parsed["start"][0].as_str(), Some(path.as_str()), "{text}");
        let err = expand_env("x = \"{env:LIMAVM_SURELY_UNSET_VAR}\"").unwrap_err();
        assert!(err.contains("LIMAVM_SURELY_UNSET_VAR is not set"), "{err}");
    }
}
