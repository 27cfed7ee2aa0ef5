//! The object type and small helpers shared by memory-store's proptest models (each test file
//! includes it as `mod common`).

use std::sync::Arc;

use store_types::{IdentityRef, KubeObject};

/// A minimal object: identity plus a version. `INLINE`: whether identity-keyed stores keep an
/// inline copy of its identity ([`KubeObject::INLINE_IDENTITY`]).
#[derive(Debug)]
pub(crate) struct Obj<const INLINE: bool = true> {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) rv: String,
}

impl<const INLINE: bool> KubeObject for Obj<INLINE> {
    fn identity(&self) -> Option<IdentityRef<'_>> {
        Some(IdentityRef { namespace: &self.ns, name: &self.name, uid: None })
    }
    fn resource_version(&self) -> Option<&str> {
        Some(&self.rv)
    }
    const CHEAP_IDENTITY: bool = true;
    const INLINE_IDENTITY: bool = INLINE;
    fn heap_size(&self) -> usize {
        self.ns.len() + self.name.len() + self.rv.len()
    }
}

pub(crate) fn obj<const INLINE: bool>(ns: &str, name: &str, rv: u8) -> Arc<Obj<INLINE>> {
    Arc::new(Obj { ns: ns.into(), name: name.into(), rv: rv.to_string() })
}

/// (namespace, name, resourceVersion) of each object, in order.
pub(crate) fn seen<const INLINE: bool>(objs: &[Arc<Obj<INLINE>>]) -> Vec<(String, String, String)> {
    objs.iter().map(|o| (o.ns.clone(), o.name.clone(), o.rv.clone())).collect()
}

pub(crate) fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}
