/* The video network's gradient traffic alone: 20 sums over all ranks of
 * 9,216,000 floats (36.9 MB, the LSTM input-weight gradient), as one
 * MPI_Allreduce (mode 0) or as MPI_Reduce_scatter_block + MPI_Allgather
 * (mode 1, what a sharded solver needs), or as seqnet's own ring
 * reduce-scatter + all-gather over MPI_Sendrecv with the sum in its own loop
 * (mode 2, `MpiWorld::reduce_scatter_f32`/`all_gather_f32`, what
 * `--shard-solver` uses), optionally in pieces; prints the wall and CPU
 * time per sum on rank 0. See docs/DISTRIBUTED.md "Open MPI settings".
 *
 *   mpicc -O2 -o /tmp/mpi_allreduce bench/mpi_allreduce.c
 *   mpirun -np 2 /tmp/mpi_allreduce 0                 # default algorithm
 *   mpirun -np 2 --mca coll_tuned_use_dynamic_rules 1 \
 *       --mca coll_tuned_allreduce_algorithm 4 /tmp/mpi_allreduce 0   # ring
 *   mpirun -np 2 /tmp/mpi_allreduce 1                 # reduce-scatter + all-gather
 *   mpirun -np 2 /tmp/mpi_allreduce 2                 # seqnet's ring over MPI_Sendrecv
 *   mpirun -np 2 /tmp/mpi_allreduce 0 2097152         # in pieces of 8 MB
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Rank r's shard of n elements among size ranks starts here (shard k is
 * start(k)..start(k+1), as seqnet's `shard_range`). */
static long start(long n, int k, int size) { return (long)((__int128)n * k / size); }

/* seqnet's ring: reduce-scatter (rank r ends with the sum of shard r in
 * grad), then all-gather of the shards into grad. */
static void ring(float *grad, long n, float *scratch, int rank, int size) {
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    for (int s = 0; s < size - 1; s++) {
        int ks = (rank + 2 * size - s - 1) % size, kr = (rank + 2 * size - s - 2) % size;
        long ss = start(n, ks, size), sr = start(n, kr, size);
        long ls = start(n, ks + 1, size) - ss, lr = start(n, kr + 1, size) - sr;
        MPI_Sendrecv(grad + ss, (int)ls, MPI_FLOAT, right, 0, scratch, (int)lr, MPI_FLOAT, left,
                     0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (long i = 0; i < lr; i++) grad[sr + i] += scratch[i];
    }
    for (int s = 0; s < size - 1; s++) {
        int ks = (rank + size - s) % size, kr = (rank + 2 * size - s - 1) % size;
        long ss = start(n, ks, size), sr = start(n, kr, size);
        long ls = start(n, ks + 1, size) - ss, lr = start(n, kr + 1, size) - sr;
        MPI_Sendrecv(grad + ss, (int)ls, MPI_FLOAT, right, 0, grad + sr, (int)lr, MPI_FLOAT, left,
                     0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

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
            } else if (mode == 2) {
                ring(grad + at, m, shard, rank, size);
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
