//! Feeding a kstore store from any kube-rs watch stream: the one event loop of the watcher.
//!
//! [`reflector`] is kstore's counterpart of `kube::runtime::reflector(writer, stream)`: it
//! takes the user's own `watcher(api, config)` stream (their `watcher::Config`, backoff,
//! `.modify()`, …), maintains an indexed [`MemoryStore`] from it and passes every event on
//! unchanged, so the same stream can also drive a kube `Controller`
//! (`Controller::for_shared_stream`, `watches_stream`) or kube's own `reflect_shared`.
//!
//! # Usage
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use futures::TryStreamExt;
//! use k8s_openapi::api::core::v1::Service;
//! use kstore_watcher::reflect::{Writer, reflector};
//! use kube::runtime::{WatchStreamExt, watcher};
//!
//! let indexer = indexer::Indexer::new(["metadata.namespace", "metadata.labels.app"], [""; 0])?;
//! let writer = Writer::<Service>::typed(indexer)?;
//! let services = writer.reader();              // read-only, `Clone`
//! let api = kube::Api::<Service>::all(client);
//! let stream = reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
//! tokio::spawn(stream.try_for_each(|_| async { Ok(()) }));
//! services.wait_until_ready().await?;
//! let web = services.store().get(&["default", "web"])?; // every Service of app=web in default
//! # Ok(()) }
//! ```
//!
//! # Semantics
//! * `Init` … `InitApply`* … `InitDone` (a (re)list) is buffered and published whole, at
//!   `InitDone` (`replace_all`): readers see the previous complete state until then, and
//!   objects absent from the new list disappear.
//! * `Apply` / `Delete` are applied at once; a delete removes exactly that object (by identity
//!   and uid).
//! * A stream error is counted and passed on; it never clears or changes the store.
//! * When the stream ends, the store keeps its last state but reports
//!   [`Readiness::Ended`]: never silently stale.
//! * Objects without `metadata.name` are skipped and counted ([`ReflectError::MissingName`]);
//!   objects whose keys cannot be extracted are not stored (an earlier copy is removed) and
//!   counted ([`ReflectError::Keys`]).
//! * [`Writer::changes`] is a raw (not debounced) stream of what changed, sent after the
//!   change is published, for `Controller::reconcile_all_on` or `watches_stream`-style
//!   triggers.
//!
//! The watcher's own [`ResourceWatcher`](crate::ResourceWatcher) runs the same loop
//! (`EventLoop`) over its per-namespace streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use compact_object::{CompactObject, CompactResource};
use futures::channel::mpsc;
use futures::{Stream, StreamExt, stream};
use indexer::{Indexer, Typed};
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use memory_store::{MemoryStore, ReadHandle};
use store_types::{ChangeStats, GetFuture, Identity, IdentityRef, KeyTuple, KubeObject, Objects, Store};
use tokio::sync::watch;
use tracing::warn;

/// Whether a reflected store is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// The first list is not complete yet.
    Pending,
    /// The first list is in the store and the stream is running.
    Ready,
    /// The stream ended: the store keeps its last state, which nothing updates any more.
    Ended,
}

/// Why an object from the stream was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReflectError {
    /// The object has no `metadata.name`, so it has no identity: skipped and counted.
    #[error("{kind} without metadata.name skipped")]
    MissingName {
        /// The Rust type of the object.
        kind: &'static str,
    },
    /// The index keys could not be extracted: the object is not stored (an earlier copy is
    /// removed).
    #[error("{object}: index keys not extractable: {source}")]
    Keys {
        /// The object.
        object: Identity,
        /// The indexer's error.
        #[source]
        source: indexer::IndexError,
    },
    /// The object could not be encoded as a compact object (dynamic objects only).
    #[error("{object}: not representable as a compact object: {source}")]
    Encode {
        /// The object.
        object: Identity,
        /// The encoder's error.
        #[source]
        source: compact_object::Error,
    },
    /// The indexer and the store disagree (a configuration error, reported at construction).
    #[error(transparent)]
    Store(#[from] store_types::StoreError),
}

/// What changed in a reflected store; see [`Writer::changes`]. Raw: one per applied event or
/// relist, sent after the change is published.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChange {
    /// The object was added or replaced.
    Applied(Identity),
    /// The object was removed.
    Deleted(Identity),
    /// A (re)list was published; what it changed, in counts.
    Relisted(ChangeStats),
}

