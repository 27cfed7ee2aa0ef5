//! The process-wide key interner.
//!
//! Object keys (`metadata`, `name`, `app.kubernetes.io/name`, ...) repeat across every object of
//! a resource, so each distinct key is stored once here and objects refer to it by a small id
//! (one byte for the 64 most common keys, two bytes for the next 4,032).
//!
//! The table is append-only and bounded: at most [`MAX_KEYS`] keys of at most [`MAX_KEY_LEN`]
//! bytes are ever interned, so it can never grow past roughly 1.5 MB, however hostile the keys
//! it sees (ConfigMap data keys, generated annotation keys). A key that does not fit (too long,
//! or the table is full) is simply stored inline in the object that uses it; results are the
//! same either way.
//!
//! Reads are lock-free (a few atomic loads): an open-addressing probe table of `u16` ids maps a
//! key's hash to its id, and a segmented array maps an id back to its `&'static str`. Inserts
//! take a mutex; the probe table starts at 1,024 slots (2 KiB) and is replaced by a 4×/4×/2×
//! larger copy whenever it would pass half full (the replaced tables stay allocated, so a
//! reader holding one is never invalidated). Interned strings are leaked on purpose, which is what makes them
//! `'static` and lets [`Node::as_str`](crate::Node::as_str) and
//! [`Node::entries`](crate::Node::entries) hand out plain `&str` without any `unsafe` code.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// At most this many distinct keys are interned per process; later new keys are stored inline.
pub const MAX_KEYS: usize = 16_000;
/// Keys longer than this many bytes are always stored inline.
pub const MAX_KEY_LEN: usize = 64;

/// Sizes of the successive probe tables (powers of two). A table is replaced by the next one,
/// rehashed, when it would become more than half full; the last holds `2 * MAX_KEYS` slots.
const LEVELS: [usize; 4] = [1_024, 4_096, 16_384, 32_768];
/// Segment `k` of the id → string array holds `FIRST_SEGMENT << k` ids.
const FIRST_SEGMENT: usize = 64;
/// `FIRST_SEGMENT * (2^SEGMENTS - 1)` ≥ `MAX_KEYS`.
const SEGMENTS: usize = 9;

const _: () = assert!(MAX_KEYS < u16::MAX as usize && LEVELS[LEVELS.len() - 1] >= 2 * MAX_KEYS);
const _: () = assert!(FIRST_SEGMENT * ((1 << SEGMENTS) - 1) >= MAX_KEYS);

/// Keys seeded at start-up, most frequent first, so that they get one-byte ids (ids 0..63) and
/// the same ids in every process.
const COMMON_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "spec",
    "status",
    "data",
    "type",
    "key",
    "value",
    "port",
    "protocol",
    "targetPort",
    "ports",
    "selector",
    "path",
    "pathType",
    "backend",
    "service",
    "number",
    "host",
    "hosts",
    "rules",
    "http",
    "paths",
    "tls",
    "secretName",
    "addresses",
    "conditions",
    "ready",
    "serving",
    "terminating",
    "targetRef",
    "nodeName",
    "zone",
    "endpoints",
    "addressType",
    "controller",
    "blockOwnerDeletion",
    "loadBalancer",
    "ingress",
    "ip",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "sessionAffinity",
    "internalTrafficPolicy",
    "nodePort",
    "appProtocol",
    "hostname",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app",
    "containers",
    "image",
    "env",
    "resources",
    "volumeMounts",
    "mountPath",
    "lastTransitionTime",
    "reason",
    "message",
    "observedGeneration",
    "replicas",
    "template",
    "matchLabels",
    "deletionTimestamp",
    "ingressClassName",
    "defaultBackend",
    "stringData",
    "binaryData",
    "immutable",
    "tls.crt",
    "tls.key",
    "ca.crt",
];

/// Size of the shared key table, for memory accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InternerStats {
    /// Distinct keys interned so far.
    pub keys: usize,
    /// Heap bytes held by the table (probe table, id segments and the key strings).
    pub heap_bytes: usize,
}

/// Statistics of the process-wide key table. Every [`CompactObject`](crate::CompactObject)
/// shares it; divide `heap_bytes` by the number of live objects for the amortised cost.
pub fn interner_stats() -> InternerStats {
    let t = interner();
    let keys = t.len.load(Ordering::Acquire);
    let segments: usize = t
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.get().is_some())
        .map(|(k, _)| (FIRST_SEGMENT << k) * size_of::<OnceLock<&'static str>>())
        .sum();
    InternerStats {
        keys,
        heap_bytes: t.levels.iter().filter_map(OnceLock::get).map(|l| l.len() * size_of::<AtomicU16>()).sum::<usize>()
            + segments
            + t.string_bytes.load(Ordering::Relaxed),
    }
}

