//! Tropa client library (work in progress).
