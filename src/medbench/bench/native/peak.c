/* The CPU's fp32 FMA peak, measured: the clock each core actually runs at and its FMA lanes per cycle.
 *
 * Built by medbench.bench.peak with the system C compiler (-O2 -march=native -pthread) and run once per
 * benchmark session:   peak THREADS REPEATS [CPU ...]
 * One thread per core, all at once (the all-core clock is lower than a single core's boost), each pinned to
 * the given CPU on Linux. Every thread times, REPEATS times each:
 *   (a) a chain of dependent integer adds: one cycle each, so adds per second is cycles per second;
 *   (b) independent FMA accumulators in the widest vector the compiler may use (AVX-512, else AVX2/FMA,
 *       else NEON, else scalar), enough of them to cover the FMA latency on every FMA unit, so FMA lanes
 *       per second over cycles per second is lanes per cycle;
 *   (c) the add chain of (a) with FMAs beside it: the clock while vector code runs.
 * The best of the repeats is kept: on a shared machine the shortest time is the one nothing interrupted.
 * Prints one line of JSON.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef __linux__
#include <sched.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
#define VECTOR "avx512"
#define WIDTH 16
#define NACC 24 /* of 32 zmm registers: latency 4-6 cycles x 2-4 units */
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VECTOR "avx2"
#define WIDTH 8
#define NACC 12 /* of 16 ymm registers, two hold the multiplier and addend */
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float vsum(vec v) {
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_FMA)
#include <arm_neon.h>
#define VECTOR "neon"
#define WIDTH 4
#define NACC 24 /* of 32 q registers: up to 4 units x latency 4 */
typedef float32x4_t vec;
#define VSET(x) vdupq_n_f32(x)
#define VFMA(a, b, c) vfmaq_f32(c, a, b)
static float vsum(vec v) { return vaddvq_f32(v); }
#else
#define VECTOR "scalar"
#define WIDTH 1
#define NACC 12
typedef float vec;
#define VSET(x) (x)
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(FP_FAST_FMAF)
#include <math.h>
#define VFMA(a, b, c) fmaf(a, b, c)
#define SCALAR_FMA 1
#else
#define VFMA(a, b, c) ((a) * (b) + (c)) /* no FMA: a multiply and an add, still two flops */
#define SCALAR_FMA 0
#endif
static float vsum(vec v) { return v; }
#endif

#define ADDS_PER_STEP 100
#define FMA_STEPS 2000000L /* per repeat: NACC x WIDTH x 2M lane-FMAs, a few ms */
#define ADD_STEPS 100000L  /* per repeat: 10M dependent adds, a few ms */
#define MIXED_STEPS 400000L /* per repeat: 9.6M dependent adds among 4.8M FMAs */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* (a) The empty asm after each add makes the compiler keep every add (it cannot see through it to fold the
 * chain), and the asm on `one` hides its value so no add-immediate is emitted (some cores fuse those). */
#define ADD1 x += one; __asm__ volatile("" : "+r"(x));
#define ADD10 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1
static double add_chain_hz(long steps, uint64_t *sink) {
    uint64_t x = 0, one = 1;
    __asm__ volatile("" : "+r"(one));
    double t0 = now();
    for (long i = 0; i < steps; i++) {
        ADD10 ADD10 ADD10 ADD10 ADD10 ADD10 ADD10 ADD10 ADD10 ADD10
    }
    double t = now() - t0;
    *sink += x;
    return (double)steps * ADDS_PER_STEP / t;
}

/* (b) NACC independent chains acc = acc * m + a: fixed point a / (1 - m), so no overflow, no denormals.
 * Named variables, not an array: an array of accumulators is kept in memory and measures loads and stores. */
#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP24(X) REP12(X) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#if NACC == 24
#define EACH REP24
#else
#define EACH REP12
#endif
#if WIDTH == 1 && defined(__x86_64__)
#define KEEP(v) __asm__ volatile("" : "+x"(v)); /* scalar chains stay scalar, not auto-vectorised */
#elif WIDTH == 1 && defined(__aarch64__)
#define KEEP(v) __asm__ volatile("" : "+w"(v));
#else
#define KEEP(v)
#endif
#define DECLARE(k) vec acc##k = VSET((float)(k));
#define STEP(k) acc##k = VFMA(acc##k, m, a); KEEP(acc##k)
#define SUM(k) s += vsum(acc##k);
static double fma_lanes_per_s(long steps, float *sink) {
    vec m = VSET(0.9999f), a = VSET(1e-4f);
    EACH(DECLARE)
    double t0 = now();
    for (long i = 0; i < steps; i++) {
        EACH(STEP)
    }
    double t = now() - t0;
    float s = 0.0f;
    EACH(SUM)
    *sink += s;
    return (double)steps * NACC * WIDTH / t;
}