pub(crate) struct Interner {
    /// Open-addressing probe tables, `0` = empty, otherwise `id + 1`; only `levels[level]` is
    /// current. A slot goes from empty to full once and never changes again; a table that is
    /// replaced stays allocated (it is smaller than its successor) so readers holding it stay
    /// valid.
    levels: [OnceLock<Box<[AtomicU16]>>; LEVELS.len()],
    /// Index of the current probe table.
    level: AtomicUsize,
    /// id → key. Segments are allocated on demand.
    segments: [OnceLock<Box<[OnceLock<&'static str>]>>; SEGMENTS],
    /// Number of ids handed out.
    len: AtomicUsize,
    /// Bytes of leaked key strings.
    string_bytes: AtomicUsize,
    /// Serialises inserts.
    insert_lock: Mutex<()>,
    hasher: foldhash::fast::RandomState,
}

static INTERNER: OnceLock<Interner> = OnceLock::new();

/// The process-wide interner.
#[inline]
pub(crate) fn interner() -> &'static Interner {
    INTERNER.get_or_init(Interner::new)
}

/// The key with this id: a plain array read for the seeded common keys (ids are assigned to them
/// first, in order), the shared table otherwise.
#[inline]
pub(crate) fn key_str(id: usize) -> Option<&'static str> {
    match COMMON_KEYS.get(id) {
        Some(key) => Some(key),
        None => interner().get(id),
    }
}

fn empty_table(size: usize) -> Box<[AtomicU16]> {
    (0..size).map(|_| AtomicU16::new(0)).collect()
}

#[inline]
fn locate(id: usize) -> (usize, usize) {
    let block = id / FIRST_SEGMENT + 1;
    let k = block.ilog2() as usize;
    (k, id - FIRST_SEGMENT * ((1 << k) - 1))
}

impl Interner {
    fn new() -> Self {
        let t = Interner {
            levels: Default::default(),
            level: AtomicUsize::new(0),
            segments: Default::default(),
            len: AtomicUsize::new(0),
            string_bytes: AtomicUsize::new(0),
            insert_lock: Mutex::new(()),
            hasher: foldhash::fast::RandomState::default(),
        };
        let _ = t.levels[0].set(empty_table(LEVELS[0]));
        for key in COMMON_KEYS {
            t.intern(key);
        }
        t
    }

