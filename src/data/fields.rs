//! Typed access to one row's fields, with the row-level error messages
//! (`missing field "completion"`, `field "label" must be ...`).

use serde_json::{Map, Value};

use super::dataset::{ColumnMap, LoadOptions};
use super::records::{Content, Message, Role};

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) type RowResult<T> = Result<T, String>;

/// One row as a JSON object (CSV cells are strings), after column renames.
pub(crate) struct Fields<'a> {
    map: Map<String, Value>,
    columns: &'a ColumnMap,
    /// CSV cells are all strings, so labels and message lists are parsed from text.
    csv: bool,
    pub opts: &'a LoadOptions,
}

impl<'a> Fields<'a> {
    pub fn new(
        map: Map<String, Value>,
        columns: &'a ColumnMap,
        csv: bool,
        opts: &'a LoadOptions,
    ) -> Fields<'a> {
        Fields {
            map,
            columns,
            csv,
            opts,
        }
    }

    /// `"prompt"`, or `"prompt" (column "instruction")` when renamed.
    pub fn name(&self, field: &str) -> String {
        match self.columns.source(field) {
            src if src == field => format!("{field:?}"),
            src => format!("{field:?} (column {src:?})"),
        }
    }

    /// Every field of the row, in file order.
    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// Present and not null.
    pub fn has(&self, field: &str) -> bool {
        self.map.get(field).is_some_and(|v| !v.is_null())
    }

    pub fn get(&self, field: &str) -> RowResult<&Value> {
        match self.map.get(field) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(format!("missing field {}", self.name(field))),
        }
    }

    /// A string field that is not blank.
    pub fn text(&self, field: &str) -> RowResult<String> {
        match self.get(field)? {
            Value::String(s) if s.trim().is_empty() => Err(format!("empty {}", self.name(field))),
            Value::String(s) => Ok(s.clone()),
            v => Err(format!(
                "field {} must be a string, got {}",
                self.name(field),
                kind(v)
            )),
        }
    }

    /// A string (standard data) or a list of messages (conversational), not blank.
    pub fn content(&self, field: &str) -> RowResult<Content> {
        let c = match self.get(field)? {
            Value::String(s) => Content::Plain(s.clone()),
            Value::Array(items) => Content::Chat(self.message_list(field, items)?),
            v => {
                return Err(format!(
                    "field {} must be a string or a list of messages, got {}",
                    self.name(field),
                    kind(v)
                ))
            }
        };
        if c.is_blank() {
            return Err(format!("empty {}", self.name(field)));
        }
        Ok(c)
    }

    /// A list of messages (in CSV, the cell's JSON text).
    pub fn messages(&self, field: &str) -> RowResult<Vec<Message>> {
        let parsed;
        let value = match self.get(field)? {
            Value::String(s) if self.csv => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("field {} is not a JSON list: {e}", self.name(field)))?;
                &parsed
            }
            v => v,
        };
        match value {
            Value::Array(items) if items.is_empty() => Err(format!("empty {}", self.name(field))),
            Value::Array(items) => self.message_list(field, items),
            v => Err(format!(
                "field {} must be a list of messages, got {}",
                self.name(field),
                kind(v)
            )),
        }
    }

    fn message_list(&self, field: &str, items: &[Value]) -> RowResult<Vec<Message>> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = || format!("{}[{i}]", self.name(field));
                let obj = item
                    .as_object()
                    .ok_or_else(|| format!("{} must be an object, got {}", at(), kind(item)))?;
                let role = match obj.get("role") {
                    Some(Value::String(r)) => match r.as_str() {
                        "system" => Role::System,
                        "user" => Role::User,
                        "assistant" => Role::Assistant,
                        other => {
                            return Err(format!(
                                "{}.role is {other:?}, not system, user or assistant",
                                at()
                            ))
                        }
                    },
                    Some(v) => {
                        return Err(format!("{}.role must be a string, got {}", at(), kind(v)))
                    }
                    None => return Err(format!("{} has no \"role\"", at())),
                };
                let content = match obj.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => {
                        return Err(format!(
                            "{}.content must be a string, got {}",
                            at(),
                            kind(v)
                        ))
                    }
                    None => return Err(format!("{} has no \"content\"", at())),
                };
                Ok(Message { role, content })
            })
            .collect()
    }

    /// A binary label: true/false, 1/0 (CSV: also the same words as text).
    pub fn label_bool(&self, field: &str) -> RowResult<bool> {
        let v = self.get(field)?;
        let text = v.as_str().filter(|_| self.csv).map(str::trim);
        match (v, text) {
            (Value::Bool(b), _) => Ok(*b),
            (_, Some("true" | "True" | "1")) => Ok(true),
            (_, Some("false" | "False" | "0")) => Ok(false),
            (Value::Number(n), _) if n.as_i64() == Some(1) => Ok(true),
            (Value::Number(n), _) if n.as_i64() == Some(0) => Ok(false),
            _ => Err(format!(
                "field {} must be true/false or 1/0, got {v}",
                self.name(field)
            )),
        }
    }

    /// A class index below `num_labels`; None for -1 (unlabelled).
    pub fn label_class(&self, field: &str, num_labels: usize) -> RowResult<Option<usize>> {
        let v = self.get(field)?;
        let n = match v {
            Value::Bool(b) => Some(*b as i64),
            Value::Number(n) => n.as_i64(),
            Value::String(s) if self.csv => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 && (n as usize) < num_labels => Ok(Some(n as usize)),
            _ => Err(format!(
                "field {} must be an integer in 0..{num_labels} (or -1 for unlabelled), got {v}",
                self.name(field)
            )),
        }
    }
}
