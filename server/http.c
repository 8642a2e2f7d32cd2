/*
 * http.c - routing, bodies, replies and deferred requests on libmicrohttpd (see http.h).
 *
 * libmicrohttpd calls the access handler several times per request: once when the headers are
 * in, once per chunk of body, and once more with no data when the body is complete. The body is
 * gathered into the connection's buffer and the route runs on that last call. A deferred route
 * leaves the connection suspended; after qe_http_resume() MHD calls the handler once more and
 * the resume function replies.
 */
#include "http.h"

#include <ctype.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define MAX_EXTRA_HEADERS 4
/* All request bodies buffered at once stay under this many times max_body, so that many
 * connections each sending a body just under the limit cannot exhaust memory. */
#define BODY_BUDGET_FACTOR 16

struct qe_http_server {
    struct MHD_Daemon *d;
    qe_http_opts o;
    atomic_size_t buffered;          /* bytes of body buffers allocated now */
};

typedef struct qe_http_conn {
    qe_http_server *srv;
    struct MHD_Connection *mc;
    qe_http_req req;
    uint8_t *body;
    size_t len, cap;
    int too_large, over_budget, replied, status;
    double t0;
    struct {
        char name[48], value[208];
    } hdr[MAX_EXTRA_HEADERS];
    int nhdr;
    /* Deferral: guarded by mu, because qe_http_resume() runs on another thread. */
    pthread_mutex_t mu;
    int deferred, suspended, ready;
    qe_http_resume_fn resume_fn;
} qe_http_conn;

/* ---- replies ------------------------------------------------------------------------------- */

void qe_http_add_header(qe_http_req *r, const char *name, const char *value)
{
    qe_http_conn *c = r->conn;
    if (c->nhdr >= MAX_EXTRA_HEADERS)
        return;
    snprintf(c->hdr[c->nhdr].name, sizeof c->hdr[0].name, "%s", name);
    snprintf(c->hdr[c->nhdr].value, sizeof c->hdr[0].value, "%s", value);
    c->nhdr++;
}

void qe_http_reply(qe_http_req *r, int status, const char *content_type, const void *body, size_t len)
{
    qe_http_conn *c = r->conn;
    if (c->replied)
        return;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < c->nhdr; i++)
        MHD_add_response_header(resp, c->hdr[i].name, c->hdr[i].value);
    MHD_queue_response(c->mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    c->replied = 1;
    c->status = status;
}

void qe_http_reply_json(qe_http_req *r, int status, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(v);
    if (!text) {
        static const char oom[] = "{\"error\": \"cannot format the reply\"}\n";
        qe_http_reply(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    size_t n = strlen(text);
    char *body = qe_malloc(n + 1);
    memcpy(body, text, n);
    body[n] = '\n';
    free(text);
    qe_http_reply(r, status, "application/json", body, n + 1);
    free(body);
}

void qe_http_reply_error(qe_http_req *r, int status, const char *fmt, ...)
{
    char msg[QE_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qe_http_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* ---- request accessors --------------------------------------------------------------------- */

const char *qe_http_header(qe_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn->mc, MHD_HEADER_KIND, name);
}

const char *qe_http_query(qe_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn->mc, MHD_GET_ARGUMENT_KIND, name);
}

int qe_http_bearer_ok(qe_http_req *r, const char *token)
{
    const char *h = qe_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    /* Compare every byte whatever the mismatch, so timing says nothing about the token. */
    size_t a = strlen(h), b = strlen(token);
    unsigned diff = a != b;
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)h[i] ^ (unsigned char)token[i < b ? i : 0];
    return b > 0 && diff == 0;
}

void qe_http_media_type(qe_http_req *r, char *out, size_t outlen)
{
    const char *ct = qe_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = 0;
    for (; ct && *ct == ' '; ct++)
        ;
    for (; ct && ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < outlen; n++)
        out[n] = (char)tolower((unsigned char)ct[n]);
    out[n] = 0;
}

/* ---- deferral ------------------------------------------------------------------------------ */

void qe_http_defer(qe_http_req *r, qe_http_resume_fn fn)
{
    qe_http_conn *c = r->conn;
    pthread_mutex_lock(&c->mu);
    c->deferred = 1;
    c->ready = 0;
    c->resume_fn = fn;
    pthread_mutex_unlock(&c->mu);
}

void qe_http_resume(qe_http_req *r)
{
    qe_http_conn *c = r->conn;
    pthread_mutex_lock(&c->mu);
    c->ready = 1;
    /* If the handler has not returned yet, it sees `ready` and replies without suspending. */
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->mc);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- routing ------------------------------------------------------------------------------- */

/* Matches path against pattern segment by segment; {} captures one non-empty segment. */
static int route_match(const char *pattern, const char *path, char *caps[QE_HTTP_MAX_CAPTURES])
{
    int ncap = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(u, "/");
            if (n == 0 || ncap == QE_HTTP_MAX_CAPTURES)
                return 0;
            if (caps) {
                caps[ncap] = qe_malloc(n + 1);
                memcpy(caps[ncap], u, n);
                caps[ncap][n] = 0;
            }
            ncap++;
            p += 2;
            u += n;
        } else if (*p++ != *u++) {
            return 0;
        }
    }
    return *p == 0 && *u == 0;
}

