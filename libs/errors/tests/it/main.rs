//! Integration tests of the error library: axum rejections as problem+json, sqlx errors from a real database.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod rejections;
mod sql;
mod sql_loss;
