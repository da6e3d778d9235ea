//! Cross-crate integration tests live in `tests/tests/`; the quickstart example in
//! `tests/examples/`. This library is intentionally empty.
