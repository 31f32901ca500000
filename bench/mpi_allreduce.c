/* The video network's gradient traffic alone: 20 sums over all ranks of
 * 9,216,000 floats (36.9 MB, the LSTM input-weight gradient), as one
 * MPI_Allreduce (mode 0) or as MPI_Reduce_scatter_block + MPI_Allgather
 * (mode 1, what a sharded solver needs), optionally in pieces; prints the
 * wall and CPU time per sum on rank 0. See docs/DISTRIBUTED.md "Open MPI
 * settings".
 *
 *   mpicc -O2 -o /tmp/mpi_allreduce bench/mpi_allreduce.c
 *   mpirun -np 2 /tmp/mpi_allreduce 0                 # default algorithm
 *   mpirun -np 2 --mca coll_tuned_use_dynamic_rules 1 \
 *       --mca coll_tuned_allreduce_algorithm 4 /tmp/mpi_allreduce 0   # ring
 *   mpirun -np 2 /tmp/mpi_allreduce 1                 # reduce-scatter + all-gather
 *   mpirun -np 2 /tmp/mpi_allreduce 0 2097152         # in pieces of 8 MB
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const long n = 9216000;
    const int reps = 20;
    int mode = argc > 1 ? atoi(argv[1]) : 0;
    long piece = argc > 2 ? atol(argv[2]) : n;
    float *grad = malloc(n * sizeof(float)), *sum = malloc(n * sizeof(float));
    float *shard = malloc((piece / size + 1) * sizeof(float));
    for (long i = 0; i < n; i++) grad[i] = (float)(i % 1000) * 1e-3f;
    MPI_Barrier(MPI_COMM_WORLD);
    double wall = seconds(CLOCK_MONOTONIC), cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (int r = 0; r < reps; r++) {
        for (long at = 0; at < n; at += piece) {
            long m = n - at < piece ? n - at : piece;
            if (mode == 0) {
                MPI_Allreduce(grad + at, sum + at, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            } else {
                int b = (int)(m / size);
                MPI_Reduce_scatter_block(grad + at, shard, b, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                MPI_Allgather(shard, b, MPI_FLOAT, sum + at, b, MPI_FLOAT, MPI_COMM_WORLD);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    wall = (seconds(CLOCK_MONOTONIC) - wall) / reps;
    cpu = (seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu) / reps;
    if (rank == 0)
        printf("mode %d, pieces of %ld floats, %d ranks: %.2f ms wall, %.2f ms CPU per sum\n",
               mode, piece, size, wall * 1e3, cpu * 1e3);
    free(grad);
    free(sum);
    free(shard);
    MPI_Finalize();
    return 0;
}
