//! The threads the kernels run on: one persistent helper thread next to the
//! caller's (`helper`), parts of a pass that never meet ([`share()`]), teams
//! that meet at a barrier every step ([`team()`]), and how many threads a pass
//! gets ([`policy`]).

mod helper;
pub mod policy;
pub mod share;
pub mod team;

pub use policy::{row_threads, ThreadPolicy};
pub use share::share;
pub use team::{team, SpinBarrier, TeamReport};
