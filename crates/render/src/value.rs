//! The lazy minijinja values: `resources`, one resource, result lists, and object nodes.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use compact_object::{CompactObject, Node, NodeKind, OwnedNode};
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr};
use minijinja::{Error, ErrorKind, State, Value};
use store_types::Objects;
use tokio::runtime::Handle;

use crate::lookup::Lookup;

/// A [`CompactObject`] as a lazy template value: a map (or sequence, or scalar) that reads its
/// members from the object's encoding when the template asks; nothing is converted up front.
/// Containers become further lazy values (one small allocation each); strings, numbers and
/// booleans become plain values when read.
pub fn compact_value(object: &CompactObject) -> Value {
    let root = object.root();
    match object.owned_node(root) {
        Some(owned) => node_value(&owned, root),
        // `root` is a node of `object`, so this arm is never taken; read it as undefined.
        None => Value::UNDEFINED,
    }
}

/// `node`, a node of `owner`'s object, as a template value.
fn node_value(owner: &OwnedNode, node: Node<'_>) -> Value {
    match node.kind() {
        NodeKind::Null => Value::from(()),
        NodeKind::Bool => Value::from(node.as_bool().unwrap_or(false)),
        NodeKind::Number => {
            if let Some(i) = node.as_i64() {
                Value::from(i)
            } else if let Some(u) = node.as_u64() {
                Value::from(u)
            } else {
                Value::from(node.as_f64().unwrap_or(f64::NAN))
            }
        }
        NodeKind::String => Value::from(node.as_str().unwrap_or_default()),
        NodeKind::Array | NodeKind::Object => match owner.child(node) {
            Some(child) => Value::from_object(NodeObject { node: child }),
            None => Value::UNDEFINED,
        },
    }
}

/// A map or array inside a compact object.
struct NodeObject {
    node: OwnedNode,
}

impl fmt::Debug for NodeObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shape only: object bodies (Secrets) stay out of debug output.
        fmt::Debug::fmt(&self.node, f)
    }
}

impl Object for NodeObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.node.node().kind() {
            NodeKind::Array => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let node = self.node.node();
        let child = match node.kind() {
            NodeKind::Array => node.index(key.as_usize()?)?,
            _ => node.get(key.as_str()?)?,
        };
        Some(node_value(&self.node, child))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node.node().kind() {
            // Elements in one pass (indexing an encoded array is O(i)).
            NodeKind::Array => self.mapped_enumerator(|this| {
                Box::new(this.node.node().elements().map(|element| node_value(&this.node, element)))
            }),
            _ => self.mapped_enumerator(|this| Box::new(this.node.node().entries().map(|(key, _)| Value::from(key)))),
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.node.node().len())
    }
}

/// The objects a lookup returned, as a sequence of template values (converted when read).
pub(crate) struct ObjectsSeq<T> {
    objects: Objects<T>,
    to_value: fn(&Arc<T>) -> Value,
}

impl<T> fmt::Debug for ObjectsSeq<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Objects({})", self.objects.len())
    }
}

impl<T: Send + Sync + 'static> Object for ObjectsSeq<T> {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.objects.get(key.as_usize()?).map(self.to_value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.objects.len())
    }
}

/// What every value of one render shares: the lookup, the runtime that runs its futures, the
/// undefined policy, and lookup failures met where minijinja takes no error (iteration).
pub(crate) struct Shared<L> {
    pub(crate) lookup: Arc<L>,
    pub(crate) handle: Handle,
    pub(crate) strict: bool,
    pub(crate) failures: Mutex<Vec<String>>,
}

thread_local! {
    /// Set while this thread runs a render (a blocking thread of [`crate::Renderer::render`]):
    /// only there may a lookup block on its future.
    static RENDERING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as running a render until dropped.
pub(crate) struct RenderingGuard(bool);

impl RenderingGuard {
    pub(crate) fn enter() -> Self {
        RenderingGuard(RENDERING.with(|r| r.replace(true)))
    }
}

impl Drop for RenderingGuard {
    fn drop(&mut self) {
        RENDERING.with(|r| r.set(self.0));
    }
}

impl<L: Lookup> Shared<L> {
    /// Waits for a lookup. A value used after its render (kept by a caller, formatted on an
    /// async worker) gets `None` — an error for the template — instead of blocking a thread that
    /// drives a runtime.
    fn block_on<F: Future>(&self, name: &str, future: F) -> Result<F::Output, Error> {
        if RENDERING.with(Cell::get) {
            Ok(self.handle.block_on(future))
        } else {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("resources.{name} was read outside its render (lookups run only while rendering)"),
            ))
        }
    }

    fn seq(objects: Objects<L::Object>) -> Value {
        Value::from_object(ObjectsSeq { objects, to_value: L::to_value })
    }

    fn record(&self, failure: String) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(failure);
        }
    }
}

