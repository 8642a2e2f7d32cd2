/*
 * http.h - the daemon's HTTP layer over libmicrohttpd: a route table, whole-body requests with a
 * size limit, JSON replies and errors, bearer-token checks, multipart/form-data parsing, and
 * handlers that finish later on another thread (suspend / resume), so that a small thread pool
 * can hold many requests waiting for a batch.
 *
 * Every reply is complete and small; bodies are read whole into memory, never beyond the
 * configured limit (413 past it, before reading when Content-Length says so).
 */
#ifndef QE_HTTP_H
#define QE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "qe_util.h"

#define QE_HTTP_MAX_CAPTURES 2

typedef struct qe_http_server qe_http_server;
typedef struct qe_http_req qe_http_req;

/* A route handler. It must either reply (qe_http_reply_*) or call qe_http_defer() and arrange
 * for qe_http_resume() to be called later, from any thread. */
typedef void (*qe_http_handler)(void *app, qe_http_req *r);
/* Called on the connection's thread after qe_http_resume(); must reply. */
typedef void (*qe_http_resume_fn)(void *app, qe_http_req *r);
/* Observes every finished request (metrics): route name, first path capture, status, seconds. */
typedef void (*qe_http_observe_fn)(void *app, const char *route, const char *model, int status, double seconds);

typedef struct qe_http_route {
    const char *method;      /* "GET", "POST", "DELETE" */
    const char *pattern;     /* "/v1/models/{}/classify": each {} captures one path segment */
    const char *name;        /* metrics label, e.g. "classify" */
    qe_http_handler fn;
} qe_http_route;

typedef struct qe_http_opts {
    const char *listen;      /* "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one */
    int threads;             /* connection-handling threads (>= 1) */
    size_t max_body;         /* bytes; larger bodies get 413 */
    int max_connections;
    const qe_http_route *routes;
    int nroutes;
    qe_http_observe_fn observe;
    void *app;               /* passed to handlers */
} qe_http_opts;

struct qe_http_req {
    const char *method;
    char path[512];
    char *captures[QE_HTTP_MAX_CAPTURES];   /* decoded {} segments of the route, NUL-terminated */
    const uint8_t *body;
    size_t body_len;
    const qe_http_route *route;
    void *state;                            /* the handler's, freed with free_state on completion */
    void (*free_state)(void *state);
    /* private to http.c */
    struct qe_http_conn *conn;
};

/* Binds and starts serving; the bound address is written into bound ("127.0.0.1:8080"). */
int qe_http_start(const qe_http_opts *o, qe_http_server **out, char *bound, size_t boundlen, char *err);
/* Stops accepting new connections; requests in progress go on. */
void qe_http_quiesce(qe_http_server *s);
/* Closes every connection and frees the server. Every deferred request must have been resumed. */
void qe_http_stop(qe_http_server *s);

/* ---- inside a handler ---------------------------------------------------------------------- */

/* Request header / query argument, or NULL. */
const char *qe_http_header(qe_http_req *r, const char *name);
const char *qe_http_query(qe_http_req *r, const char *name);
/* 1 when the header "Authorization: Bearer <token>" carries token (constant-time compare). */
int qe_http_bearer_ok(qe_http_req *r, const char *token);

/* Replies; each takes ownership of nothing (bodies are copied). */
void qe_http_reply(qe_http_req *r, int status, const char *content_type, const void *body, size_t len);
/* Serialises (and releases) a JSON value. */
void qe_http_reply_json(qe_http_req *r, int status, json_t *v);
/* {"error": "..."} with the given status. */
void qe_http_reply_error(qe_http_req *r, int status, const char *fmt, ...) QE_PRINTF(3, 4);
/* Adds a header to the reply that follows (at most 4 per request). */
void qe_http_add_header(qe_http_req *r, const char *name, const char *value);

/* Marks the request as finishing later: after the handler returns the connection is suspended
 * until qe_http_resume(r), then fn runs on an HTTP thread and replies. */
void qe_http_defer(qe_http_req *r, qe_http_resume_fn fn);
/* Thread-safe; at most once per qe_http_defer(). */
void qe_http_resume(qe_http_req *r);

/* ---- bodies -------------------------------------------------------------------------------- */

/* The media type of Content-Type without parameters, lower-cased ("" if absent). */
void qe_http_media_type(qe_http_req *r, char *out, size_t outlen);
/* Finds the part named `field` of a multipart/form-data body (RFC 7578): its bytes and its own
 * media type ("" if the part has none). Returns -1 with a reason for a malformed body or a
 * missing field. The pointers point into r->body. */
int qe_http_multipart_field(qe_http_req *r, const char *field, const uint8_t **data, size_t *len, char *part_type,
                            size_t typelen, char *err);

#endif
