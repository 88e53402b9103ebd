//! Instance templates: every Instance of one WorkloadDeployment revision in one zone is
//! inserted from the same template `datum-t-<hash>`, named from a hash of the namespace,
//! zone and the template's properties (machine type, disks, metadata with `user-data`,
//! `ssh-keys` and the `datum-volumes` references, NICs without addresses, service
//! account). The same inputs always give the same name, so a retried insert adopts the
//! template (`409`), and a changed template makes a new one. Per-instance fields — name,
//! labels, network tag, the IPAM-allocated `networkIP` — override the template in the
//! `instances.insert?sourceInstanceTemplate=` request.
//!
//! Instances record their template in the label `datum-template`. After an Instance is
//! deleted or moved to another template, [`Compute::collect_templates`] deletes every
//! template of that namespace and zone no instance there names, with the Secret Manager
//! secrets of its volumes. Compute Engine itself would let a template go while instances
//! made from it run (only managed instance groups hold templates), so this bookkeeping is
//! the provider's.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::compute::{ApiError, Compute, spec_hash};

/// Prefix of every template the provider makes.
pub const PREFIX: &str = "datum-t-";

/// The instance label naming an instance's template.
pub const LABEL: &str = "datum-template";

/// The description of the templates of `namespace` in `zone`.
pub fn description(namespace: &str, zone: &str) -> String {
    format!("datum:{namespace}@{zone}")
}

/// The deterministic template name for these inputs.
pub fn name(namespace: &str, zone: &str, properties: &Value) -> String {
    let hash = spec_hash(&json!([namespace, zone, properties]));
    format!("{PREFIX}{hash}")
}

impl Compute {
    /// Inserts template `name` (adopting an existing one); returns its partial URL for
    /// `sourceInstanceTemplate`.
    pub async fn ensure_template(
        &self,
        project: &str,
        name: &str,
        namespace: &str,
        zone: &str,
        properties: &Value,
    ) -> Result<String, ApiError> {
        let body = json!({
            "name": name,
            "description": description(namespace, zone),
            "properties": properties,
        });
        self.insert(
            &format!("projects/{project}/global/instanceTemplates"),
            &body,
        )
        .await?;
        Ok(format!(
            "projects/{project}/global/instanceTemplates/{name}"
        ))
    }

    /// Deletes the templates of `namespace` in `zone` that no instance of the zone names in
    /// its `datum-template` label, and their volumes' secrets (secrets first, so a crash
    /// leaves a template to find next time rather than orphaned secrets).
    pub async fn collect_templates(
        &self,
        project: &str,
        zone: &str,
        namespace: &str,
    ) -> Result<(), ApiError> {
        let wanted = description(namespace, zone);
        let templates = self
            .list(&format!("projects/{project}/global/instanceTemplates"))
            .await?;
        let candidates: Vec<String> = templates
            .iter()
            .filter(|t| t["description"] == wanted.as_str())
            .filter_map(|t| t["name"].as_str())
            .filter(|n| n.starts_with(PREFIX))
            .map(str::to_owned)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let used: BTreeSet<String> = self
            .list(&format!("projects/{project}/zones/{zone}/instances"))
            .await?
            .iter()
            .filter_map(|i| i["labels"][LABEL].as_str().map(str::to_owned))
            .collect();
        for template in candidates.iter().filter(|t| !used.contains(*t)) {
            for secret in self.secrets_labelled(project, LABEL, template).await? {
                self.delete_secret(project, &secret).await?;
            }
            Compute::delete(
                self,
                &format!("projects/{project}/global/instanceTemplates/{template}"),
            )
            .await?;
            tracing::info!(
                project,
                template,
                "deleted an instance template no instance uses"
            );
        }
        Ok(())
    }
}
