//! Everything that makes a queue a first-class Redis value: RDB, AOF rewrite, digest, memory, copy, free.
pub mod aof;
pub mod digest;
pub mod encode;
pub mod rdb;
pub mod type_methods;
