//! Records: a RecordStore with TTL, compare-and-swap, watch and glob listing over any Backend.
