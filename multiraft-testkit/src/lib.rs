//! Test kit for multiraft.
