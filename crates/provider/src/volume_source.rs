//! The keys of a ConfigMap or Secret as bytes, the way a kubelet projects them into a
//! volume: a ConfigMap's `data` with `binaryData` over it, a Secret's `data` with
//! `stringData` over it. Providers that deliver configMap and secret volumes read them here;
//! the values are never logged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

/// Which kind of object a volume takes its files from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeSource {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl VolumeSource {
    /// `ConfigMap` or `Secret`, for messages.
    pub fn kind(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
        }
    }

    /// The object's keys and contents, or `None` when it does not exist.
    pub async fn read(
        self,
        kube: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
        Ok(match self {
            Self::Secret => Api::<Secret>::namespaced(kube.clone(), namespace)
                .get_opt(name)
                .await?
                .map(|s| {
                    let mut data: BTreeMap<String, Vec<u8>> = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    for (k, v) in s.string_data.unwrap_or_default() {
                        data.insert(k, v.into_bytes());
                    }
                    data
                }),
            Self::ConfigMap => Api::<ConfigMap>::namespaced(kube.clone(), namespace)
                .get_opt(name)
                .await?
                .map(|c| {
                    let mut data: BTreeMap<String, Vec<u8>> = c
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    for (k, v) in c.binary_data.unwrap_or_default() {
                        data.insert(k, v.0);
                    }
                    data
                }),
        })
    }
}