impl StoreChange {
    /// The changed object's identity (none for a relist).
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            StoreChange::Applied(id) | StoreChange::Deleted(id) => Some(id),
            StoreChange::Relisted(_) => None,
        }
    }

    /// The changed object as kube's `ObjectRef` (none for a relist), for
    /// `Controller::watches_stream`-style triggers.
    pub fn object_ref<K>(&self, dyntype: &K::DynamicType) -> Option<ObjectRef<K>>
    where
        K: kube::Resource,
        K::DynamicType: Clone,
    {
        self.identity().map(|id| object_ref(id, dyntype))
    }
}

/// kube's `ObjectRef` of an identity (`namespace` `""` is cluster-scoped).
pub fn object_ref<K>(id: &Identity, dyntype: &K::DynamicType) -> ObjectRef<K>
where
    K: kube::Resource,
    K::DynamicType: Clone,
{
    let namespace = id.key.namespace();
    let r = ObjectRef::new_with(&id.key.name(), dyntype.clone());
    if namespace.is_empty() { r } else { r.within(&namespace) }
}

/// The identity of kube's `ObjectRef` (the uid is not part of an `ObjectRef`).
///
/// A free function rather than `From<&ObjectRef<K>> for Identity`: `Identity` lives in
/// store-types, which by the layering rules pulls in no async runtime, and `ObjectRef` lives in
/// kube-runtime (which does), so neither crate that could hold the impl may name the other.
pub fn identity_of<K: kube::Resource>(r: &ObjectRef<K>) -> Identity {
    Identity::new(r.namespace.as_deref().unwrap_or(""), &r.name)
}

// ---- the event loop ------------------------------------------------------------------------

/// Where an [`EventLoop`] puts what it reads: the writer side of a store.
pub(crate) trait Sink<K>: Send {
    /// A prepared object, buffered during a (re)list.
    type Item: Send;
    /// An object event (listed or watched) arrived.
    fn received(&self) {}
    /// Prepares one listed object; `None` skips it.
    fn prepare(&self, object: &K) -> Option<Self::Item>;
    /// Publishes the complete list of stream `stream`; `initial` on its first list.
    fn relist(&self, stream: usize, items: Vec<Self::Item>, initial: bool);
    /// Applies one watched object.
    fn apply(&self, object: &K);
    /// Removes one object.
    fn delete(&self, object: &K);
    /// A stream error (never changes the store).
    fn error(&self, error: &watcher::Error);
}

/// The watcher's one event loop: buffers each stream's (re)list and publishes it whole,
/// applies watch events, and counts errors — for the user's stream ([`reflector`]) and for the
/// watcher's own per-namespace streams alike.
pub(crate) struct EventLoop<K, S: Sink<K>> {
    sink: S,
    buffers: Vec<Option<Vec<S::Item>>>,
    synced_once: Vec<bool>,
    _k: std::marker::PhantomData<fn(&K)>,
}

impl<K, S: Sink<K>> EventLoop<K, S> {
    /// A loop over `streams` tagged streams (0..streams).
    pub(crate) fn new(sink: S, streams: usize) -> Self {
        let streams = streams.max(1);
        EventLoop {
            sink,
            buffers: (0..streams).map(|_| None).collect(),
            synced_once: vec![false; streams],
            _k: std::marker::PhantomData,
        }
    }

    /// Handles one event of stream `i`.
    pub(crate) fn handle(&mut self, i: usize, event: &Result<Event<K>, watcher::Error>) {
        match event {
            Ok(Event::Init) => self.buffers[i] = Some(Vec::new()),
            Ok(Event::InitApply(obj)) => {
                self.sink.received();
                if let Some(item) = self.sink.prepare(obj) {
                    self.buffers[i].get_or_insert_with(Vec::new).push(item);
                }
            }
            Ok(Event::InitDone) => {
                let items = self.buffers[i].take().unwrap_or_default();
                let initial = !std::mem::replace(&mut self.synced_once[i], true);
                self.sink.relist(i, items, initial);
            }
            Ok(Event::Apply(obj)) => {
                self.sink.received();
                self.sink.apply(obj);
            }
            Ok(Event::Delete(obj)) => {
                self.sink.received();
                self.sink.delete(obj);
            }
            Err(e) => self.sink.error(e),
        }
    }
}

// ---- the user-facing adapter --------------------------------------------------------------

