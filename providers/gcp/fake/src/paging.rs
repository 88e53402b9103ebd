//! List paging, for every list method the fake serves, as Google documents each API's:
//!
//! | lists | page size | bad page size |
//! |---|---|---|
//! | Compute Engine: the collection `list`s and `instanceGroups.listInstances` | `maxResults` 0–500; 500 when absent or 0 | `400 invalid` |
//! | Secret Manager `projects.secrets.list` | `pageSize`; absent, 0 or above 25000 is 25000 | negative or not a number: `400 INVALID_ARGUMENT` |
//! | Cloud Monitoring `projects.timeSeries.list` | `pageSize`; absent, 0 or above 100000 is 100000 | negative or not a number: `400 INVALID_ARGUMENT` |
//!
//! Everywhere: `pageToken` must be a token an earlier page of the same list returned (one
//! this fake did not issue for that list, garbled or another list's, is `400` in the API's
//! error format); `nextPageToken` is in the reply only while items remain after the page.
//!
//! Items come in name order (a key per item), so pages are deterministic. A token is the
//! last key of its page sealed with a digest of the list it belongs to: nothing to
//! remember, and an item inserted or deleted between pages moves nothing already returned.
//!
//! Each API has a test hook that makes pages smaller than asked (the APIs may return fewer
//! items than a page holds), so a client's paging loop runs over a handful of items even
//! though it asks for full pages: [`Compute::set_page_size`],
//! [`SecretManager::set_page_size`](crate::SecretManager::set_page_size) and
//! [`Monitoring::set_page_size`](crate::Monitoring::set_page_size).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::compute::{Compute, Reply};
use crate::errors;

/// The most items a Compute Engine page holds, and its page size when `maxResults` is
/// absent or 0.
pub const MAX_RESULTS: usize = 500;

/// One page of a list: its items and, when more remain, the token of the next page.
#[derive(Debug, PartialEq)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub next_page_token: Option<String>,
}

impl Page {
    /// `reply` with this page written in as Google's JSON carries a page: the items under
    /// `field`, left out when there are none (proto3 JSON omits empty lists; a reply that
    /// must show an empty list already holds one), and `nextPageToken` while more remain.
    pub(crate) fn into_reply(self, mut reply: Value, field: &str) -> Value {
        if !self.items.is_empty() {
            reply[field] = Value::Array(self.items);
        }
        if let Some(token) = self.next_page_token {
            reply["nextPageToken"] = Value::String(token);
        }
        reply
    }
}

/// Which page of which list a request asks for.
#[derive(Debug)]
pub(crate) struct Cursor {
    list: String,
    size: usize,
    /// The last key of the page before, from the request's `pageToken`.
    after: Option<String>,
}

impl Cursor {
    /// The cursor of `query`'s `pageToken` on `list` (any text naming the list: its path
    /// and whatever else a token must not be carried across, such as a filter), for pages
    /// of `size` (at least 1); `Err` holds a token this fake did not issue for `list`.
    fn new(list: &str, size: usize, query: &HashMap<String, String>) -> Result<Self, String> {
        let after = match query.get("pageToken").filter(|t| !t.is_empty()) {
            Some(token) => Some(open(list, token).ok_or_else(|| token.clone())?),
            None => None,
        };
        Ok(Self {
            list: list.to_owned(),
            size: size.max(1),
            after,
        })
    }

    /// The page of `items` (key → item) this cursor points at.
    pub(crate) fn page(&self, items: impl IntoIterator<Item = (String, Value)>) -> Page {
        let mut items: Vec<(String, Value)> = items
            .into_iter()
            .filter(|(key, _)| self.after.as_ref().is_none_or(|a| key > a))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let next_page_token =
            (items.len() > self.size).then(|| seal(&self.list, &items[self.size - 1].0));
        items.truncate(self.size);
        Page {
            items: items.into_iter().map(|(_, item)| item).collect(),
            next_page_token,
        }
    }
}

impl Compute {
    /// Test hook: every list page holds at most `size` items (at least 1), whatever
    /// `maxResults` asks; `None` restores Compute Engine's pages of `maxResults`.
    pub fn set_page_size(&mut self, size: Option<usize>) {
        self.page_size = size.map(|s| s.max(1));
    }

