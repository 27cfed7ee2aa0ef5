//! `kstore-render` renders minijinja templates over kstore's stores: a `ResourceSet` snapshot
//! (or typed snapshots, or any other [`Lookup`]) becomes `resources` in the template, and the
//! objects it returns are lazy views of their [`CompactObject`](compact_object::CompactObject)
//! encoding — a template that reads `ing.spec.rules[0].host` decodes that string and nothing
//! else; no object is converted to a `minijinja::Value` or `serde_json::Value` tree.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo(set: watcher::ResourceSet) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kstore_render::{Renderer, Undefined};
//!
//! let mut renderer = Renderer::new(Undefined::Strict);
//! renderer.add_template("hosts", r#"
//! {%- for ing in resources.ingresses %}
//! {%- for rule in ing.spec.rules %}
//! {{ rule.host }} -> {{ ing.metadata.namespace }}/{{ ing.metadata.name }}
//! {%- for slice in resources.endpoints.fetch(ing.metadata.namespace, "web") %} {{ slice.endpoints|length }}{% endfor %}
//! {%- endfor %}
//! {%- endfor %}
//! {%- set tls = resources.secrets.get_single("default", "web-tls") %}
//! {%- if tls %}tls: {{ tls.type }}{% endif %}
//! "#)?;
//! let out = renderer.render("hosts", Arc::new(set.snapshot())).await?;
//! # Ok(()) }
//! ```
//!
//! In a template, `resources.NAME` is one configured resource:
//!
//! | expression | result |
//! | --- | --- |
//! | `resources.NAME.list()` or `for x in resources.NAME` | every object, by namespace then name |
//! | `resources.NAME.fetch(k1, …, kN)` | the objects under 1..=N index keys (exact or prefix) |
//! | `resources.NAME.get_single(k1, …)` | the one object under the keys, else `none` (nothing, or several) |
//! | `obj.a.b`, `obj["a"]`, `arr[0]`, `for k in obj`, `obj\|items`, `x\|length` | lazy reads of the object |
//!
//! A missing field is minijinja's undefined ([`Undefined::Lenient`], [`Undefined::Chainable`])
//! or an error ([`Undefined::Strict`]); errors are [`RenderError`]s that name the template, the
//! line and the expression (the missing key). Bad input never panics.
//!
//! On-demand (`CachedStore`) resources are fetched as the template reads them: the template
//! runs on a blocking thread and each lookup waits there for its future (see [`Renderer`]).
//!
//! Other sources implement [`Lookup`] (a what-if overlay, typed stores: [`TypedSnapshots`],
//! whose objects reach templates through `Serialize`); the templates stay the same.

mod lookup;
mod renderer;
mod value;

pub use lookup::{Lookup, TypedLookupError, TypedSnapshots, serialize_value};
pub use renderer::{RenderError, Renderer, Undefined};
pub use value::compact_value;

#[cfg(test)]
mod tests;