/// Turns an object of the stream (with its identity) into what the store holds, and its keys.
type Convert<K, T> = fn(&Indexer, &K, IdentityRef<'_>) -> Result<(Arc<T>, KeyTuple), ReflectError>;

struct Status {
    readiness: watch::Sender<Readiness>,
    skipped: AtomicU64,
    errors: AtomicU64,
}

/// The one writer of a store fed by [`reflector`]: not `Clone`; [`reflector`] consumes it.
/// Take read handles with [`reader`](Self::reader) and change streams with
/// [`changes`](Self::changes) first.
///
/// `K` is the stream's object type, `T` what the store holds: `Arc<K>` itself for typed
/// objects ([`typed`](Self::typed)), a [`CompactObject`] for dynamic ones
/// ([`dynamic`](Self::dynamic), [`compact`](Self::compact)).
pub struct Writer<K, T = K> {
    store: MemoryStore<T>,
    indexer: Indexer,
    convert: Convert<K, T>,
    status: Arc<Status>,
    changes: Mutex<Vec<mpsc::UnboundedSender<StoreChange>>>,
}

impl<K, T> std::fmt::Debug for Writer<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("store", &self.store).finish_non_exhaustive()
    }
}

fn typed_convert<K>(indexer: &Indexer, k: &K, id: IdentityRef<'_>) -> Result<(Arc<K>, KeyTuple), ReflectError>
where
    K: kube::Resource + serde::Serialize + Clone,
{
    let keys = indexer.keys(&Typed(k)).map_err(|source| ReflectError::Keys { object: id.to_owned(), source })?;
    Ok((Arc::new(k.clone()), keys))
}

/// Field removal and key extraction on a compact object (`normalize`: numbers too).
fn compact_item(
    indexer: &Indexer,
    obj: CompactObject,
    normalize: bool,
    id: IdentityRef<'_>,
) -> Result<(Arc<CompactObject>, KeyTuple), ReflectError> {
    let encode = |source| ReflectError::Encode { object: id.to_owned(), source };
    let obj = indexer.prepare_compact(&obj, normalize).map_err(encode)?.unwrap_or(obj);
    let keys = indexer.keys(&obj).map_err(|source| ReflectError::Keys { object: id.to_owned(), source })?;
    Ok((Arc::new(obj), keys))
}

fn dynamic_convert(
    indexer: &Indexer,
    o: &DynamicObject,
    id: IdentityRef<'_>,
) -> Result<(Arc<CompactObject>, KeyTuple), ReflectError> {
    let obj =
        CompactObject::from_serialize(o).map_err(|source| ReflectError::Encode { object: id.to_owned(), source })?;
    compact_item(indexer, obj, true, id)
}

fn compact_convert(
    indexer: &Indexer,
    o: &CompactResource,
    id: IdentityRef<'_>,
) -> Result<(Arc<CompactObject>, KeyTuple), ReflectError> {
    // `CompactResource` decoding already normalised the numbers.
    compact_item(indexer, o.object().clone(), false, id)
}

impl<K> Writer<K, K>
where
    K: kube::Resource + serde::Serialize + Clone + Send + Sync + 'static,
{
    /// A writer storing typed objects as `Arc<K>` (like kube's reflector), keyed by `indexer`
    /// (its `ignoreFields` are not applied: typed objects are stored as received; strip fields
    /// with the stream's `.modify()`).
    pub fn typed(indexer: Indexer) -> Result<Self, ReflectError> {
        Self::build(indexer, typed_convert::<K>)
    }
}

impl Writer<DynamicObject, CompactObject> {
    /// A writer storing `DynamicObject`s as [`CompactObject`]s (about their JSON size), keyed
    /// by `indexer`, with its `ignoreFields` removed and numbers normalised (as the watcher
    /// stores them).
    pub fn dynamic(indexer: Indexer) -> Result<Self, ReflectError> {
        Self::build(indexer, dynamic_convert)
    }
}

impl Writer<CompactResource, CompactObject> {
    /// A writer for a stream of [`CompactResource`]s (`Api<CompactResource>`, which decodes
    /// pages and events straight into the compact form), keyed by `indexer`, with its
    /// `ignoreFields` removed. Poll the stream inside the scope of
    /// [`Indexer::decode_pruning`](indexer::Indexer::decode_pruning) to have them skipped
    /// while kube decodes (never encoded or interned), as `ResourceWatcher` does.
    pub fn compact(indexer: Indexer) -> Result<Self, ReflectError> {
        Self::build(indexer, compact_convert)
    }
}

impl<K, T> Writer<K, T>
where
    K: kube::Resource + Send + Sync + 'static,
    T: KubeObject + Send + Sync + 'static,
{
    fn build(indexer: Indexer, convert: Convert<K, T>) -> Result<Self, ReflectError> {
        let store = MemoryStore::new(indexer.num_keys())?;
        let (readiness, _) = watch::channel(Readiness::Pending);
        Ok(Writer {
            store,
            indexer,
            convert,
            status: Arc::new(Status { readiness, skipped: AtomicU64::new(0), errors: AtomicU64::new(0) }),
            changes: Mutex::new(Vec::new()),
        })
    }

    /// A read-only handle to the store and its readiness (cheap to clone).
    pub fn reader(&self) -> Reflected<T> {
        Reflected { store: self.store.handle(), status: self.status.clone() }
    }

    /// A raw stream of changes, each sent after it is published: [`StoreChange::Applied`] /
    /// [`StoreChange::Deleted`] per watch event, [`StoreChange::Relisted`] per (re)list. Not
    /// debounced: a consumer that falls behind buffers (unbounded); drop the stream to stop.
    /// For `Controller::reconcile_all_on`, map each item to `()`.
    pub fn changes(&self) -> impl Stream<Item = StoreChange> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    fn notify(&self, change: StoreChange) {
        let mut senders = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }

    /// The object's identity, borrowed from its metadata (`None` without a name).
    fn identity_ref(object: &K) -> Option<IdentityRef<'_>> {
        let meta = object.meta();
        Some(IdentityRef {
            namespace: meta.namespace.as_deref().unwrap_or(""),
            name: meta.name.as_deref()?,
            uid: meta.uid.as_deref(),
        })
    }

    /// Converts and keys one object; `Err(Some(id))`: not storable, remove any earlier copy.
    /// The identity is only copied out of the object when it is needed (an error, a change).
    fn item(&self, object: &K) -> Result<(Arc<T>, KeyTuple), Option<Identity>> {
        let Some(id) = Self::identity_ref(object) else {
            self.skip(&ReflectError::MissingName { kind: std::any::type_name::<K>() });
            return Err(None);
        };
        (self.convert)(&self.indexer, object, id).map_err(|e| {
            self.skip(&e);
            Some(id.to_owned())
        })
    }

    fn skip(&self, error: &dyn std::fmt::Display) {
        self.status.skipped.fetch_add(1, Ordering::Relaxed);
        warn!(error = %error, "object not stored");
    }
}

