//! The admission webhooks the operator serves (§8.3, §15) when started with the mutating or validating
//! webhook flag: pure decision functions ([`mutate_workload`], [`validate_stash_object`]) and the HTTPS
//! [`server`] that feeds them AdmissionReviews.

pub mod invoker_cache;
pub mod mutate_workload;
pub mod server;
pub mod tls;
pub mod validate_stash_objects;

pub use invoker_cache::InvokerCache;
pub use mutate_workload::{NamespaceInvokers, mutate_workload};
pub use server::{InvokerSource, WebhookState};
pub use validate_stash_objects::validate_stash_object;
