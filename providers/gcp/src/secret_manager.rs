//! The Secret Manager calls that deliver configMap and secret volumes: a secret per volume,
//! a new version only when the content changed (compared by reading the latest version
//! back, so no hash of a secret value is ever stored anywhere), `roles/secretmanager.secretAccessor`
//! for the service account the VMs run as, and deletion (already gone is success).
//!
//! Secret Manager answers `google.rpc.Status` errors (`{"error": {"code", "message",
//! "status"}}`), which [`ApiError`] reads like Compute Engine's. Payloads are never logged
//! nor put into an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::auth::form_encode;
use crate::compute::{ApiError, Compute};
use crate::paging::every_page;

/// The role that lets a VM read a secret's versions.
pub const ACCESSOR_ROLE: &str = "roles/secretmanager.secretAccessor";

impl Compute {
    fn secret_path(project: &str, id: &str) -> String {
        format!("projects/{project}/secrets/{id}")
    }

    async fn secrets_call(
        &self,
        method: http::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let project = path.split('/').nth(1).unwrap_or_default().to_owned();
        let url = format!(
            "{}/v1/{path}",
            self.settings.secret_manager_endpoint.trim_end_matches('/')
        );
        self.send(method, &url, &project, query, body).await
    }

    /// Makes secret `id` hold `payload` as its latest version, creating it with `labels`
    /// if needed. Returns whether a version was added.
    pub async fn put_secret(
        &self,
        project: &str,
        id: &str,
        payload: &[u8],
        labels: &Value,
    ) -> Result<bool, ApiError> {
        let path = Self::secret_path(project, id);
        let created = self
            .secrets_call(
                http::Method::POST,
                &format!("projects/{project}/secrets"),
                &[("secretId", id.to_owned())],
                Some(&json!({ "replication": { "automatic": {} }, "labels": labels })),
            )
            .await;
        let data = STANDARD.encode(payload);
        match created {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {
                match self
                    .secrets_call(
                        http::Method::GET,
                        &format!("{path}/versions/latest:access"),
                        &[],
                        None,
                    )
                    .await
                {
                    Ok(latest) if latest["payload"]["data"] == data.as_str() => return Ok(false),
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        self.secrets_call(
            http::Method::POST,
            &format!("{path}:addVersion"),
            &[],
            Some(&json!({ "payload": { "data": data } })),
        )
        .await?;
        Ok(true)
    }

    /// Lets `service_account` read secret `id`'s versions (the secret's whole policy: the
    /// provider owns the secret).
    pub async fn grant_accessor(
        &self,
        project: &str,
        id: &str,
        service_account: &str,
    ) -> Result<(), ApiError> {
        let policy = json!({ "policy": { "bindings": [{
            "role": ACCESSOR_ROLE,
            "members": [format!("serviceAccount:{service_account}")],
        }]}});
        self.secrets_call(
            http::Method::POST,
            &format!("{}:setIamPolicy", Self::secret_path(project, id)),
            &[],
            Some(&policy),
        )
        .await
        .map(|_| ())
    }

    /// The IDs of the secrets labelled `key=value`, page by page to the last
    /// ([`every_page`]; Secret Manager may page however many secrets it holds).
    pub async fn secrets_labelled(
        &self,
        project: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, ApiError> {
        let list = format!("projects/{project}/secrets");
        let secrets = every_page("secrets", |token| {
            let mut query = vec![("filter", format!("labels.{key}={value}"))];
            query.extend(token.map(|t| ("pageToken", form_encode(&t))));
            let list = &list;
            async move {
                self.secrets_call(http::Method::GET, list, &query, None)
                    .await
            }
        })
        .await?;
        Ok(secrets
            .iter()
            .filter_map(|s| s["name"].as_str()?.rsplit('/').next().map(str::to_owned))
            .collect())
    }

    /// Deletes secret `id` and its versions; already gone is success.
    pub async fn delete_secret(&self, project: &str, id: &str) -> Result<(), ApiError> {
        match self
            .secrets_call(
                http::Method::DELETE,
                &Self::secret_path(project, id),
                &[],
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The service account VMs of `project` run as by default (`projects.get`'s
    /// `defaultServiceAccount`).
    pub async fn default_service_account(&self, project: &str) -> Result<String, ApiError> {
        let reply = self
            .call(http::Method::GET, &format!("projects/{project}"), &[], None)
            .await?;
        reply["defaultServiceAccount"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::transport(format!("project {project} has no defaultServiceAccount"))
            })
    }
}