static void free_captures(qe_http_req *r)
{
    for (int i = 0; i < QE_HTTP_MAX_CAPTURES; i++) {
        free(r->captures[i]);
        r->captures[i] = NULL;
    }
}

static void dispatch(qe_http_conn *c)
{
    const qe_http_opts *o = &c->srv->o;
    qe_http_req *r = &c->req;
    char allow[64] = "";
    for (int i = 0; i < o->nroutes; i++) {
        const qe_http_route *rt = &o->routes[i];
        if (!route_match(rt->pattern, r->path, NULL))
            continue;
        if (strcmp(rt->method, r->method) == 0) {
            route_match(rt->pattern, r->path, r->captures);
            r->route = rt;
            rt->fn(o->app, r);
            return;
        }
        if (!strstr(allow, rt->method) && strlen(allow) + strlen(rt->method) + 3 < sizeof allow)
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", rt->method);
    }
    if (allow[0]) {
        qe_http_add_header(r, "Allow", allow);
        qe_http_reply_error(r, 405, "method %s not allowed on %s (allowed: %s)", r->method, r->path, allow);
    } else {
        qe_http_reply_error(r, 404, "no such endpoint: %s", r->path);
    }
}

/* Runs the resume function once the deferred work is done; otherwise suspends (or stays so). */
static void finish_deferred(qe_http_conn *c)
{
    pthread_mutex_lock(&c->mu);
    int ready = c->ready;
    if (!ready && !c->suspended) {
        MHD_suspend_connection(c->mc);
        c->suspended = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (ready) {
        c->deferred = 0;
        c->resume_fn(c->srv->o.app, &c->req);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    qe_http_server *s = cls;
    qe_http_conn *c = *con_cls;
    if (!c) {
        c = qe_calloc(1, sizeof *c);
        c->srv = s;
        c->mc = mc;
        c->t0 = qe_now();
        pthread_mutex_init(&c->mu, NULL);
        c->req.conn = c;
        c->req.method = method;
        snprintf(c->req.path, sizeof c->req.path, "%s", url);
        *con_cls = c;
        /* Refuse a declared oversized body before reading it. */
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            c->too_large = 1;
            qe_http_reply_error(&c->req, 413, "request body of %s bytes is over the limit of %zu", cl, s->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_large || c->replied)
            return MHD_YES;
        if (n > s->o.max_body - c->len) {
            c->too_large = 1;
            atomic_fetch_sub(&s->buffered, c->cap);
            free(c->body);
            c->body = NULL;
            c->len = c->cap = 0;
            return MHD_YES;
        }
        if (c->over_budget)
            return MHD_YES;
        if (c->len + n > c->cap) {
            size_t cap = c->cap ? c->cap : 16384;
            while (cap < c->len + n)
                cap *= 2;
            cap = cap < s->o.max_body ? cap : s->o.max_body;
            size_t was = atomic_fetch_add(&s->buffered, cap - c->cap);
            if (was + cap - c->cap > BODY_BUDGET_FACTOR * s->o.max_body) {
                atomic_fetch_sub(&s->buffered, cap - c->cap);
                c->over_budget = 1;
                return MHD_YES;
            }
            c->cap = cap;
            c->body = qe_realloc(c->body, c->cap);
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        return MHD_YES;
    }
    if (c->replied)
        return MHD_YES;
    if (c->deferred) {
        finish_deferred(c);
    } else if (c->too_large) {
        qe_http_reply_error(&c->req, 413, "request body over the limit of %zu bytes", s->o.max_body);
    } else if (c->over_budget) {
        qe_http_add_header(&c->req, "Retry-After", "1");
        qe_http_reply_error(&c->req, 503, "overloaded: too many large uploads at once, retry later");
    } else if (strlen(url) >= sizeof c->req.path) {
        qe_http_reply_error(&c->req, 404, "path too long");
    } else {
        c->req.body = c->body ? c->body : (const uint8_t *)"";
        c->req.body_len = c->len;
        dispatch(c);
        if (c->deferred)
            finish_deferred(c);
    }
    if (!c->replied && !c->deferred)
        qe_http_reply_error(&c->req, 500, "internal error: no reply");
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode why)
{
    qe_http_server *s = cls;
    qe_http_conn *c = *con_cls;
    if (!c)
        return;
    if (s->o.observe && c->replied)
        s->o.observe(s->o.app, c->req.route ? c->req.route->name : "other", c->req.captures[0], c->status,
                     qe_now() - c->t0);
    if (c->req.free_state)
        c->req.free_state(c->req.state);
    free_captures(&c->req);
    pthread_mutex_destroy(&c->mu);
    atomic_fetch_sub(&s->buffered, c->cap);
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- multipart ----------------------------------------------------------------------------- */

/* Value of parameter `name` in a header value like `form-data; name="image"`, unquoted. */
static int header_param(const char *h, size_t hlen, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i + nlen + 1 < hlen; i++) {
        if ((i > 0 && h[i - 1] != ';' && h[i - 1] != ' ') || strncasecmp(h + i, name, nlen) != 0 || h[i + nlen] != '=')
            continue;
        const char *v = h + i + nlen + 1, *end = h + hlen;
        size_t n = 0;
        if (v < end && *v == '"') {
            for (v++; v + n < end && v[n] != '"'; n++)
                ;
        } else {
            for (; v + n < end && v[n] != ';' && v[n] != ' ' && v[n] != '\r'; n++)
                ;
        }
        if (n + 1 > outlen)
            return -1;
        memcpy(out, v, n);
        out[n] = 0;
        return 0;
    }
    return -1;
}

/* The value of header `name` among the part headers [h, end), or NULL; its length in *len. */
static const char *part_header(const char *h, const char *end, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        h = eol + 2;
    }
    return NULL;
}

int qe_http_multipart_field(qe_http_req *r, const char *field, const uint8_t **data, size_t *len, char *part_type,
                            size_t typelen, char *err)
{
    const char *ct = qe_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    char boundary[80];
    if (!ct || header_param(ct, strlen(ct), "boundary", boundary, sizeof boundary) || !boundary[0])
        return qe_err(err, "multipart/form-data without a valid boundary parameter");
    char delim[96];
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const char *b = (const char *)r->body, *end = b + r->body_len;
    /* The first delimiter may open the body without its leading CRLF. */
    const char *p;
    if ((size_t)(end - b) >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0)
        p = b + dlen - 2;
    else if ((p = memmem(b, (size_t)(end - b), delim, dlen)) != NULL)
        p += dlen;
    else
        return qe_err(err, "multipart body without its boundary");
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        const char *hs = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!hs)
            break;
        hs += 2;
        const char *he = memmem(hs, (size_t)(end - hs), "\r\n\r\n", 4);
        if (!he)
            return qe_err(err, "malformed multipart part headers");
        const char *content = he + 4;
        const char *next = memmem(content, (size_t)(end - content), delim, dlen);
        if (!next)
            return qe_err(err, "multipart part not terminated by its boundary");
        size_t vlen;
        const char *disp = part_header(hs, he + 2, "Content-Disposition", &vlen);
        char name[128];
        if (disp && header_param(disp, vlen, "name", name, sizeof name) == 0 && strcmp(name, field) == 0) {
            const char *t = part_header(hs, he + 2, "Content-Type", &vlen);
            size_t n = 0;
            for (; t && n < vlen && t[n] != ';' && t[n] != ' ' && n + 1 < typelen; n++)
                part_type[n] = (char)tolower((unsigned char)t[n]);
            part_type[n] = 0;
            *data = (const uint8_t *)content;
            *len = (size_t)(next - content);
            return 0;
        }
        p = next + dlen;
    }
    return qe_err(err, "multipart body has no field '%s'", field);
}