impl<K, T> Sink<K> for Writer<K, T>
where
    K: kube::Resource + Send + Sync + 'static,
    T: KubeObject + Send + Sync + 'static,
{
    type Item = memory_store::Prepared<T>;

    /// Converts, keys and checks each object of a list as it arrives (while it is in the CPU
    /// cache), so that `InitDone` only has to build the index.
    fn prepare(&self, object: &K) -> Option<Self::Item> {
        let (stored, keys) = self.item(object).ok()?;
        match self.store.prepare(stored, keys) {
            Ok(prepared) => Some(prepared),
            // Keys come from the store's own indexer and the identity was read above:
            // unreachable in practice; counted like any object not stored.
            Err(e) => {
                self.skip(&e);
                None
            }
        }
    }

    fn relist(&self, _stream: usize, items: Vec<Self::Item>, initial: bool) {
        match self.store.replace_all_prepared(items) {
            Ok(stats) => {
                if initial {
                    self.status.readiness.send_replace(Readiness::Ready);
                }
                self.notify(StoreChange::Relisted(stats));
            }
            // Items were keyed by the store's own indexer: unreachable in practice, and then
            // the previous state stays published.
            Err(e) => warn!(error = %e, "relist rejected by the store"),
        }
    }

    fn apply(&self, object: &K) {
        match self.item(object) {
            Ok((stored, keys)) => {
                let id = stored.identity().map(|i| i.to_owned());
                match self.store.update(stored, keys) {
                    Ok(memory_store::Change::Unchanged) => {}
                    Ok(_) => {
                        if let Some(id) = id {
                            self.notify(StoreChange::Applied(id));
                        }
                    }
                    Err(e) => warn!(error = %e, "object rejected by the store"),
                }
            }
            Err(Some(id)) => {
                let id = Identity { key: id.key, uid: None };
                if self.store.delete(&id).is_some() {
                    self.notify(StoreChange::Deleted(id));
                }
            }
            Err(None) => {}
        }
    }

    fn delete(&self, object: &K) {
        if let Some(id) = Self::identity_ref(object).map(|id| id.to_owned())
            && self.store.delete(&id).is_some()
        {
            self.notify(StoreChange::Deleted(id));
        }
    }

    fn error(&self, error: &watcher::Error) {
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        warn!(error = %error, "watch stream error; the store keeps its state");
    }
}

impl<K, T> Drop for Writer<K, T> {
    /// Nothing feeds the store any more: readers see [`Readiness::Ended`].
    fn drop(&mut self) {
        self.status.readiness.send_replace(Readiness::Ended);
    }
}

