//! `Node` as a serde `Deserializer`, so typed objects are decoded straight from the encoding
//! (strings are handed out borrowed; no intermediate `serde_json::Value`).

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::node::{Node, NodeKind};

/// Error raised by a `Deserialize` impl while reading a [`Node`] through its
/// `serde::Deserializer` impl (`T::deserialize(node)`). [`CompactObject::deserialize_into`]
/// reports it as [`Error::Deserialize`](crate::Error::Deserialize).
///
/// [`CompactObject::deserialize_into`]: crate::CompactObject::deserialize_into
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError(pub(crate) String);

impl DeError {
    /// What did not match.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

impl<'de> IntoDeserializer<'de, DeError> for Node<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.kind() {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool => visitor.visit_bool(self.as_bool().unwrap_or_default()),
            NodeKind::Number => {
                if let Some(u) = self.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = self.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(self.as_f64().unwrap_or_default())
                }
            }
            NodeKind::String => visitor.visit_borrowed_str(self.as_str().unwrap_or_default()),
            NodeKind::Array => {
                let mut seq = Seq { iter: self.elements(), remaining: self.len() };
                let v = crate::stack::guard(|| visitor.visit_seq(&mut seq))?;
                if seq.remaining == 0 {
                    Ok(v)
                } else {
                    Err(de::Error::invalid_length(self.len(), &"fewer elements in array"))
                }
            }
            NodeKind::Object => {
                let mut map = Map { iter: self.entries(), value: None, remaining: self.len() };
                let v = crate::stack::guard(|| visitor.visit_map(&mut map))?;
                if map.remaining == 0 {
                    Ok(v)
                } else {
                    Err(de::Error::invalid_length(self.len(), &"fewer members in map"))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.kind() {
            NodeKind::String => visitor.visit_enum(BorrowedStrDeserializer::new(self.as_str().unwrap_or_default())),
            NodeKind::Object if self.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(Map { iter: self.entries(), value: None, remaining: 1 }))
            }
            _ => Err(de::Error::invalid_type(unexpected(self), &"a string or a map with a single key")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

fn unexpected(node: Node<'_>) -> de::Unexpected<'_> {
    match node.kind() {
        NodeKind::Null => de::Unexpected::Unit,
        NodeKind::Bool => de::Unexpected::Bool(node.as_bool().unwrap_or_default()),
        NodeKind::Number => de::Unexpected::Other("number"),
        NodeKind::String => de::Unexpected::Str(node.as_str().unwrap_or_default()),
        NodeKind::Array => de::Unexpected::Seq,
        NodeKind::Object => de::Unexpected::Map,
    }
}

struct Seq<I> {
    iter: I,
    remaining: usize,
}

impl<'de, I: Iterator<Item = Node<'de>>> de::SeqAccess<'de> for Seq<I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(node) => {
                self.remaining -= 1;
                seed.deserialize(node).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

struct Map<'de, I> {
    iter: I,
    value: Option<Node<'de>>,
    remaining: usize,
}

impl<'de, I: Iterator<Item = (&'de str, Node<'de>)>> de::MapAccess<'de> for Map<'de, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((key, value)) => {
                self.remaining -= 1;
                self.value = Some(value);
                seed.deserialize(BorrowedStrDeserializer::new(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(node) => seed.deserialize(node),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}
