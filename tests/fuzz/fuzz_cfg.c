/*
 * fuzz_cfg.c - libFuzzer target for the config reader: cfg_load_string()
 * then conf_load_cfg() (every key asgd reads, with its validation) and
 * cfg_check_unused().
 *
 * Invariants: error texts are NUL-terminated; a config that loads also
 * passes group_settings_validate() (what conf_load_cfg() accepted is valid);
 * release leaves nothing behind (ASan's leak check). Seeds:
 * tests/fuzz/corpus/cfg/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asgd/conf.h"
#include "common/cfg.h"
#include "common/log.h"

#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = 1;
    }
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cfg c;
    memset(&c, 0, sizeof(c));
    char err[512];
    err[sizeof(err) - 1] = 'x';
    if (cfg_load_string(&c, "fuzz.ini", text, err, sizeof(err)) == 0) {
        struct asgd_conf conf;
        memset(&conf, 0, sizeof(conf));
        int rc = conf_load_cfg(&c, &conf, err, sizeof(err));
        if (rc == 0) {
            char verr[512];
            const char *sec = NULL, *key = NULL;
            for (size_t i = 0; i < conf.n_groups; i++)
                if (group_settings_validate(&conf.groups[i].settings, &sec, &key, verr,
                                            sizeof(verr)) != 0)
                    abort(); /* accepted from the file but invalid */
            (void)cfg_check_unused(&c, err, sizeof(err));
        }
        conf_release(&conf);
        cfg_release(&c);
    }
    if (memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    free(text);
    return 0;
}
