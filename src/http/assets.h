/*
 * assets.h - the dashboard's files, compiled into the binary.
 *
 * The table is generated at build time from src/http/assets/ by
 * scripts/embed-assets.cmake into build/gen/http_assets.c, so asgd serves its
 * dashboard on machines without internet and without files beside it.
 */
#ifndef ASGD_HTTP_ASSETS_H
#define ASGD_HTTP_ASSETS_H

#include <stddef.h>

struct http_asset {
    const char *path;  /* "/index.html" */
    const char *ctype; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
};

extern const struct http_asset http_assets[];
extern const size_t http_assets_count;

#endif
