//! MultiCommitter and Staged: commit sessions across stores with idempotency keys and crash recovery.
