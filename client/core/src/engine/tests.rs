//! Engine unit tests (scripted inputs, in-memory profile).
