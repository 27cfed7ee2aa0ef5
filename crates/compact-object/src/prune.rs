//! Copying an object without some of its members: the compact form of "remove these fields"
//! (kstore's `ignoreFields`) and of number normalisation, without decoding to a JSON tree.
//!
//! The walk copies every untouched subtree as raw bytes (containers record their byte size, so
//! a kept subtree is one `memcpy`) and asks the caller's [`Pruner`] only about the members and
//! elements along the paths it cares about.

use crate::encode::{ARRAY, Builder, FLOAT, OBJECT, get_f64, get_varint, value_len};
use crate::error::Result;
use crate::intern::{MAX_KEYS, key_str};
use crate::object::CompactObject;

/// What to do with one member of an object or one element of an array.
#[derive(Debug)]
pub enum Step<S> {
    /// Copy it unchanged (no further questions about anything below it).
    Keep,
    /// Leave it out.
    Remove,
    /// Copy it, asking about its own members or elements with this state. On a scalar, the
    /// same as `Keep`.
    Enter(S),
}

/// Decides, member by member, what [`CompactObject::prune`] keeps of an encoded object and
/// what [`CompactObject::from_str_pruned`] decodes of JSON (the same rules give the same bytes
/// on both paths). `State` is where the pruner is in its patterns (for example, which segment
/// of which path matched so far). Decisions must depend only on `state` and the key or index.
pub trait Pruner {
    /// The pruner's position, handed back for the members of an entered container.
    type State;

    /// For member `key` of an object entered with `state`.
    fn member(&self, state: &Self::State, key: &str) -> Step<Self::State>;

    /// For element `index` of an array entered with `state`.
    fn element(&self, state: &Self::State, index: usize) -> Step<Self::State>;
}

/// The exact integer a float stands for, when it has no fractional part and fits an `i64` (or,
/// when positive, a `u64`): how kstore normalises numbers, so that a port decoded as `80.0`
/// renders as `80`. `None` for every other float (fractions, non-finite, out of range).
pub fn integral(f: f64) -> Option<Integral> {
    // 2^63 and 2^64 are exact in f64; the ranges below are exactly the representable ones.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if !f.is_finite() || f.fract() != 0.0 {
        None
    } else if (-TWO_63..TWO_63).contains(&f) {
        Some(Integral::I64(f as i64))
    } else if (0.0..TWO_64).contains(&f) {
        Some(Integral::U64(f as u64))
    } else {
        None
    }
}

/// An integer found by [`integral`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integral {
    /// Fits an `i64` (non-negative values are stored as unsigned, like serde_json does).
    I64(i64),
    /// Above `i64::MAX`.
    U64(u64),
}

impl CompactObject {
    /// A copy of this object without the members and elements `pruner` removes; `Ok(None)`
    /// when nothing was removed (keep using `self`, no second allocation is held). With
    /// `normalize_numbers`, floats without fractional part also become integers (see
    /// [`integral`]), everywhere in the object.
    ///
    /// Cost: one pass over the entered containers plus one byte copy of everything kept;
    /// without `normalize_numbers`, kept subtrees are never walked.
    ///
    /// ```
    /// use kstore_compact_object::{CompactObject, Pruner, Step};
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
    /// let obj = CompactObject::from_slice(br#"{"metadata":{"name":"a","managedFields":[{}]},"n":2.0}"#)?;
    /// let pruned = obj.prune(&NoManagedFields, &0, true)?.expect("something was removed");
    /// assert_eq!(pruned.to_string(), r#"{"metadata":{"name":"a"},"n":2}"#);
    /// assert!(pruned.prune(&NoManagedFields, &0, true)?.is_none());
    /// # Ok::<(), kstore_compact_object::Error>(())
    /// ```
    pub fn prune<P: Pruner>(
        &self,
        pruner: &P,
        root: &P::State,
        normalize_numbers: bool,
    ) -> Result<Option<CompactObject>> {
        let mut walk =
            Walk { text: self.as_str(), pruner, normalize: normalize_numbers, out: Builder::with_capacity(0) };
        // A dry run first: most objects of a watch lose the same fields, but when nothing
        // would change, no copy is made at all.
        if !walk.changes(0, Some(root)) {
            return Ok(None);
        }
        walk.out = Builder::with_capacity(self.as_bytes().len());
        walk.copy(0, Some(root))?;
        CompactObject::from_encoded(walk.out.buf).map(Some)
    }
}

