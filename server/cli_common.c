#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void qe_cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "quanteval %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int qe_cli_int(const char *cmd, const char *opt, const char *val, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        qe_cli_error(cmd, "%s expects an integer in %ld..%ld, got '%s'", opt, min, max, val);
        return -1;
    }
    *out = v;
    return 0;
}

void qe_cli_set_threads(int n)
{
    if (n > 0)
        omp_set_num_threads(n);
}

const char *qe_cli_samples_dir(void)
{
    /* An installed binary finds the samples next to its share directory; a build-tree binary
     * in the source tree. QUANTEVAL_SAMPLES overrides both. */
    const char *env = getenv("QUANTEVAL_SAMPLES");
    if (env && env[0])
        return env;
    static const char *candidates[] = {QE_SAMPLES_INSTALL_DIR, QE_SAMPLES_SOURCE_DIR};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return QE_SAMPLES_SOURCE_DIR;
}

const char *qe_cli_default_db(char *buf, size_t len)
{
    const char *env = getenv("QUANTEVAL_DB");
    if (env && env[0]) {
        snprintf(buf, len, "%s", env);
        return buf;
    }
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(buf, len, "%s/quanteval", xdg);
    else
        snprintf(buf, len, "%s/.local/share/quanteval", home && home[0] ? home : ".");
    /* mkdir -p: every prefix ending at a '/', then the directory itself. */
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, "/quanteval.db");
    return buf;
}

void qe_cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
