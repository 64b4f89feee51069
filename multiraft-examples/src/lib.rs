//! Runnable multiraft programs: see the `demo` and `bench` binaries.
