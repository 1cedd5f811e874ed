//! Stage and counter names, interned once per process.
//!
//! A static name (`scope!`, `counter!`, `#[profile]`) caches its id in a
//! per-callsite atomic, so after the first call it costs one relaxed load.
//! A dynamic name (`stage(&str)`) is looked up in a per-thread cache first,
//! and only reaches the global table (a lock) the first time a thread sees it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use foldhash::{HashMap, HashMapExt};

use crate::alloc;

/// The id of the name every frame carries.
pub(crate) const FRAME_NAME: u32 = 0;

struct NameTable {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

static NAMES: LazyLock<Mutex<NameTable>> = LazyLock::new(|| {
    let frame: Arc<str> = Arc::from("frame");
    Mutex::new(NameTable { names: vec![frame.clone()], ids: HashMap::from_iter([(frame, FRAME_NAME)]) })
});

thread_local! {
    /// This thread's cache of dynamic stage names.
    static DYNAMIC_NAMES: RefCell<HashMap<Box<str>, u32>> = RefCell::new(HashMap::new());
}

/// The id of a dynamic name, through this thread's cache.
pub(crate) fn dynamic_name(name: &str) -> u32 {
    DYNAMIC_NAMES
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(&id) = cache.get(name) {
                return id;
            }
            alloc::untracked(|| {
                let id = intern(name);
                cache.insert(name.into(), id);
                id
            })
        })
        .unwrap_or_else(|_| alloc::untracked(|| intern(name)))
}

/// Holds the name table's lock (across a `fork`, see [`crate::foreign::before_fork`]).
pub(crate) fn hold_table() -> Box<dyn std::any::Any> {
    Box::new(NAMES.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The id of `name`, added to the table on first sight.
pub(crate) fn intern(name: &str) -> u32 {
    let mut t = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&id) = t.ids.get(name) {
        return id;
    }
    let id = t.names.len() as u32;
    let name: Arc<str> = Arc::from(name);
    t.names.push(name.clone());
    t.ids.insert(name, id);
    id
}

/// The name of `id` ("?" if unknown).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn name(id: u32) -> Arc<str> {
    let t = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    t.names.get(id as usize).cloned().unwrap_or_else(|| Arc::from("?"))
}

/// Names with ids `from..`, for writing out.
pub(crate) fn names_from(from: usize) -> Vec<Arc<str>> {
    let t = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    t.names.get(from..).map(<[Arc<str>]>::to_vec).unwrap_or_default()
}

/// A static name with its id cached after first use.
#[doc(hidden)]
pub struct Callsite {
    name: &'static str,
    /// Id + 1; 0 until resolved.
    id: AtomicU32,
}

impl Callsite {
    pub const fn new(name: &'static str) -> Self {
        Callsite { name, id: AtomicU32::new(0) }
    }

    #[inline(always)]
    pub fn id(&self) -> u32 {
        match self.id.load(Relaxed) {
            0 => self.resolve(),
            v => v - 1,
        }
    }

    #[cold]
    fn resolve(&self) -> u32 {
        let id = crate::alloc::untracked(|| intern(self.name));
        self.id.store(id + 1, Relaxed);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_callsites_agree() {
        let a = intern("names-test-a");
        assert_eq!(intern("names-test-a"), a);
        static CS: Callsite = Callsite::new("names-test-a");
        assert_eq!(CS.id(), a);
        assert_eq!(CS.id(), a);
        assert_eq!(&*names_from(a as usize)[0], "names-test-a");
        assert_eq!(&*names_from(0)[0], "frame");
    }
}
