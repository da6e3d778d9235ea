//! CloudStore: S3, GCS and Azure through the object_store crate, as a store Backend.
