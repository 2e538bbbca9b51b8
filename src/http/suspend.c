/*
 * suspend.c - POST /api/v1/groups/{name}/suspend and /resume (AWS's
 * SuspendProcesses / ResumeProcesses): {"processes": ["Launch", ...]} adds to
 * or removes from the group's suspended_processes; no body, or no
 * "processes", means every process, as in AWS. The change goes through the
 * settings path PATCH uses (stored with its revision, a "settings" activity,
 * the controller woken); the answer is the group's view, which lists
 * suspended_processes.
 */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "group/group.h"

#include "common/banned.h"

/* The request's process list as canonical list text into out ("" + all=1 when absent). */
static int wanted(const json_t *body, char *out, size_t outlen, int *all, char *err, size_t errlen)
{
    const struct group_key *k = group_key_find("group", "suspended_processes", 0);
    const json_t *p = json_is_object(body) ? json_object_get(body, "processes") : NULL;
    *all = p == NULL || (json_is_array(p) && json_array_size(p) == 0);
    if (*all) {
        char every[GROUP_LIST_MAX] = "";
        for (int i = 0; k->choices[i]; i++) {
            size_t u = strlen(every);
            snprintf(every + u, sizeof(every) - u, "%s%s", i ? "," : "", k->choices[i]);
        }
        return group_list_canon(k, every, out, outlen, err, errlen);
    }
    char text[GROUP_LIST_MAX * 2] = "", why[320];
    size_t used = 0, i;
    json_t *e;
    if (!json_is_array(p)) {
        util_set_err(err, errlen, "processes: must be an array of process names");
        return -1;
    }
    json_array_foreach(p, i, e)
    {
        if (!json_is_string(e) || used + json_string_length(e) + 2 >= sizeof(text)) {
            util_set_err(err, errlen, "processes: must be an array of process names");
            return -1;
        }
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", i ? "," : "",
                                 json_string_value(e));
    }
    if (group_list_canon(k, text, out, outlen, why, sizeof(why)) != 0) {
        util_set_err(err, errlen, "processes: %s", why);
        return -1;
    }
    return 0;
}

/* g's suspended_processes with the words of list added (add) or removed. */
static int edit(struct group_settings *g, const json_t *body, int add, char *err, size_t errlen)
{
    const struct group_key *k = group_key_find("group", "suspended_processes", 0);
    char list[GROUP_LIST_MAX], text[GROUP_LIST_MAX * 2] = "";
    int all;
    if (wanted(body, list, sizeof(list), &all, err, errlen) != 0)
        return -1;
    size_t used = 0;
    for (int i = 0; k->choices[i]; i++) {
        int now = group_list_has(g->suspended_processes, k->choices[i]);
        int named = group_list_has(list, k->choices[i]);
        if (add ? (now || named) : (now && !named))
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", used ? "," : "",
                                     k->choices[i]);
    }
    return group_list_canon(k, text, g->suspended_processes, sizeof(g->suspended_processes), err,
                            errlen);
}

static int suspend_edit(struct group_settings *g, const json_t *body, int max_cap, char *err,
                        size_t errlen)
{
    (void)max_cap;
    return edit(g, body, 1, err, errlen);
}

static int resume_edit(struct group_settings *g, const json_t *body, int max_cap, char *err,
                       size_t errlen)
{
    (void)max_cap;
    return edit(g, body, 0, err, errlen);
}

static void post(struct http_req *r, struct http_reply *rep, http__settings_edit fn)
{
    json_t *body = NULL;
    if (r->body_len > 0) {
        json_error_t je;
        body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(body)) {
            http__error(rep, 400, "invalid JSON", "send {\"processes\": [\"Launch\", ...]}%s%s",
                        body ? "" : ": ", body ? "" : je.text);
            json_decref(body);
            return;
        }
    }
    http__change_settings(r, rep, body, NULL, fn);
    json_decref(body);
}

void http__post_suspend(struct http_req *r, struct http_reply *rep)
{
    post(r, rep, suspend_edit);
}

void http__post_resume(struct http_req *r, struct http_reply *rep)
{
    post(r, rep, resume_edit);
}
