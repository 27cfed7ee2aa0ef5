//! RFC 6902 JSON Patch (add, remove, replace, move, copy, test).

use serde_json::Value;

use crate::status::ApiError;

fn bad(message: String) -> ApiError {
    ApiError::BadRequest { message }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(Vec<String>, String), ApiError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad(format!("JSON pointer {path:?} must start with '/'")));
    };
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop().unwrap_or_default();
    Ok((tokens, last))
}

fn parent<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| bad(format!("path {path:?} does not exist")))?;
    }
    Ok(cur)
}

fn get(doc: &Value, path: &str) -> Result<Value, ApiError> {
    if path.is_empty() {
        return Ok(doc.clone());
    }
    doc.pointer(path).cloned().ok_or_else(|| bad(format!("path {path:?} does not exist")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (tokens, last) = split(path)?;
    match parent(doc, &tokens, path)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| bad(format!("bad array index in {path:?}")))?
            };
            if idx > a.len() {
                return Err(bad(format!("array index out of range in {path:?}")));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(bad(format!("path {path:?} does not point into a container"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (tokens, last) = split(path)?;
    let missing = || bad(format!("path {path:?} does not exist"));
    match parent(doc, &tokens, path)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let idx = last.parse::<usize>().map_err(|_| missing())?;
            if idx >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(idx))
        }
        _ => Err(missing()),
    }
}

/// Apply a JSON patch document (an array of operations) to `doc`.
pub(crate) fn apply(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| bad("a JSON patch must be an array".into()))?;
    for op in ops {
        let path = op["path"].as_str().ok_or_else(|| bad("operation without path".into()))?;
        let value = || op.get("value").cloned().ok_or_else(|| bad("operation without value".into()));
        match op["op"].as_str().unwrap_or_default() {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or_else(|| bad("move without from".into()))?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or_else(|| bad("copy without from".into()))?;
                let v = get(doc, from)?;
                add(doc, path, v)?;
            }
            "test" => {
                if get(doc, path)? != value()? {
                    return Err(bad(format!("test operation failed at {path:?}")));
                }
            }
            other => return Err(bad(format!("unknown JSON patch operation {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_operations() {
        let mut d = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2]});
        apply(
            &mut d,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "remove", "path": "/l/0"},
                {"op": "test", "path": "/l", "value": [2, 3]},
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"metadata": {"labels": {"a": "3", "b/c": "2"}}, "l": [2, 3]}));
        assert!(apply(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(apply(&mut d, &json!({"op": "add"})).is_err());
    }
}
