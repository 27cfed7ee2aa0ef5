//! Pruning while `kube` decodes: [`DecodePruning`] hands a [`Pruner`] to every
//! [`CompactResource`](crate::CompactResource) deserialized on this thread inside
//! [`DecodePruning::scope`].
//!
//! `kube::Api` deserializes list pages and watch events itself, with `serde_json` and no
//! context, so a `Deserialize` impl cannot be told which fields its caller will throw away.
//! Without that, every key of `metadata.managedFields` (`f:data`, `k:{"uid":"…"}`, …) is
//! encoded — and interned in the process-wide key table, which is bounded — before the
//! watcher removes it. kube decodes inside the `poll_next` of the stream it returns (the HTTP
//! body is read and parsed there, not on another task), so a watcher that polls its stream
//! inside `scope` gets objects decoded already pruned: removed subtrees are skipped by the
//! parser, never encoded or interned. The scope is per thread and per poll, so tasks that
//! share a runtime thread never see each other's pruner.
//!
//! If decoding ever happened outside the scope (another task polling the same stream), the
//! object would be decoded whole: results stay correct (the watcher still prunes what it
//! stores), only the key table would see the removed keys again.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use crate::prune::{Pruner, Step};

thread_local! {
    static CURRENT: RefCell<Option<DecodePruning>> = const { RefCell::new(None) };
}

/// A [`Pruner`] applied to every [`CompactResource`](crate::CompactResource) decoded on the
/// current thread while [`scope`](Self::scope) runs. Cheap to clone.
///
/// A scope rather than an argument because `kube::Api` deserializes list pages and watch
/// events itself, with no context; it does so inside the `poll_next` of the stream it returns,
/// so polling that stream inside `scope` decodes its objects already pruned (kstore's watcher
/// does this with its `ignoreFields`). Removed subtrees are then skipped by the parser: never
/// encoded, never interned in the process-wide key table.
///
/// ```
/// use kstore_compact_object::{CompactResource, DecodePruning, Pruner, Step};
///
/// /// Removes `metadata.managedFields`.
/// struct NoManagedFields;
/// impl Pruner for NoManagedFields {
///     type State = u8; // depth
///     fn member(&self, depth: &u8, key: &str) -> Step<u8> {
///         match (depth, key) {
///             (0, "metadata") => Step::Enter(1),
///             (1, "managedFields") => Step::Remove,
///             _ => Step::Keep,
///         }
///     }
///     fn element(&self, _: &u8, _: usize) -> Step<u8> {
///         Step::Keep
///     }
/// }
///
/// let json = r#"{"metadata":{"name":"a","managedFields":[{"f:x":{}}]},"n":1}"#;
/// let pruning = DecodePruning::new(NoManagedFields, 0);
/// let r: CompactResource = pruning.scope(|| serde_json::from_str(json))?;
/// assert_eq!(r.object().to_string(), r#"{"metadata":{"name":"a"},"n":1}"#);
/// // Outside the scope, objects decode whole.
/// let whole: CompactResource = serde_json::from_str(json)?;
/// assert!(whole.object().pointer("/metadata/managedFields").is_some());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct DecodePruning(Arc<dyn ErasedPruner>);

impl DecodePruning {
    /// `pruner`, starting every object at `root`.
    pub fn new<P>(pruner: P, root: P::State) -> Self
    where
        P: Pruner + Send + Sync + 'static,
        P::State: Clone + Send + Sync + 'static,
    {
        DecodePruning(Arc::new(Erased { pruner, root }))
    }

    /// Runs `f` with this pruning in effect for [`CompactResource`](crate::CompactResource)
    /// decodes on this thread; the previous one (if any) is restored afterwards, also when `f`
    /// panics.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<DecodePruning>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// The pruning in effect on this thread.
    pub(crate) fn current() -> Option<DecodePruning> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// A [`Pruner`] over this pruning and its root state.
    pub(crate) fn pruner(&self) -> (Dyn<'_>, Box<dyn Any>) {
        (Dyn(&*self.0), self.0.root())
    }
}