/* (c) The clock while the FMA units work: the add chain again, now with 12 independent FMAs beside every 24
 * adds. The adds stay the critical path (even one FMA unit needs only 12 cycles for 12 FMAs), so adds per
 * second is still cycles per second, but taken at the frequency the core runs vector code at (some cores
 * clock down under AVX-512). */
static double mixed_hz(long steps, uint64_t *isink, float *fsink) {
    uint64_t x = 0, one = 1;
    __asm__ volatile("" : "+r"(one));
    vec m = VSET(0.9999f), a = VSET(1e-4f);
    REP12(DECLARE)
    double t0 = now();
    for (long i = 0; i < steps; i++) {
        ADD10 ADD10 ADD1 ADD1 ADD1 ADD1
        REP12(STEP)
    }
    double t = now() - t0;
    float s = 0.0f;
    REP12(SUM)
    *isink += x;
    *fsink += s;
    return (double)steps * 24 / t;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int count, waiting, round;
} barrier_t;

static void barrier_wait(barrier_t *b) {
    pthread_mutex_lock(&b->lock);
    int round = b->round;
    if (++b->waiting == b->count) {
        b->waiting = 0;
        b->round++;
        pthread_cond_broadcast(&b->cond);
    } else {
        while (round == b->round) pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
}

typedef struct {
    int cpu, repeats, pinned;
    double hz, hz_fma, lanes_per_s;
    uint64_t isink;
    float fsink;
    barrier_t *barrier;
} job_t;

static void *worker(void *arg) {
    job_t *job = arg;
#ifdef __linux__
    if (job->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(job->cpu, &set);
        job->pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    }
#endif
    for (int r = 0; r < job->repeats; r++) {
        barrier_wait(job->barrier); /* every core busy at once: the all-core clock */
        double hz = add_chain_hz(ADD_STEPS, &job->isink);
        barrier_wait(job->barrier);
        double lanes = fma_lanes_per_s(FMA_STEPS, &job->fsink);
        double hz_fma = mixed_hz(MIXED_STEPS, &job->isink, &job->fsink);
        if (hz > job->hz) job->hz = hz;
        if (lanes > job->lanes_per_s) job->lanes_per_s = lanes;
        if (hz_fma > job->hz_fma) job->hz_fma = hz_fma;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS REPEATS [CPU ...]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), repeats = atoi(argv[2]);
    if (n < 1 || repeats < 1) {
        fprintf(stderr, "THREADS and REPEATS must be positive\n");
        return 2;
    }
    barrier_t barrier = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, n, 0, 0};
    job_t *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    if (!jobs || !threads) return 1;
    for (int i = 0; i < n; i++) {
        jobs[i].cpu = 3 + i < argc ? atoi(argv[3 + i]) : -1;
        jobs[i].repeats = repeats;
        jobs[i].barrier = &barrier;
        if (pthread_create(&threads[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed for thread %d\n", i);
            return 1;
        }
    }
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    int fma = 1;
#if WIDTH == 1
    fma = SCALAR_FMA;
#endif
    printf("{\"vector\": \"%s\", \"width\": %d, \"fma\": %s, \"accumulators\": %d, \"repeats\": %d, "
           "\"threads\": [", VECTOR, WIDTH, fma ? "true" : "false", NACC, repeats);
    for (int i = 0; i < n; i++) {
        printf("%s{\"cpu\": %d, \"pinned\": %s, \"hz\": %.6e, \"hz_fma\": %.6e, "
               "\"fma_lanes_per_s\": %.6e, \"sink\": %.3g}",
               i ? ", " : "", jobs[i].cpu, jobs[i].pinned ? "true" : "false", jobs[i].hz, jobs[i].hz_fma,
               jobs[i].lanes_per_s, (double)jobs[i].isink + jobs[i].fsink);
    }
    printf("]}\n");
    return 0;
}
