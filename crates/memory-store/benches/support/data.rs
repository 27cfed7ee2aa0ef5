//! The data both `benches/store.rs` and `examples/ratios.rs` measure on: generated
//! ConfigMaps keyed by `[namespace, name]`, a poll for futures that never wait, and how a
//! lookup's result is consumed.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use k8s_openapi::api::core::v1::ConfigMap;
use kstore_memory_store::KeyTuple;

/// Store sizes of every table.
pub(crate) const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// ConfigMap number `i` in namespace `ns`, at resourceVersion `rv`.
pub(crate) fn configmap(ns: usize, i: usize, rv: u64) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(format!("ns-{ns:04}"));
    c.metadata.name = Some(format!("cm-{i:06}"));
    c.metadata.uid = Some(format!("uid-{ns}-{i}"));
    c.metadata.resource_version = Some(rv.to_string());
    c.data = Some([("key".to_string(), format!("value-{i}"))].into());
    c
}

/// Its `[namespace, name]` key tuple.
pub(crate) fn keys_of(c: &ConfigMap) -> KeyTuple {
    KeyTuple::new([c.metadata.namespace.as_deref().unwrap(), c.metadata.name.as_deref().unwrap()])
}

/// The output of a future that must be ready at once (MemoryStore's are).
#[inline(always)]
pub(crate) fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStore future waited"),
    }
}

/// Keeps a lookup's result from being optimised away, then drops it where it is. Returning it
/// instead (criterion's `black_box(result)`) copies it through the stack, and for a result of
/// two or three words that copy stalls on store forwarding (written as words, read back as
/// pairs): several nanoseconds that measure the harness, not the lookup. Every contender is
/// consumed the same way.
#[inline(always)]
pub(crate) fn consume<R>(result: R) {
    std::hint::black_box(&result);
}