struct Walk<'a, P: Pruner> {
    text: &'a str,
    pruner: &'a P,
    normalize: bool,
    out: Builder,
}

/// A container's members or elements: (count, first content byte).
fn container(buf: &[u8], pos: usize) -> (usize, usize) {
    let mut p = pos + 1;
    let count = get_varint(buf, &mut p) as usize;
    get_varint(buf, &mut p);
    (count, p)
}

impl<'a, P: Pruner> Walk<'a, P> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The key of the member at `pos`, and where its value starts.
    fn key_at(&self, pos: usize) -> (&'a str, usize) {
        let mut p = pos;
        let k = get_varint(self.bytes(), &mut p) as usize;
        if k < MAX_KEYS {
            return (key_str(k).unwrap_or(""), p);
        }
        let end = p + (k - MAX_KEYS);
        (self.text.get(p..end).unwrap_or(""), end)
    }

    /// The `i`th member or element (of a container with `tag`), starting at `p`: what the
    /// pruner says of it (`None` inside a container kept whole) and where its value starts.
    fn child(&self, tag: u8, p: usize, i: usize, state: Option<&P::State>) -> (Option<Step<P::State>>, usize) {
        if tag == OBJECT {
            let (key, v) = self.key_at(p);
            (state.map(|s| self.pruner.member(s, key)), v)
        } else {
            (state.map(|s| self.pruner.element(s, i)), p)
        }
    }

    /// Whether copying the value at `pos` (`state` = `None`: kept, only numbers matter) would
    /// change anything.
    fn changes(&self, pos: usize, state: Option<&P::State>) -> bool {
        let buf = self.bytes();
        match buf[pos] {
            tag @ (OBJECT | ARRAY) if state.is_some() || self.normalize => {
                let (count, mut p) = container(buf, pos);
                (0..count).any(|i| {
                    let (step, v) = self.child(tag, p, i, state);
                    p = v + value_len(buf, v);
                    match step {
                        Some(Step::Remove) => true,
                        Some(Step::Enter(s)) => crate::stack::guard(|| self.changes(v, Some(&s))),
                        Some(Step::Keep) | None => self.normalize && crate::stack::guard(|| self.changes(v, None)),
                    }
                })
            }
            FLOAT => self.normalize && get_f64(&buf[pos + 1..]).and_then(integral).is_some(),
            _ => false,
        }
    }

    /// Copies the value at `pos` into `out`, pruned.
    fn copy(&mut self, pos: usize, state: Option<&P::State>) -> Result<()> {
        let buf = self.bytes();
        let len = value_len(buf, pos);
        match buf[pos] {
            tag @ (OBJECT | ARRAY) if state.is_some() || self.normalize => {
                let (count, mut p) = container(buf, pos);
                let open = self.out.begin()?;
                let mut kept = 0;
                for i in 0..count {
                    let start = p;
                    let (step, v) = self.child(tag, p, i, state);
                    p = v + value_len(buf, v);
                    let inner = match step {
                        Some(Step::Remove) => continue,
                        Some(Step::Enter(s)) => Some(s),
                        Some(Step::Keep) | None => None,
                    };
                    kept += 1;
                    // The key's bytes (empty for an element), then the value.
                    self.out.buf.extend_from_slice(&buf[start..v]);
                    if inner.is_none() && !self.normalize {
                        self.out.buf.extend_from_slice(&buf[v..p]);
                    } else {
                        crate::stack::guard(|| self.copy(v, inner.as_ref()))?;
                    }
                }
                if tag == OBJECT { self.out.end_unique_object(open, kept) } else { self.out.end_array(open, kept) }
            }
            FLOAT if self.normalize => {
                match get_f64(&buf[pos + 1..]).and_then(integral) {
                    Some(Integral::I64(i)) => self.out.i64(i),
                    Some(Integral::U64(u)) => self.out.u64(u),
                    None => self.out.buf.extend_from_slice(&buf[pos..pos + len]),
                }
                Ok(())
            }
            _ => {
                self.out.buf.extend_from_slice(&buf[pos..pos + len]);
                Ok(())
            }
        }
    }
}
