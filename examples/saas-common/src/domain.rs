//! The example app's own domain: each organization's projects and their deployments.
//!
//! It is demo data, held in memory (every organization starts with two projects); the
//! authentication and authorization data lives in the store. A real app keeps its domain in
//! its own tables, keyed by the organization id the principal carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use keystead::OrgId;
use serde::Serialize;
use uuid::Uuid;

/// A project of an organization.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// A deployment of a project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployment {
    /// Its id.
    pub id: Uuid,
    /// The project deployed.
    pub project_id: Uuid,
    /// `queued` when created.
    pub status: &'static str,
}

#[derive(Debug, Default)]
struct OrgData {
    projects: Vec<Project>,
    deployments: Vec<Deployment>,
}

/// Projects and deployments per organization.
#[derive(Debug, Clone, Default)]
pub struct Projects {
    inner: Arc<Mutex<HashMap<OrgId, OrgData>>>,
}

impl Projects {
    fn with_org<T>(&self, org: OrgId, f: impl FnOnce(&mut OrgData) -> T) -> T {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let data = map.entry(org).or_insert_with(|| OrgData {
            projects: ["Website", "API"]
                .into_iter()
                .map(|name| Project {
                    id: Uuid::now_v7(),
                    name: name.to_owned(),
                })
                .collect(),
            deployments: Vec::new(),
        });
        f(data)
    }

    /// The organization's projects.
    #[must_use]
    pub fn list(&self, org: OrgId) -> Vec<Project> {
        self.with_org(org, |d| d.projects.clone())
    }

    /// Queues a deployment of one of the organization's projects; `None` if the project is
    /// not theirs.
    #[must_use]
    pub fn deploy(&self, org: OrgId, project_id: Uuid) -> Option<Deployment> {
        self.with_org(org, |d| {
            d.projects.iter().any(|p| p.id == project_id).then(|| {
                let deployment = Deployment {
                    id: Uuid::now_v7(),
                    project_id,
                    status: "queued",
                };
                d.deployments.push(deployment.clone());
                deployment
            })
        })
    }

    /// The billing summary of the demo: the plan and the seats (members) in use.
    #[must_use]
    pub fn billing(seats: usize) -> serde_json::Value {
        serde_json::json!({ "plan": "team", "seats": seats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_only_for_own_projects() {
        let projects = Projects::default();
        let (a, b) = (OrgId::new(), OrgId::new());
        let mine = projects.list(a)[0].id;
        assert!(projects.deploy(a, mine).is_some());
        assert!(projects.deploy(b, mine).is_none());
        assert_eq!(projects.list(a), projects.list(a));
    }
}
