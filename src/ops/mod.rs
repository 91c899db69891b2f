//! Operations: what an operator runs beside the chat rather than in it.
//!
//! - [`http`]: `/metrics`, behind the admin token.

pub mod http;
