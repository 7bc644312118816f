//! [`Kv`] in memory: the same trees, keys and atomic batches as the
//! [`super::Vault`], without encryption or a disk, for simulations and unit
//! tests. "Durable" here means: survives the engine that wrote it being
//! dropped (a simulated crash), because the map outlives it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::{Batch, BatchOp, Entry, Kv, StoreError};

type Tree = BTreeMap<Vec<u8>, Zeroizing<Vec<u8>>>;

/// [`Kv`] in memory.
#[derive(Default)]
pub struct MemoryKv {
    trees: Mutex<BTreeMap<String, Tree>>,
}

impl std::fmt::Debug for MemoryKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKv(<redacted>)")
    }
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tree>> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Kv for MemoryKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.lock().get(tree).and_then(|t| t.get(key)).cloned())
    }

    fn iter(&self, tree: &str) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .lock()
            .get(tree)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut trees = self.lock();
        for op in batch.ops {
            match op {
                BatchOp::Put { tree, key, value } => {
                    trees.entry(tree).or_default().insert(key.to_vec(), value);
                }
                BatchOp::Remove { tree, key } => {
                    if let Some(t) = trees.get_mut(&tree) {
                        t.remove(key.as_slice());
                    }
                }
            }
        }
        Ok(())
    }
}
