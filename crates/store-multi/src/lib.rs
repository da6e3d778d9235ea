//! Multi and MultiWriter: fan-out writes to several backends (All / BestEffort / Quorum).