    /// The page of `items` (name → item) of the list `list` (its path) that `query`'s
    /// `maxResults` and `pageToken` ask for.
    pub(crate) fn page(
        &self,
        list: &str,
        items: impl IntoIterator<Item = (String, Value)>,
        query: &HashMap<String, String>,
    ) -> Result<Page, Reply> {
        let size = max_results(query)?.min(self.page_size.unwrap_or(MAX_RESULTS));
        let cursor = Cursor::new(list, size, query).map_err(|token| {
            errors::invalid(&format!(
                "Invalid value for field 'pageToken': '{token}'. Invalid page token."
            ))
        })?;
        Ok(cursor.page(items))
    }
}

/// The cursor of a `pageSize` list (Secret Manager, Cloud Monitoring): pages of `query`'s
/// `pageSize`, where absent, 0 and more than `max` mean `max`, and at most `cap` (the
/// API's test hook); errors are `google.rpc.Status` `400 INVALID_ARGUMENT`.
pub(crate) fn page_size_cursor(
    list: &str,
    query: &HashMap<String, String>,
    max: usize,
    cap: Option<usize>,
) -> Result<Cursor, Reply> {
    let size = match query.get("pageSize").map(|t| (t, t.parse::<i64>())) {
        None | Some((_, Ok(0))) => max,
        Some((_, Ok(n))) if n > 0 => usize::try_from(n).unwrap_or(max).min(max),
        Some((text, _)) => {
            return Err(errors::rpc(
                400,
                &format!(
                    "Invalid value at 'page_size' (TYPE_INT32), \"{text}\": must be 0 or more"
                ),
            ));
        }
    };
    Cursor::new(list, size.min(cap.unwrap_or(max)), query).map_err(|token| {
        errors::rpc(
            400,
            &format!("The page token \"{token}\" is invalid for this request."),
        )
    })
}

/// `maxResults` as Compute Engine reads it: 0–500, where absent and 0 mean 500.
fn max_results(query: &HashMap<String, String>) -> Result<usize, Reply> {
    let Some(text) = query.get("maxResults") else {
        return Ok(MAX_RESULTS);
    };
    match text.parse::<i64>() {
        Ok(0) => Ok(MAX_RESULTS),
        Ok(n) if n < 0 => Err(errors::invalid(&format!(
            "Invalid value for field 'maxResults': {n}. Must be greater than or equal to 0"
        ))),
        Ok(n) if n > MAX_RESULTS as i64 => Err(errors::invalid(&format!(
            "Invalid value for field 'maxResults': {n}. Must be less than or equal to {MAX_RESULTS}"
        ))),
        Ok(n) => Ok(usize::try_from(n).unwrap_or(MAX_RESULTS)),
        Err(_) => Err(errors::invalid(&format!(
            "Invalid value for field 'maxResults': '{text}'"
        ))),
    }
}

/// The token of the page that follows the item keyed `last` in `list`.
fn seal(list: &str, last: &str) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(last), digest(list, last))
}

/// The last key of the page before the one `token` asks for, if this fake issued
/// `token` for `list`.
fn open(list: &str, token: &str) -> Option<String> {
    let (last, check) = token.split_once('.')?;
    let last = String::from_utf8(URL_SAFE_NO_PAD.decode(last).ok()?).ok()?;
    (digest(list, &last) == check).then_some(last)
}

