//! Replica: synchronous and asynchronous replicas with bounded queues.
