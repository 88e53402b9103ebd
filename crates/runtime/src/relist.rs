//! Watch events → changed objects, with a (re-)list's objects held back until the list is
//! complete.
//!
//! `kube`'s `applied_objects()` yields each object of a list as it arrives, while the
//! reflector's store takes the list only once it is complete. A controller handed such an
//! object looks it up in the store, does not find it (an object created while the watch was
//! down, say) and drops the reconcile with `ObjectNotFound` — and nothing brings it back
//! until the object changes again (kube-rs issue 1167). [`applied_after_list`] yields the
//! listed objects when the list is done, after the store has them.
//!
//! ```no_run
//! # async fn demo(api: kube::Api<k8s_openapi::api::core::v1::ConfigMap>) {
//! use kube::runtime::{reflector, watcher, WatchStreamExt};
//! let (reader, writer) = reflector::store();
//! let objects = datum_runtime::relist::applied_after_list(
//!     watcher(api, watcher::Config::default()).default_backoff().reflect(writer),
//! );
//! # let _ = (reader, objects);
//! # }
//! ```

use futures::{Stream, StreamExt};
use kube::runtime::watcher;

/// The objects created or changed, from a stream of watch events (deletions are left out,
/// as `applied_objects()` leaves them).
pub fn applied_after_list<K, S>(events: S) -> impl Stream<Item = Result<K, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events
        .scan(Vec::new(), |listing: &mut Vec<K>, event| {
            let out: Vec<Result<K, watcher::Error>> = match event {
                Err(error) => vec![Err(error)],
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    Vec::new()
                }
                Ok(watcher::Event::InitApply(object)) => {
                    listing.push(object);
                    Vec::new()
                }
                Ok(watcher::Event::InitDone) => {
                    std::mem::take(listing).into_iter().map(Ok).collect()
                }
                Ok(watcher::Event::Apply(object)) => vec![Ok(object)],
                Ok(watcher::Event::Delete(_)) => Vec::new(),
            };
            std::future::ready(Some(futures::stream::iter(out)))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use watcher::Event;

    #[tokio::test]
    async fn listed_objects_come_when_the_list_is_done() {
        let events = futures::stream::iter(vec![
            Ok(Event::Init),
            Ok(Event::InitApply(1)),
            Ok(Event::InitApply(2)),
            Ok(Event::InitDone),
            Ok(Event::Apply(3)),
            Ok(Event::Delete(1)),
            Ok(Event::Init),
            Ok(Event::InitApply(4)),
        ]);
        let seen: Vec<i32> = applied_after_list(events)
            .filter_map(|r| std::future::ready(r.ok()))
            .collect()
            .await;
        assert_eq!(seen, vec![1, 2, 3], "a list still under way yields nothing");
    }
}
