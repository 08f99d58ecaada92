//! Integration tests of the error library: axum rejections as problem+json, sqlx errors from a real database.

mod rejections;
mod sql;