/// Feeds `writer`'s store from `stream` and passes every event on unchanged (errors too), like
/// `kube::runtime::reflector`. Poll the returned stream (or share it) to drive the store; when
/// `stream` ends, the store is marked [`Readiness::Ended`].
pub fn reflector<K, T, S>(writer: Writer<K, T>, stream: S) -> impl Stream<Item = S::Item> + Send
where
    K: kube::Resource + Send + Sync + 'static,
    T: KubeObject + Send + Sync + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    // The writer lives in the loop and is dropped when `stream` ends (or the returned stream
    // is dropped), which marks the store ended.
    let events = Some(EventLoop::new(writer, 1));
    stream::unfold((Box::pin(stream), events), |(mut stream, mut events)| async move {
        match stream.next().await {
            Some(event) => {
                if let Some(events) = &mut events {
                    events.handle(0, &event);
                }
                Some((event, (stream, events)))
            }
            None => {
                drop(events);
                None
            }
        }
    })
}

/// A read-only handle to a store fed by [`reflector`]: the store ([`store`](Self::store)),
/// its readiness and counters. Cheap to clone; implements the read-only [`Store`] trait.
pub struct Reflected<T> {
    store: ReadHandle<T>,
    status: Arc<Status>,
}

impl<T> Clone for Reflected<T> {
    fn clone(&self) -> Self {
        Reflected { store: self.store.clone(), status: self.status.clone() }
    }
}

impl<T> std::fmt::Debug for Reflected<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflected")
            .field("store", &self.store)
            .field("readiness", &*self.status.readiness.borrow())
            .finish()
    }
}

/// The stream ended before the store was ever complete.
#[derive(Debug, thiserror::Error)]
#[error("the watch stream ended before its first list was complete")]
pub struct NeverReady;

impl<T: KubeObject> Reflected<T> {
    /// The store (read-only).
    pub fn store(&self) -> &ReadHandle<T> {
        &self.store
    }

    /// Whether the store is complete, still syncing, or no longer fed.
    pub fn readiness(&self) -> Readiness {
        *self.status.readiness.borrow()
    }

    /// True while the store is complete and fed ([`Readiness::Ready`]).
    pub fn is_ready(&self) -> bool {
        self.readiness() == Readiness::Ready
    }

    /// Resolves once the first list is in the store; fails if the stream ended first.
    pub async fn wait_until_ready(&self) -> Result<(), NeverReady> {
        let mut rx = self.status.readiness.subscribe();
        match rx.wait_for(|r| *r != Readiness::Pending).await.map(|r| *r) {
            Ok(Readiness::Ready) => Ok(()),
            _ if !self.store.is_empty() => Ok(()),
            _ => Err(NeverReady),
        }
    }

    /// Objects skipped so far (no name, keys not extractable, not encodable).
    pub fn skipped(&self) -> u64 {
        self.status.skipped.load(Ordering::Relaxed)
    }

    /// Stream errors seen so far (each passed on; none changed the store).
    pub fn stream_errors(&self) -> u64 {
        self.status.errors.load(Ordering::Relaxed)
    }

    /// The object `r` refers to, if stored: a kube `ObjectRef` (from a `Controller`'s
    /// reconcile request, say) looks the object up directly.
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::Service;
    /// use kstore_watcher::reflect::Writer;
    /// use kube::runtime::reflector::ObjectRef;
    ///
    /// let indexer = indexer::Indexer::new(["metadata.namespace", "metadata.name"], [""; 0]).unwrap();
    /// let writer = Writer::<Service>::typed(indexer).unwrap();
    /// let reader = writer.reader();
    /// let r = ObjectRef::<Service>::new("web").within("default");
    /// assert!(reader.get_by_ref(&r).is_none());
    /// assert_eq!((reader.skipped(), reader.stream_errors()), (0, 0));
    /// ```
    pub fn get_by_ref<K: kube::Resource>(&self, r: &ObjectRef<K>) -> Option<Arc<T>> {
        self.store.get_by_identity(r.namespace.as_deref().unwrap_or(""), &r.name)
    }
}

#[async_trait::async_trait]
impl<T: KubeObject> Store<T> for Reflected<T> {
    fn num_keys(&self) -> usize {
        self.store.num_keys()
    }

    fn get<'a>(&'a self, keys: &'a [&'a str]) -> GetFuture<'a, T> {
        Store::get(&self.store, keys)
    }

    fn get_by_identity<'a>(&'a self, namespace: &'a str, name: &'a str) -> GetFuture<'a, T> {
        Store::get_by_identity(&self.store, namespace, name)
    }

    async fn list(&self) -> store_types::Result<Objects<T>> {
        Ok(self.store.list())
    }

    fn len(&self) -> usize {
        self.store.len()
    }
}
