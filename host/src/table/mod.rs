//! Tables in Postgres: schemas, inserts, computed columns filled by
//! plugins, versions and snapshots.

pub mod copy;
pub mod expr;
pub mod input;
pub mod values;
