/*
 * qtest.h - the minimal test harness of the test programs in tests/.
 *
 * Each test program is one executable registered with ctest. CHECK records a failure and
 * continues; REQUIRE stops the current test function. qtest_done() prints a summary and
 * returns the process exit status. Paths: qtest_shared("golden/...") resolves against the
 * shared/ folder given by the QE_SHARED environment variable; qtest_build("models/...")
 * against the build tree (QE_BUILD). qtest_quick() tells a heavy test to check a subset.
 */
#ifndef QTEST_H
#define QTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int qtest_failures;
static int qtest_checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        qtest_checks++;                                                              \
        if (!(cond)) {                                                               \
            qtest_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        qtest_checks++;                                                              \
        if (!(cond)) {                                                               \
            qtest_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        qtest_checks++;                                                                \
        if (!(cond)) {                                                                 \
            qtest_failures++;                                                          \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            return;                                                                    \
        }                                                                              \
    } while (0)

static inline const char *qtest_path(const char *envvar, const char *rel)
{
    static char buf[8][4096];
    static int slot;
    const char *root = getenv(envvar);
    if (!root) {
        fprintf(stderr, "qtest: %s is not set (run the tests through ctest)\n", envvar);
        exit(2);
    }
    char *b = buf[slot++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", root, rel);
    return b;
}
#define qtest_shared(rel) qtest_path("QE_SHARED", rel)
#define qtest_build(rel) qtest_path("QE_BUILD", rel)

/* The sanitizer run sets QE_TEST_QUICK=1: heavy tests then cover a representative subset (the
 * Release run covers everything). */
static inline int qtest_quick(void)
{
    const char *q = getenv("QE_TEST_QUICK");
    return q && q[0] && q[0] != '0';
}

static inline int qtest_done(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, qtest_checks, qtest_failures);
    return qtest_failures ? 1 : 0;
}

#endif
