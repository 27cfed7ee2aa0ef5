//! A serde `Serializer` that writes the encoding directly, so typed objects (k8s-openapi,
//! `DynamicObject`) are encoded in one pass without JSON text or a `serde_json::Value` in
//! between. It maps every serde call exactly as `serde_json::to_value` does.

use std::fmt;

use serde::ser::{self, Serialize};

use crate::encode::{Builder, Open};
use crate::error::Error;

/// Error type of the encoder: either a builder limit (depth, size) or a message from a
/// `Serialize` impl / an unsupported shape.
#[derive(Debug)]
pub(crate) enum SerError {
    /// A limit of the encoding was hit.
    Limit(Error),
    /// Raised by the value's `Serialize` impl, or a shape JSON cannot hold.
    Custom(String),
}

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerError::Limit(e) => fmt::Display::fmt(e, f),
            SerError::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError::Custom(msg.to_string())
    }
}

impl From<Error> for SerError {
    fn from(e: Error) -> Self {
        SerError::Limit(e)
    }
}

type Result<T, E = SerError> = std::result::Result<T, E>;

/// Serializes one value into the builder.
pub(crate) struct Encoder<'b>(pub(crate) &'b mut Builder);

/// An open array or object being filled by a compound serializer.
pub(crate) struct Compound<'b> {
    b: &'b mut Builder,
    open: Open,
    count: usize,
    /// For `*_variant` forms: the enclosing `{variant: ...}` object to close afterwards.
    variant: Option<Open>,
}

impl Compound<'_> {
    fn end_array(self) -> Result<()> {
        self.b.end_array(self.open, self.count)?;
        if let Some(outer) = self.variant {
            self.b.end_object(outer, 1)?;
        }
        Ok(())
    }

    fn end_object(self) -> Result<()> {
        self.b.end_object(self.open, self.count)?;
        if let Some(outer) = self.variant {
            self.b.end_object(outer, 1)?;
        }
        Ok(())
    }
}

impl<'b> Encoder<'b> {
    fn compound(self, variant: Option<&'static str>) -> Result<Compound<'b>> {
        let b = self.0;
        let outer = match variant {
            Some(name) => {
                let outer = b.begin()?;
                b.key(name);
                Some(outer)
            }
            None => None,
        };
        let open = b.begin()?;
        Ok(Compound { b, open, count: 0, variant: outer })
    }
}

impl<'b> ser::Serializer for Encoder<'b> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Compound<'b>;
    type SerializeTuple = Compound<'b>;
    type SerializeTupleStruct = Compound<'b>;
    type SerializeTupleVariant = Compound<'b>;
    type SerializeMap = Compound<'b>;
    type SerializeStruct = Compound<'b>;
    type SerializeStructVariant = Compound<'b>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.0.bool(v);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.0.i64(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        if let Ok(u) = u64::try_from(v) {
            self.serialize_u64(u)
        } else if let Ok(i) = i64::try_from(v) {
            self.serialize_i64(i)
        } else {
            Err(ser::Error::custom(format!("number {v} out of range")))
        }
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.0.u64(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        match u64::try_from(v) {
            Ok(u) => self.serialize_u64(u),
            Err(_) => Err(ser::Error::custom(format!("number {v} out of range"))),
        }
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        self.0.f64(v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.0.str(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.0.str(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        let open = self.0.begin()?;
        for &byte in v {
            self.0.u64(u64::from(byte));
        }
        Ok(self.0.end_array(open, v.len())?)
    }

    fn serialize_none(self) -> Result<()> {
        self.0.null();
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.0.null();
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        let b = self.0;
        let open = b.begin()?;
        b.key(variant);
        value.serialize(Encoder(&mut *b))?;
        Ok(b.end_object(open, 1)?)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'b>> {
        self.compound(None)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'b>> {
        self.compound(None)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'b>> {
        self.compound(None)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'b>> {
        self.compound(Some(variant))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'b>> {
        self.compound(None)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'b>> {
        self.compound(None)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'b>> {
        self.compound(Some(variant))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        crate::stack::guard(|| value.serialize(Encoder(&mut *self.b)))?;
        self.count += 1;
        Ok(())
    }

    fn end(self) -> Result<()> {
        self.end_array()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<()> {
        self.end_array()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<()> {
        self.end_array()
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<()> {
        self.end_array()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        key.serialize(KeyEncoder(&mut *self.b))
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        crate::stack::guard(|| value.serialize(Encoder(&mut *self.b)))?;
        self.count += 1;
        Ok(())
    }

    fn end(self) -> Result<()> {
        self.end_object()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.b.key(key);
        ser::SerializeMap::serialize_value(self, value)
    }

    fn end(self) -> Result<()> {
        self.end_object()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<()> {
        self.end_object()
    }
}

/// Serializes a map key: strings as they are; integers, booleans and chars as their text (as
/// serde_json does); anything else is an error.
struct KeyEncoder<'b>(&'b mut Builder);

impl KeyEncoder<'_> {
    fn text(self, t: impl fmt::Display) -> Result<()> {
        self.0.key(&t.to_string());
        Ok(())
    }
}

fn key_must_be_a_string<T>() -> Result<T> {
    Err(SerError::Custom("map key must be a string".to_owned()))
}

impl ser::Serializer for KeyEncoder<'_> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = ser::Impossible<(), SerError>;
    type SerializeTuple = ser::Impossible<(), SerError>;
    type SerializeTupleStruct = ser::Impossible<(), SerError>;
    type SerializeTupleVariant = ser::Impossible<(), SerError>;
    type SerializeMap = ser::Impossible<(), SerError>;
    type SerializeStruct = ser::Impossible<(), SerError>;
    type SerializeStructVariant = ser::Impossible<(), SerError>;

    fn serialize_str(self, v: &str) -> Result<()> {
        self.0.key(v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.0.key(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.text(v)
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.text(v)
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.text(v)
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.text(v)
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.text(v)
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        self.text(v)
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.text(v)
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.text(v)
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.text(v)
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.text(v)
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        self.text(v)
    }

    fn serialize_f32(self, _v: f32) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_f64(self, _v: f64) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_none(self) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_unit(self) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        key_must_be_a_string()
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        key_must_be_a_string()
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        key_must_be_a_string()
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct> {
        key_must_be_a_string()
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        key_must_be_a_string()
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        key_must_be_a_string()
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        key_must_be_a_string()
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        key_must_be_a_string()
    }
}
