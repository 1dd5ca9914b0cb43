//! Integration tests for the portico binary.
