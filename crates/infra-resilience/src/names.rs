//! Interned names: breakers and bulkheads are named once, and their errors carry the name as a
//! `&'static str` so that a rejection copies a pointer instead of touching a shared refcount.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};

/// The one `&'static str` for `name`. Each distinct name is stored once for the life of the
/// process (names are per dependency, so their number is small).
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_stored_once() {
        let a = intern("binance-rest");
        let b = intern(&String::from("binance-rest"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("kraken"), "kraken");
    }
}
