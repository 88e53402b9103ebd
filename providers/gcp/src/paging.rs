//! Google's list paging, read to the end: every list call the provider makes (Compute
//! Engine's `list`s and `instanceGroups.listInstances`, Secret Manager's `secrets.list`,
//! Cloud Monitoring's `timeSeries.list`) goes through [`every_page`], which asks for the
//! next page with the `nextPageToken` of the last until a page comes without one. A server
//! may return fewer items than a page holds, so a short page says nothing about the end.

use std::future::Future;

use serde_json::Value;

use crate::compute::ApiError;

/// The items under `field` (`items`, `secrets`, `timeSeries`) of every page of a list;
/// `page(token)` asks for one page, the first with `None`, each next one with the
/// previous page's `nextPageToken` (as the server wrote it; the caller encodes it).
///
/// ```
/// # use datum_provider_gcp::paging::every_page;
/// # use serde_json::json;
/// # tokio::runtime::Runtime::new().expect("a runtime").block_on(async {
/// let pages = |token: Option<String>| async move {
///     Ok(match token.as_deref() {
///         None => json!({ "items": [1, 2], "nextPageToken": "p2" }),
///         Some(_) => json!({ "items": [3] }),
///     })
/// };
/// assert_eq!(every_page("items", pages).await?, [json!(1), json!(2), json!(3)]);
/// # Ok::<(), datum_provider_gcp::compute::ApiError>(())
/// # });
/// ```
pub async fn every_page<F, Fut>(field: &str, mut page: F) -> Result<Vec<Value>, ApiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let reply = page(token.take()).await?;
        items.extend(reply[field].as_array().into_iter().flatten().cloned());
        match reply["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}