/* ---- daemon -------------------------------------------------------------------------------- */

int qe_http_start(const qe_http_opts *o, qe_http_server **out, char *bound, size_t boundlen, char *err)
{
    char host[256];
    const char *colon = strrchr(o->listen, ':');
    if (!colon || colon == o->listen || (size_t)(colon - o->listen) >= sizeof host)
        return qe_err(err, "listen address '%s' is not HOST:PORT", o->listen);
    memcpy(host, o->listen, (size_t)(colon - o->listen));
    host[colon - o->listen] = 0;
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = 0;
        h++;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return qe_err(err, "bad port in listen address '%s'", o->listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int gai = getaddrinfo(h, NULL, &hints, &ai);
    if (gai)
        return qe_err(err, "listen address '%s': %s", o->listen, gai_strerror(gai));
    struct sockaddr_storage sa;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);

    qe_http_server *s = qe_calloc(1, sizeof *s);
    s->o = *o;
    atomic_init(&s->buffered, 0);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads > 1 ? o->threads : 1),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return qe_err(err, "cannot listen on %s (address in use or not allowed?)", o->listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bport = info ? info->port : (unsigned)port;
    snprintf(bound, boundlen, v6 ? "[%s]:%u" : "%s:%u", h, bport);
    *out = s;
    return 0;
}

void qe_http_quiesce(qe_http_server *s)
{
    if (!s)
        return;
    /* The listening socket is handed back to us to close. */
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void qe_http_stop(qe_http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
