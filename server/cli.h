/*
 * cli.h - the quanteval subcommands. Each returns the process exit status: 0 on success,
 * 1 when the work ran but failed (e.g. an unreadable image), 2 on a usage or input error.
 * Errors are printed as one line "quanteval <cmd>: <message>" on stderr.
 */
#ifndef QE_CLI_H
#define QE_CLI_H

#include <stdio.h>

int qe_cli_eval(int argc, char **argv);
int qe_cli_classify(int argc, char **argv);
int qe_cli_preprocess(int argc, char **argv);
int qe_cli_synth(int argc, char **argv);
int qe_cli_optimize(int argc, char **argv);  /* cli_optimize.c: BN fold + CLE */
int qe_cli_serve(int argc, char **argv);     /* serve.c: the HTTP daemon */

/* Shared helpers of the subcommands (cli_common.c). */
void qe_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a positive integer option value; prints an error and returns -1 when invalid. */
int qe_cli_int(const char *cmd, const char *opt, const char *val, long min, long max, long *out);
/* --threads: sets the OpenMP team size (0 = all cores). */
void qe_cli_set_threads(int n);
/* The bundled sample images (the default dataset). */
const char *qe_cli_samples_dir(void);
/* The run database shared by `eval` and `serve` when --db is not given: $QUANTEVAL_DB, else
 * $XDG_DATA_HOME/quanteval/quanteval.db or ~/.local/share/quanteval/quanteval.db (the
 * directory is created). Written into buf, which is returned. */
const char *qe_cli_default_db(char *buf, size_t len);
/* Writes s as a JSON string literal (with quotes). */
void qe_cli_json_str(FILE *f, const char *s);

#endif
