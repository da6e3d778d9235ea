//! FsStore: a durable, atomic, confined local-filesystem Backend with cross-process CAS.
