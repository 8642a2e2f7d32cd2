/*
 * api_web.c - the dashboard: web/index.html, web/app.js and web/style.css, compiled into the
 * binary (scripts/embed.cmake) so that the daemon serves them from anywhere, offline. The page
 * reads everything it shows from the JSON API.
 */
#include <string.h>

#include "api.h"

extern const unsigned char qe_embed_web_index_html[], qe_embed_web_app_js[], qe_embed_web_style_css[];
extern const unsigned long qe_embed_web_index_html_len, qe_embed_web_app_js_len, qe_embed_web_style_css_len;

typedef struct web_asset {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    const unsigned long *len;
} web_asset;

static const web_asset assets[] = {
    {"/", "text/html; charset=utf-8", qe_embed_web_index_html, &qe_embed_web_index_html_len},
    {"/app.js", "text/javascript; charset=utf-8", qe_embed_web_app_js, &qe_embed_web_app_js_len},
    {"/style.css", "text/css; charset=utf-8", qe_embed_web_style_css, &qe_embed_web_style_css_len},
};

/* GET /, /app.js, /style.css: 200 with the embedded file. Every reply is revalidated (no-cache),
 * so a new binary's dashboard shows at once; the page may load only this origin's scripts,
 * styles and data (CSP), and may not be framed. */
void qe_api_web(void *app, qe_http_req *r)
{
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        const web_asset *a = &assets[i];
        if (strcmp(r->path, a->path) != 0)
            continue;
        qe_http_add_header(r, "Cache-Control", "no-cache");
        qe_http_add_header(r, "X-Content-Type-Options", "nosniff");
        if (i == 0)
            qe_http_add_header(r, "Content-Security-Policy",
                               "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        qe_http_reply(r, 200, a->content_type, a->data, *a->len);
        return;
    }
    /* Only reachable through a route added without its asset. */
    qe_http_reply_error(r, 404, "no such page: %s", r->path);
}
