//! Compares the merged values with the shape of [`crate::Config`] to find unknown keys and the
//! leaves to type-check one by one.

use figment::value::{Dict, Value};

/// The result of walking the merged values against the known shape.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    /// Keys that exist in no section, with the closest known sibling if one is near.
    pub(crate) unknown: Vec<Unknown>,
    /// Known keys that hold a value (or hold a table where a value belongs, or the reverse).
    pub(crate) leaves: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Unknown {
    pub(crate) key: String,
    pub(crate) suggestion: Option<String>,
}

/// Walks `merged` against `schema` (the serialized preset, which has every key).
pub(crate) fn shape(merged: &Value, schema: &Value) -> Shape {
    let mut shape = Shape::default();
    walk(merged, schema, "", &mut shape);
    shape
}

fn walk(merged: &Value, schema: &Value, prefix: &str, shape: &mut Shape) {
    match (merged, schema) {
        (Value::Dict(_, values), Value::Dict(_, known)) => {
            for (name, value) in values {
                let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                match known.get(name) {
                    Some(expected) => walk(value, expected, &key, shape),
                    None => shape.unknown.push(Unknown {
                        suggestion: closest(name, known)
                            .map(|s| if prefix.is_empty() { s.to_owned() } else { format!("{prefix}.{s}") }),
                        key,
                    }),
                }
            }
        }
        _ => shape.leaves.push(prefix.to_owned()),
    }
}

/// Removes the value at the dotted `key`, if present.
pub(crate) fn remove(value: &mut Value, key: &str) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut node = value;
    for part in parts {
        match node {
            Value::Dict(_, dict) => match dict.get_mut(part) {
                Some(next) => node = next,
                None => return,
            },
            _ => return,
        }
    }
    if let Value::Dict(_, dict) = node {
        dict.remove(last);
    }
}

/// The known key nearest to `name` by edit distance, if it is near enough to be a typo.
fn closest<'a>(name: &str, known: &'a Dict) -> Option<&'a str> {
    known
        .keys()
        .map(|k| (edit_distance(name, k), k.as_str()))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::{
        Figment,
        providers::{Format, Toml},
    };

    fn value(toml: &str) -> Value {
        Figment::from(Toml::string(toml)).extract().unwrap()
    }

    #[test]
    fn finds_unknown_keys_with_suggestions_and_leaves() {
        let schema = value("state = { redis_url = '', namespace = '' }");
        let merged = value("zzzzzzzz = 1\nsate = { a = 1 }\nstate = { redis_ulr = 'x', namespace = 'n' }");
        let shape = shape(&merged, &schema);
        let unknown: Vec<_> = shape.unknown.iter().map(|u| (u.key.as_str(), u.suggestion.as_deref())).collect();
        assert_eq!(
            unknown,
            [("sate", Some("state")), ("state.redis_ulr", Some("state.redis_url")), ("zzzzzzzz", None)]
        );
        assert_eq!(shape.leaves, ["state.namespace"]);
    }

    #[test]
    fn removes_nested_keys() {
        let mut value = value("a = { b = 1, c = 2 }");
        remove(&mut value, "a.b");
        remove(&mut value, "a.missing.deeper");
        assert!(value.find_ref("a.b").is_none());
        assert!(value.find_ref("a.c").is_some());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
