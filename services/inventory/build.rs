//! `sqlx::migrate!` embeds the migration files at compile time, but Cargo does not know that a
//! file *added* to the folder changes this crate: without this, a new migration is silently
//! missing from the binary until something else triggers a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/inventory");
}