/// `resources`: one entry per resource name.
pub(crate) struct Resources<L> {
    pub(crate) shared: Arc<Shared<L>>,
}

impl<L> fmt::Debug for Resources<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resources")
    }
}

impl<L: Lookup> Object for Resources<L> {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        self.shared
            .lookup
            .has_resource(name)
            .then(|| Value::from_object(Resource { shared: self.shared.clone(), name: Arc::from(name) }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.shared.lookup.resource_names().into_iter().map(Value::from).collect())
    }
}

/// `resources.NAME`: `list()`, `fetch(k1, …)`, `get_single(k1, …)`, and iteration (= `list()`).
struct Resource<L> {
    shared: Arc<Shared<L>>,
    name: Arc<str>,
}

impl<L> fmt::Debug for Resource<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource({})", self.name)
    }
}

impl<L: Lookup> Resource<L> {
    /// The keys of a `fetch`/`get_single` call; `Ok(None)` when one is undefined or none and the
    /// render is not strict (the lookup then matches nothing).
    fn keys(&self, method: &str, args: &[Value]) -> Result<Option<Vec<String>>, Error> {
        if args.is_empty() {
            return Err(Error::new(
                ErrorKind::MissingArgument,
                format!("resources.{}.{method}() needs 1 or more keys", self.name),
            ));
        }
        let mut keys = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            if arg.is_undefined() || arg.is_none() {
                if self.shared.strict {
                    return Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("resources.{}.{method}(): key {} is {}", self.name, i + 1, arg.kind()),
                    ));
                }
                return Ok(None);
            }
            match arg.as_str() {
                Some(s) => keys.push(s.to_owned()),
                None if arg.is_number() || arg.kind() == minijinja::value::ValueKind::Bool => {
                    keys.push(arg.to_string())
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("resources.{}.{method}(): key {} is a {}, not a string", self.name, i + 1, arg.kind()),
                    ));
                }
            }
        }
        Ok(Some(keys))
    }

    fn fetch(&self, method: &str, args: &[Value]) -> Result<Option<Objects<L::Object>>, Error> {
        let Some(keys) = self.keys(method, args)? else { return Ok(None) };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let result = self.shared.block_on(&self.name, self.shared.lookup.fetch(&self.name, &keys))?;
        result.map(Some).map_err(|e| {
            Error::new(ErrorKind::InvalidOperation, format!("resources.{}.{method}({keys:?}) failed", self.name))
                .with_source(e)
        })
    }
}

impl<L: Lookup> Object for Resource<L> {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.shared.block_on(&self.name, self.shared.lookup.list(&self.name)) {
            Err(e) => {
                self.shared.record(e.to_string());
                Enumerator::Empty
            }
            Ok(Ok(objects)) => {
                let to_value = L::to_value;
                Enumerator::Iter(Box::new((0..objects.len()).map(move |i| to_value(&objects[i]))))
            }
            Ok(Err(e)) => {
                self.shared.record(format!("iterating resources.{}: {e}", self.name));
                Enumerator::Empty
            }
        }
    }

    fn call_method(self: &Arc<Self>, _state: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "list" => {
                if !args.is_empty() {
                    return Err(Error::new(
                        ErrorKind::TooManyArguments,
                        format!("resources.{}.list() takes no arguments", self.name),
                    ));
                }
                let objects = self.shared.block_on(&self.name, self.shared.lookup.list(&self.name))?.map_err(|e| {
                    Error::new(ErrorKind::InvalidOperation, format!("resources.{}.list() failed", self.name))
                        .with_source(e)
                })?;
                Ok(Shared::<L>::seq(objects))
            }
            "fetch" => Ok(Shared::<L>::seq(self.fetch(method, args)?.unwrap_or_default())),
            "get_single" => Ok(match self.fetch(method, args)? {
                Some(objects) if objects.len() == 1 => L::to_value(&objects[0]),
                // None or several: templates get none (as the original's GetSingle).
                _ => Value::from(()),
            }),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("resources.{} has no method {method:?} (list, fetch, get_single)", self.name),
            )),
        }
    }
}
