/*
 * provider.c - the dispatch half of provider.h and the instance list.
 */
#include "provider/provider.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

int prov_list_push(struct prov_list *l, const struct prov_instance *inst)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct prov_instance *items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL)
            return PROV_ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = *inst;
    return 0;
}

void prov_list_release(struct prov_list *l)
{
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

const char *prov_strerror(int code)
{
    switch (code) {
    case PROV_OK:
        return "ok";
    case PROV_ERETRY:
        return "transient error";
    case PROV_ECAPACITY:
        return "insufficient capacity";
    case PROV_EFATAL:
        return "fatal error";
    case PROV_ENOMEM:
        return "out of memory";
    case PROV_EINVAL:
        return "invalid argument";
    default:
        return "unknown error";
    }
}

int provider_launch(struct provider *p, int count, const char *token, struct prov_list *out)
{
    if (count <= 0 || token == NULL || strlen(token) >= PROV_ID_MAX)
        return provider__fail(p, PROV_EINVAL, "launch: bad count or token");
    if (count > provider_max_launch(p))
        return provider__fail(p, PROV_EINVAL, "%s launch: at most %d instances per call (asked %d)",
                              p->ops->name, provider_max_launch(p), count);
    p->errmsg[0] = '\0';
    return p->ops->launch(p, count, token, out);
}

int provider_terminate(struct provider *p, const char *const *ids, size_t n)
{
    p->errmsg[0] = '\0';
    if (n == 0)
        return 0;
    if (n > provider_max_terminate(p))
        return provider__fail(p, PROV_EINVAL,
                              "%s terminate: at most %zu instances per call (asked %zu)",
                              p->ops->name, provider_max_terminate(p), n);
    return p->ops->terminate(p, ids, n);
}

int provider_describe(struct provider *p, struct prov_list *out)
{
    p->errmsg[0] = '\0';
    return p->ops->describe(p, out);
}

int provider_detach(struct provider *p, const char *id)
{
    p->errmsg[0] = '\0';
    if (p->ops->detach == NULL)
        return provider__fail(p, PROV_EINVAL, "the %s provider cannot detach instances",
                              p->ops->name);
    return p->ops->detach(p, id);
}

int provider_attach(struct provider *p, const struct prov_instance *in, struct prov_instance *out)
{
    p->errmsg[0] = '\0';
    if (p->ops->attach == NULL)
        return provider__fail(p, PROV_EINVAL, "the %s provider cannot attach instances",
                              p->ops->name);
    return p->ops->attach(p, in, out);
}

int provider_max_launch(const struct provider *p)
{
    return p->ops->max_launch > 0 ? p->ops->max_launch : INT_MAX;
}

size_t provider_max_terminate(const struct provider *p)
{
    return p->ops->max_terminate > 0 ? p->ops->max_terminate : SIZE_MAX;
}

const char *provider_name(const struct provider *p)
{
    return p->ops->name;
}

const char *provider_errmsg(const struct provider *p)
{
    return p->errmsg;
}

void provider_free(struct provider *p)
{
    if (p != NULL)
        p->ops->destroy(p);
}

int provider__fail(struct provider *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    return code;
}
