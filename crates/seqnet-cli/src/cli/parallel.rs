//! `--execution-environment`: data-parallel training over MPI when seqnet is
//! built with the `mpi` feature and launched with `mpirun`/`srun`.

#[cfg(not(feature = "mpi"))]
use super::flag_error;
use super::Result;
use seqnet_train::{Communicator, ExecutionEnvironment};
use std::sync::Arc;

/// The ranks this process trains with (MPI initialized while it lives).
pub struct Parallel {
    comm: Option<Arc<dyn Communicator>>,
    #[cfg(feature = "mpi")]
    _session: Option<seqnet_train::distributed::mpi::MpiSession>,
}

/// Whether an MPI launcher (Open MPI's mpirun, a PMI/PMIx launcher such as
/// Slurm's srun) started this process.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

impl Parallel {
    /// Joins the MPI job for `"parallel"` (and for `"auto"` when an MPI
    /// launcher started the process); one process otherwise.
    pub fn start(env: ExecutionEnvironment) -> Result<Parallel> {
        let wanted = match env {
            ExecutionEnvironment::Parallel => true,
            ExecutionEnvironment::Auto => launched_by_mpi(),
            ExecutionEnvironment::Cpu => false,
        };
        if !wanted {
            return Ok(Parallel::single());
        }
        Self::start_mpi()
    }

    fn single() -> Parallel {
        Parallel {
            comm: None,
            #[cfg(feature = "mpi")]
            _session: None,
        }
    }

    #[cfg(feature = "mpi")]
    fn start_mpi() -> Result<Parallel> {
        let session = seqnet_train::distributed::mpi::MpiSession::start()?;
        Ok(Parallel {
            comm: Some(session.world()),
            _session: Some(session),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn start_mpi() -> Result<Parallel> {
        Err(flag_error(
            "--execution-environment",
            "this seqnet was built without MPI: build it with `cargo build --release --features mpi` (see docs/DISTRIBUTED.md) and launch it with mpirun",
        ))
    }

    /// The communicator to train over, when there are several ranks.
    pub fn communicator(&self) -> Option<Arc<dyn Communicator>> {
        self.comm.clone().filter(|c| c.size() > 1)
    }

    /// Whether this process prints and writes: rank 0, or a single process.
    pub fn is_root(&self) -> bool {
        self.comm.as_ref().is_none_or(|c| c.is_root())
    }
}