    /// The key with this id; `None` only for ids never handed out.
    #[inline]
    pub(crate) fn get(&self, id: usize) -> Option<&'static str> {
        let (k, off) = locate(id);
        self.segments.get(k)?.get()?.get(off)?.get().copied()
    }

    /// The current probe table.
    #[inline]
    fn table(&self) -> &[AtomicU16] {
        let level = self.level.load(Ordering::Acquire);
        self.levels.get(level).and_then(OnceLock::get).map_or(&[], |t| t)
    }

    /// Probes `table` for `key`: `Ok(id)` when interned, `Err(slot)` with the empty slot ending
    /// the probe.
    #[inline]
    fn probe(&self, table: &[AtomicU16], key: &str) -> Result<u16, usize> {
        let mask = table.len().wrapping_sub(1);
        let mut i = (self.hasher.hash_one(key) as usize) & mask;
        // Tables are at most half full, so an empty slot always ends the probe.
        loop {
            match table.get(i).map(|s| s.load(Ordering::Acquire)) {
                None | Some(0) => return Err(i),
                Some(v) => {
                    if self.get(usize::from(v - 1)) == Some(key) {
                        return Ok(v - 1);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `key` if it is interned (lock-free).
    #[inline]
    pub(crate) fn lookup(&self, key: &str) -> Option<u16> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        self.probe(self.table(), key).ok()
    }

    /// The id of `key`, interning it if there is room; `None` when it must be stored inline.
    #[inline]
    pub(crate) fn intern(&self, key: &str) -> Option<u16> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        match self.probe(self.table(), key) {
            Ok(id) => Some(id),
            Err(_) => self.insert_slow(key),
        }
    }

    #[cold]
    fn insert_slow(&self, key: &str) -> Option<u16> {
        // A poisoned lock only means another insert panicked (out of memory); the table itself
        // is always consistent, so carry on.
        let _guard = self.insert_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut table = self.table();
        let mut slot = match self.probe(table, key) {
            Ok(id) => return Some(id),
            Err(slot) => slot,
        };
        let id = self.len.load(Ordering::Relaxed);
        if id >= MAX_KEYS {
            return None;
        }
        if 2 * (id + 1) > table.len() {
            table = self.grow(id);
            slot = self.probe(table, key).err()?;
        }
        let (k, off) = locate(id);
        let segment = self.segments[k].get_or_init(|| (0..FIRST_SEGMENT << k).map(|_| OnceLock::new()).collect());
        let leaked: &'static str = Box::leak(Box::from(key));
        if segment[off].set(leaked).is_err() {
            // Unreachable: ids are handed out once, under this lock.
            return None;
        }
        self.string_bytes.fetch_add(key.len(), Ordering::Relaxed);
        let id16 = u16::try_from(id).ok()?;
        self.len.store(id + 1, Ordering::Release);
        // Publish last: a reader that sees the slot also sees the string.
        table.get(slot)?.store(id16 + 1, Ordering::Release);
        Some(id16)
    }

    /// Replaces the current probe table by the next, larger one holding ids `0..len`. Called
    /// under the insert lock.
    #[cold]
    fn grow(&self, len: usize) -> &[AtomicU16] {
        let next = self.level.load(Ordering::Relaxed) + 1;
        let Some(&size) = LEVELS.get(next) else {
            return self.table();
        };
        let table = empty_table(size);
        for id in 0..len {
            if let (Some(key), Ok(id16)) = (self.get(id), u16::try_from(id))
                && let Err(slot) = self.probe(&table, key)
            {
                table[slot].store(id16 + 1, Ordering::Relaxed);
            }
        }
        // Filled before it is published (the `Release` below orders these stores).
        let _ = self.levels[next].set(table);
        self.level.store(next, Ordering::Release);
        self.table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_ids_contiguously() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let (k, off) = locate(MAX_KEYS - 1);
        assert!(k < SEGMENTS && off < FIRST_SEGMENT << k);
    }

    #[test]
    fn common_keys_get_their_index_as_id() {
        // `key_str` relies on this: seeded keys are distinct, short enough, and numbered in order.
        let t = interner();
        assert!(COMMON_KEYS.len() > 64, "ids 0..63 are the one-byte ones");
        for (i, key) in COMMON_KEYS.iter().enumerate() {
            assert_eq!(t.lookup(key), Some(i as u16), "{key}");
            assert_eq!(t.get(i), Some(*key));
            assert_eq!(key_str(i), Some(*key));
        }
        let id = t.intern("compact-object.test/key-str").unwrap();
        assert_eq!(key_str(usize::from(id)), Some("compact-object.test/key-str"));
        assert_eq!(key_str(MAX_KEYS + 1), None);
    }

    #[test]
    fn intern_is_idempotent_and_bounded_in_length() {
        let t = interner();
        let a = t.intern("compact-object.test/intern-idempotent").unwrap();
        assert_eq!(t.intern("compact-object.test/intern-idempotent"), Some(a));
        assert_eq!(t.lookup("compact-object.test/intern-idempotent"), Some(a));
        assert_eq!(t.get(usize::from(a)), Some("compact-object.test/intern-idempotent"));
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert_eq!(t.intern(&long), None);
        assert_eq!(t.lookup(&long), None);
        assert_eq!(t.lookup("compact-object.test/never-interned"), None);
        assert!(interner_stats().keys >= COMMON_KEYS.len());
    }

    #[test]
    fn concurrent_interning_agrees() {
        // Enough keys to force at least one probe-table replacement while threads race.
        let keys: Vec<String> = (0..700).map(|i| format!("compact-object.test/c{i}")).collect();
        let ids: Vec<Vec<u16>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..4).map(|_| s.spawn(|| keys.iter().map(|k| interner().intern(k).unwrap()).collect())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for other in &ids[1..] {
            assert_eq!(other, &ids[0]);
        }
        for (k, id) in keys.iter().zip(&ids[0]) {
            assert_eq!(interner().get(usize::from(*id)), Some(k.as_str()));
            assert_eq!(interner().lookup(k), Some(*id));
        }
        assert!(interner().level.load(Ordering::Acquire) >= 1);
        for (i, key) in COMMON_KEYS.iter().enumerate() {
            assert_eq!(interner().lookup(key), Some(i as u16), "{key} after growth");
        }
    }
}
