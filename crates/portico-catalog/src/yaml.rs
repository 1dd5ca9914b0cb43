//! JSON to YAML text (the UI's Inspect view, files templates write), through saphyr's emitter.

use std::borrow::Cow;

use saphyr::{Mapping, Scalar, Yaml, YamlEmitter};
use serde_json::Value;

fn to_yaml(value: &Value) -> Yaml<'_> {
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(flag) => Yaml::Value(Scalar::Boolean(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Yaml::Value(Scalar::Integer(integer)),
            None => Yaml::Value(Scalar::FloatingPoint(number.as_f64().unwrap_or(0.0).into())),
        },
        Value::String(text) => Yaml::Value(Scalar::String(Cow::Borrowed(text))),
        Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(fields) => {
            let mut mapping = Mapping::new();
            for (key, value) in fields {
                mapping.insert(Yaml::Value(Scalar::String(Cow::Borrowed(key))), to_yaml(value));
            }
            Yaml::Mapping(mapping)
        }
    }
}

/// The value as a YAML document (without the leading `---`).
pub fn to_text(value: &Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline(true);
    if emitter.dump(&to_yaml(value)).is_err() {
        return serde_json::to_string_pretty(value).unwrap_or_default();
    }
    out.strip_prefix("---\n").map(str::to_owned).unwrap_or(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entities_round_trip_through_yaml() {
        let entity = serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": { "name": "a", "tags": ["x", "y"], "description": "two\nlines: yes", "annotations": { "k": "true" } },
            "spec": { "n": 3, "f": 1.5, "none": null }
        });
        let text = super::to_text(&entity);
        assert!(text.starts_with("apiVersion: backstage.io/v1alpha1\n"), "{text}");
        let (documents, errors) = crate::descriptor::parse_descriptor(&text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(documents[0].value, entity);
        assert!(text.contains("\"true\""), "a string that looks like a boolean stays a string: {text}");
    }
}