fn digest(list: &str, last: &str) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, format!("{list}\n{last}").as_bytes());
    sum.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::compute::Target;

    const NETWORKS: &str = "projects/p/global/networks";

    /// Compute with networks `n0`…`n{count-1}`, inserted in reverse so name order is not
    /// insertion order.
    fn with_networks(count: usize) -> Compute {
        let mut c = Compute::default();
        let t = Target::parse(NETWORKS).expect("parses");
        for i in (0..count).rev() {
            let reply = c.handle(
                "POST",
                &t,
                &HashMap::new(),
                Some(json!({ "name": format!("n{i}") })),
                None,
            );
            assert_eq!(reply.0, 200, "{}", reply.1);
        }
        c
    }

    fn get(c: &mut Compute, path: &str, query: &[(&str, &str)]) -> Reply {
        let query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let t = Target::parse(path).expect("parses");
        let method = if t.verb.is_some() { "POST" } else { "GET" };
        c.handle(method, &t, &query, Some(json!({})), None)
    }

    fn names(reply: &Reply) -> Vec<String> {
        assert_eq!(reply.0, 200, "{}", reply.1);
        let items = reply.1["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .map(|i| {
                i["name"]
                    .as_str()
                    .or_else(|| i["instance"].as_str()?.rsplit('/').next())
                    .expect("named")
                    .to_owned()
            })
            .collect()
    }

    fn token(reply: &Reply) -> Option<String> {
        reply.1["nextPageToken"].as_str().map(str::to_owned)
    }

    fn reason(reply: &Reply) -> String {
        reply.1["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn max_results_pages_in_name_order_with_a_token_only_while_items_remain() {
        let mut c = with_networks(5);
        let first = get(&mut c, NETWORKS, &[("maxResults", "2")]);
        assert_eq!(names(&first), ["n0", "n1"]);
        let t1 = token(&first).expect("more remain");
        let second = get(&mut c, NETWORKS, &[("maxResults", "2"), ("pageToken", &t1)]);
        assert_eq!(names(&second), ["n2", "n3"]);
        let t2 = token(&second).expect("more remain");
        let last = get(&mut c, NETWORKS, &[("maxResults", "2"), ("pageToken", &t2)]);
        assert_eq!(names(&last), ["n4"]);
        assert_eq!(token(&last), None, "{}", last.1);

        // A page that ends exactly at the last item has no token either.
        let exact = get(&mut c, NETWORKS, &[("maxResults", "5")]);
        assert_eq!(names(&exact).len(), 5);
        assert_eq!(token(&exact), None);

        // The same request gives the same page and token.
        let again = get(&mut c, NETWORKS, &[("maxResults", "2")]);
        assert_eq!(again.1, first.1);

        // A resource inserted between pages moves nothing already returned.
        let t = Target::parse(NETWORKS).expect("parses");
        let inserted = c.handle(
            "POST",
            &t,
            &HashMap::new(),
            Some(json!({ "name": "a-first" })),
            None,
        );
        assert_eq!(inserted.0, 200);
        let second = get(&mut c, NETWORKS, &[("maxResults", "2"), ("pageToken", &t1)]);
        assert_eq!(names(&second), ["n2", "n3"]);
    }

    #[test]
    fn absent_and_zero_max_results_mean_500_and_more_than_500_is_invalid() {
        let mut c = with_networks(501);
        for query in [&[][..], &[("maxResults", "0")], &[("maxResults", "500")]] {
            let page = get(&mut c, NETWORKS, query);
            assert_eq!(names(&page).len(), 500, "{query:?}");
            let rest = token(&page).expect("one remains");
            let last = get(&mut c, NETWORKS, &[("pageToken", &rest)]);
            assert_eq!(names(&last), ["n99"], "name order: n99 sorts last");
            assert_eq!(token(&last), None);
        }
        for bad in ["501", "1000", "-1", "two"] {
            let reply = get(&mut c, NETWORKS, &[("maxResults", bad)]);
            assert_eq!(reply.0, 400, "maxResults={bad}: {}", reply.1);
            assert_eq!(reason(&reply), "invalid");
            assert!(
                reply.1.to_string().contains("maxResults"),
                "the message names the field: {}",
                reply.1
            );
        }
    }

    #[test]
    fn a_token_the_fake_did_not_issue_for_this_list_is_invalid() {
        let mut c = with_networks(3);
        let first = get(&mut c, NETWORKS, &[("maxResults", "1")]);
        let issued = token(&first).expect("more remain");
        let mut garbled = issued.clone();
        garbled.insert(1, 'x');
        let other_list = "projects/p/global/firewalls";
        for bad in [
            "nope".to_owned(),
            "bjA.0123".to_owned(),
            garbled,
            issued.replace('.', ""),
        ] {
            let reply = get(&mut c, NETWORKS, &[("pageToken", &bad)]);
            assert_eq!(reply.0, 400, "pageToken={bad}: {}", reply.1);
            assert_eq!(reason(&reply), "invalid");
        }
        let foreign = get(&mut c, other_list, &[("pageToken", &issued)]);
        assert_eq!(foreign.0, 400, "another list's token: {}", foreign.1);
        let empty = get(&mut c, NETWORKS, &[("pageToken", "")]);
        assert_eq!(
            names(&empty),
            ["n0", "n1", "n2"],
            "an empty token is the first page"
        );
    }

    #[test]
    fn the_page_size_hook_caps_pages_whatever_max_results_asks() {
        let mut c = with_networks(5);
        c.set_page_size(Some(2));
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![("maxResults", "500")];
            if let Some(t) = &next {
                query.push(("pageToken", t));
            }
            let page = get(&mut c, NETWORKS, &query);
            pages += 1;
            let page_names = names(&page);
            assert!(page_names.len() <= 2, "{page_names:?}");
            seen.extend(page_names);
            next = token(&page);
            if next.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4"]);
        // A smaller maxResults still wins, and the hook never checks maxResults for it.
        assert_eq!(
            names(&get(&mut c, NETWORKS, &[("maxResults", "1")])),
            ["n0"]
        );
        assert_eq!(get(&mut c, NETWORKS, &[("maxResults", "501")]).0, 400);
        c.set_page_size(None);
        assert_eq!(names(&get(&mut c, NETWORKS, &[])).len(), 5);
    }

    #[test]
    fn page_size_lists_read_absent_zero_and_too_big_as_the_largest_page() {
        let items = || (0..11).map(|i| (format!("k{i:02}"), json!(i)));
        let query = |size: Option<&str>| {
            size.map(|s| ("pageSize".to_owned(), s.to_owned()))
                .into_iter()
                .collect::<HashMap<_, _>>()
        };
        for size in [None, Some("0"), Some("10"), Some("11"), Some("99999")] {
            let cursor = page_size_cursor("l", &query(size), 10, None).expect("valid");
            let page = cursor.page(items());
            assert_eq!(page.items.len(), 10, "pageSize={size:?}");
            assert!(page.next_page_token.is_some());
        }
        let page = page_size_cursor("l", &query(Some("3")), 10, None)
            .expect("valid")
            .page(items());
        assert_eq!(page.items, [json!(0), json!(1), json!(2)]);
        let capped = page_size_cursor("l", &query(Some("3")), 10, Some(2))
            .expect("valid")
            .page(items());
        assert_eq!(capped.items.len(), 2, "the hook caps below pageSize");
        for bad in ["-1", "two"] {
            let reply = page_size_cursor("l", &query(Some(bad)), 10, None).expect_err("invalid");
            assert_eq!(reply.0, 400);
            assert_eq!(reply.1["error"]["status"], "INVALID_ARGUMENT");
        }
    }

    #[test]
    fn list_instances_of_an_instance_group_pages_too() {
        let mut c = Compute::default();
        let zone = "projects/p/zones/z-a";
        let insert = |c: &mut Compute, collection: &str, body: Value| {
            let t = Target::parse(collection).expect("parses");
            let reply = c.handle("POST", &t, &HashMap::new(), Some(body), None);
            assert_eq!(reply.0, 200, "{}", reply.1);
        };
        insert(
            &mut c,
            &format!("{zone}/instanceGroups"),
            json!({ "name": "g" }),
        );
        let mut members = Vec::new();
        for i in 0..5 {
            insert(
                &mut c,
                &format!("{zone}/instances"),
                json!({ "name": format!("vm{i}") }),
            );
            members.push(json!({ "instance": format!("{zone}/instances/vm{i}") }));
        }
        let t = Target::parse(&format!("{zone}/instanceGroups/g/addInstances")).expect("parses");
        let added = c.handle(
            "POST",
            &t,
            &HashMap::new(),
            Some(json!({ "instances": members })),
            None,
        );
        assert_eq!(added.0, 200, "{}", added.1);

        let list = format!("{zone}/instanceGroups/g/listInstances");
        c.set_page_size(Some(2));
        let first = get(&mut c, &list, &[]);
        assert_eq!(names(&first), ["vm0", "vm1"]);
        let t1 = token(&first).expect("more remain");
        let second = get(&mut c, &list, &[("maxResults", "3"), ("pageToken", &t1)]);
        assert_eq!(names(&second), ["vm2", "vm3"]);
        let t2 = token(&second).expect("more remain");
        let last = get(&mut c, &list, &[("pageToken", &t2)]);
        assert_eq!(names(&last), ["vm4"]);
        assert_eq!(token(&last), None);
        assert_eq!(get(&mut c, &list, &[("maxResults", "501")]).0, 400);
        let foreign = get(&mut c, NETWORKS, &[("pageToken", &t1)]);
        assert_eq!(
            foreign.0, 400,
            "a listInstances token is not a networks token"
        );
    }
}
