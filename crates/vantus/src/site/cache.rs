//! The site's in-process cache of rendered pages, valid for one content generation.
//!
//! Entries carry the content generation they were rendered from and are stale as soon as the
//! generation moves on (content edited here, on another replica, or restored). A stale entry
//! is still served when re-rendering fails, and one request renders each key at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::http::caching::CachedPage;

/// Result of a cache lookup.
pub enum Lookup {
    Fresh(Arc<CachedPage>),
    /// Rendered from an older generation: re-render, but keep it to serve if that fails.
    Stale(Arc<CachedPage>),
    Miss,
}

/// Rendered pages keyed by path (with query), valid for one content generation.
#[derive(Debug)]
pub struct PageCache {
    generation: AtomicI64,
    entries: RwLock<HashMap<String, Arc<CachedPage>>>,
    max_entries: usize,
    /// One renderer per key at a time (request coalescing, like nginx's `proxy_cache_lock`):
    /// a burst of requests for a page that just went stale renders and compresses it once,
    /// not once per request.
    rendering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while rendering one key; see [`PageCache::render_turn`].
pub struct RenderTurn<'a> {
    cache: &'a PageCache,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Always `Some` until dropped; released first so the count below is exact.
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for RenderTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut rendering = self.cache.rendering_map();
        // The map's clone plus ours: nobody else waits for this key, so forget it. Clones are
        // only made under the map's lock, so the count cannot grow behind our back.
        if Arc::strong_count(&self.lock) == 2 {
            rendering.remove(&self.key);
        }
    }
}

impl PageCache {
    pub fn new(generation: i64, max_entries: usize) -> Self {
        Self {
            generation: AtomicI64::new(generation),
            entries: RwLock::new(HashMap::new()),
            max_entries,
            rendering: Mutex::new(HashMap::new()),
        }
    }

    fn rendering_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.rendering.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this key's turn to render. Callers look the key up again once it is their
    /// turn: whoever went first has usually filled the cache.
    pub async fn render_turn(&self, key: &str) -> RenderTurn<'_> {
        let lock = self
            .rendering_map()
            .entry(key.to_owned())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        RenderTurn {
            cache: self,
            key: key.to_owned(),
            lock,
            guard: Some(guard),
        }
    }

    /// Whether someone is rendering `key` right now (then a stale copy can be served meanwhile).
    pub fn is_rendering(&self, key: &str) -> bool {
        self.rendering_map()
            .get(key)
            .is_some_and(|lock| lock.try_lock().is_err())
    }

    /// The newest content generation this process knows of.
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a generation seen in the database; entries of older ones become stale.
    pub fn observe_generation(&self, generation: i64) -> bool {
        let previous = self.generation.fetch_max(generation, Ordering::AcqRel);
        previous < generation
    }

    pub fn lookup(&self, key: &str) -> Lookup {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some(page) if page.generation >= self.generation() => Lookup::Fresh(page.clone()),
            Some(page) => Lookup::Stale(page.clone()),
            None => Lookup::Miss,
        }
    }

    pub fn insert(&self, key: String, page: Arc<CachedPage>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            // Bounded memory: drop everything older than the current generation first,
            // and if that frees nothing, start over. Pages re-render in milliseconds.
            let current = self.generation();
            entries.retain(|_, p| p.generation >= current);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, page);
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::caching::CachePolicy;
    use axum::http::StatusCode;

    #[test]
    fn cache_entries_go_stale_with_the_generation_and_stay_bounded() {
        let cache = PageCache::new(1, 2);
        let page = |g| {
            Arc::new(CachedPage::new(
                g,
                StatusCode::OK,
                "text/plain",
                CachePolicy::Page,
                "x",
            ))
        };
        cache.insert("/".into(), page(1));
        assert!(matches!(cache.lookup("/"), Lookup::Fresh(_)));
        assert!(cache.observe_generation(2));
        assert!(!cache.observe_generation(1), "generations never go back");
        assert!(matches!(cache.lookup("/"), Lookup::Stale(_)));
        cache.insert("/a".into(), page(2));
        cache.insert("/b".into(), page(2));
        assert!(cache.len() <= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_renderer_per_key_at_a_time_and_the_turns_are_forgotten() {
        use std::sync::atomic::AtomicUsize;
        let cache = Arc::new(PageCache::new(1, 8));
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, inside, most) = (cache.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = cache.render_turn("/").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert!(cache.is_rendering("/"));
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "renders of one key overlapped"
        );
        assert!(!cache.is_rendering("/"));
        assert!(
            cache.rendering_map().is_empty(),
            "finished turns must not pile up"
        );
    }
}
