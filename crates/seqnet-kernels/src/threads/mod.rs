//! The threads the kernels run on: one persistent helper thread next to the
//! caller's (`helper`), parts of a pass that never meet ([`share()`]), and
//! how many threads a pass gets ([`policy`]). (The recurrent passes split
//! rows, not units, so their threads never meet at a barrier before the
//! pass ends.)

mod helper;
pub mod policy;
pub mod share;

pub use policy::row_threads;
pub use share::share;
