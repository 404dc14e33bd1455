//! Interned text: the audit's columns of few distinct values (event types,
//! states, actions, symbols, limit types, sources, files) as one copy per
//! process, compared by place before by content. Its own module because
//! both the rows ([`super::row`]) and the report's checks
//! ([`super::checks`]) are made of it.

/// Text from a column of few distinct values, interned for the process.
pub type Sym = &'static str;

/// The process's one copy of `s`. The interned columns hold event types,
/// states, actions, symbols, limit types, source names and file paths: a
/// table holds a few thousand of them however many rows it has, and the
/// audit runs in one-shot commands (`report`, `state`, a backfill's look at
/// the table), so what is interned is kept for the process.
pub fn intern(s: &str) -> Sym {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<Sym>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(s) {
        return s;
    }
    let s: Sym = Box::leak(s.into());
    seen.insert(s);
    s
}

/// Whether two interned texts are one: the same place nearly always (one
/// copy per process), else compared as text (a `Sym` made by hand).
pub fn same(a: Sym, b: Sym) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// Two interned texts in text order, without reading them when they are one.
pub fn sym_cmp(a: Sym, b: Sym) -> std::cmp::Ordering {
    if std::ptr::eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}