impl std::fmt::Debug for DecodePruning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecodePruning")
    }
}

/// A [`Pruner`] with its state type erased, so one type can live in the thread-local.
trait ErasedPruner: Send + Sync {
    fn root(&self) -> Box<dyn Any>;
    fn member(&self, state: &dyn Any, key: &str) -> Step<Box<dyn Any>>;
    fn element(&self, state: &dyn Any, index: usize) -> Step<Box<dyn Any>>;
}

struct Erased<P: Pruner> {
    pruner: P,
    root: P::State,
}

fn boxed<S: 'static>(step: Step<S>) -> Step<Box<dyn Any>> {
    match step {
        Step::Keep => Step::Keep,
        Step::Remove => Step::Remove,
        Step::Enter(s) => Step::Enter(Box::new(s)),
    }
}

impl<P> ErasedPruner for Erased<P>
where
    P: Pruner + Send + Sync,
    P::State: Clone + Send + Sync + 'static,
{
    fn root(&self) -> Box<dyn Any> {
        Box::new(self.root.clone())
    }

    // States only ever come from `root` and `Enter` of this same pruner, so the downcasts
    // succeed; a mismatch would keep the subtree (never lose data) rather than panic.
    fn member(&self, state: &dyn Any, key: &str) -> Step<Box<dyn Any>> {
        state.downcast_ref().map_or(Step::Keep, |s| boxed(self.pruner.member(s, key)))
    }

    fn element(&self, state: &dyn Any, index: usize) -> Step<Box<dyn Any>> {
        state.downcast_ref().map_or(Step::Keep, |s| boxed(self.pruner.element(s, index)))
    }
}

/// The erased pruner as a [`Pruner`] (one small allocation per entered container: pruners
/// enter only the containers along their patterns' paths).
pub(crate) struct Dyn<'a>(&'a dyn ErasedPruner);

impl Pruner for Dyn<'_> {
    type State = Box<dyn Any>;

    fn member(&self, state: &Box<dyn Any>, key: &str) -> Step<Box<dyn Any>> {
        self.0.member(&**state, key)
    }

    fn element(&self, state: &Box<dyn Any>, index: usize) -> Step<Box<dyn Any>> {
        self.0.element(&**state, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CompactResource;

    /// Removes the top-level member named by the pruner.
    struct Drop1(&'static str);
    impl Pruner for Drop1 {
        type State = ();
        fn member(&self, (): &(), key: &str) -> Step<()> {
            if key == self.0 { Step::Remove } else { Step::Keep }
        }
        fn element(&self, (): &(), _: usize) -> Step<()> {
            Step::Keep
        }
    }

    fn decode() -> String {
        let r: CompactResource = serde_json::from_str(r#"{"a":1,"b":2,"c":[3]}"#).unwrap();
        r.object().to_string()
    }

    #[test]
    fn scopes_nest_and_restore_also_after_a_panic() {
        let (a, b) = (DecodePruning::new(Drop1("a"), ()), DecodePruning::new(Drop1("b"), ()));
        assert_eq!(decode(), r#"{"a":1,"b":2,"c":[3]}"#);
        a.scope(|| {
            assert_eq!(decode(), r#"{"b":2,"c":[3]}"#);
            b.scope(|| assert_eq!(decode(), r#"{"a":1,"c":[3]}"#));
            assert_eq!(decode(), r#"{"b":2,"c":[3]}"#);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.scope(|| panic!("inside"))));
            assert!(panicked.is_err());
            assert_eq!(decode(), r#"{"b":2,"c":[3]}"#);
        });
        assert_eq!(decode(), r#"{"a":1,"b":2,"c":[3]}"#);
        // Other threads never see this thread's scope.
        a.scope(|| assert_eq!(std::thread::spawn(decode).join().unwrap(), r#"{"a":1,"b":2,"c":[3]}"#));
    }
}
