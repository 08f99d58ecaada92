//! The versions of one saga type that a replica can run, and the one new sagas start on.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::StepShape;
use crate::error::SagaError;
use crate::step::SagaDefinition;

/// What a saga's data must be: stored as JSON in the saga row, cloned per attempt.
pub trait SagaData: Serialize + DeserializeOwned + Send + Sync + Clone + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + Clone + 'static> SagaData for T {}

/// A definition of one version, with its steps' shapes.
pub(crate) struct Version<D> {
    pub definition: Arc<dyn SagaDefinition<Data = D>>,
    pub shapes: Vec<StepShape>,
    pub names: Vec<&'static str>,
}

/// The versions of one saga type this replica runs. It claims only sagas of these versions (a saga
/// that started on a version it does not know waits for a replica that does), and starts new
/// sagas on [`SagaVersions::start_on`] (the newest by default).
pub struct SagaVersions<D> {
    saga_type: &'static str,
    by_version: BTreeMap<u32, Version<D>>,
    start: u32,
}

impl<D> std::fmt::Debug for SagaVersions<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaVersions")
            .field("saga_type", &self.saga_type)
            .field("versions", &self.by_version.keys().collect::<Vec<_>>())
            .field("start", &self.start)
            .finish()
    }
}

impl<D: SagaData> SagaVersions<D> {
    /// The versions given (at least one, all of the same type, each version once, each with at
    /// least one step); new sagas start on the newest.
    pub fn new(
        definitions: Vec<Arc<dyn SagaDefinition<Data = D>>>,
    ) -> Result<SagaVersions<D>, SagaError> {
        let first = definitions
            .first()
            .ok_or_else(|| SagaError::Definition("no saga definition given".into()))?;
        let saga_type = first.saga_type();
        let mut by_version = BTreeMap::new();
        for definition in definitions {
            let version = definition.version();
            if definition.saga_type() != saga_type {
                return Err(SagaError::Definition(format!(
                    "versions of one engine must share a type: {saga_type} and {}",
                    definition.saga_type()
                )));
            }
            if version == 0 || definition.steps().is_empty() {
                return Err(SagaError::Definition(format!(
                    "{saga_type} v{version}: versions start at 1 and have at least one step"
                )));
            }
            let shapes = definition.steps().iter().map(|s| s.shape()).collect();
            let names = definition.steps().iter().map(|s| s.name()).collect();
            let entry = Version {
                definition,
                shapes,
                names,
            };
            if by_version.insert(version, entry).is_some() {
                return Err(SagaError::Definition(format!(
                    "{saga_type} v{version} given twice"
                )));
            }
        }
        let start = by_version.keys().next_back().copied().unwrap_or(1);
        Ok(SagaVersions {
            saga_type,
            by_version,
            start,
        })
    }

    /// New sagas start on `version` instead of the newest: during a rolling deploy, replicas that
    /// know a new version keep starting the old one until every replica knows the new one.
    pub fn start_on(mut self, version: u32) -> Result<SagaVersions<D>, SagaError> {
        if !self.by_version.contains_key(&version) {
            return Err(SagaError::Definition(format!(
                "{} cannot start on v{version}: this build knows {:?}",
                self.saga_type,
                self.known()
            )));
        }
        self.start = version;
        Ok(self)
    }

    /// The saga type.
    pub fn saga_type(&self) -> &'static str {
        self.saga_type
    }

    /// The versions this replica runs, oldest first.
    pub fn known(&self) -> Vec<u32> {
        self.by_version.keys().copied().collect()
    }

    /// The version new sagas start on.
    pub fn starting_version(&self) -> u32 {
        self.start
    }

    pub(crate) fn get(&self, version: u32) -> Option<&Version<D>> {
        self.by_version.get(&version)
    }

    pub(crate) fn starting(&self) -> Option<&Version<D>> {
        self.by_version.get(&self.start)
    }
}
