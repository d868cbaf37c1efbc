/* config.h: command-line flags and config files, one vocabulary for both.
 *
 * Each daemon describes its options once in a table. `--name value`,
 * `--name=value` and a config file line `name = value` set the same
 * option, so anything that can be said on the command line can be kept in
 * a file (`--config FILE`). Flags win over the file. Unknown options, in
 * either place, are errors that name the flag or the file:line.
 */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#define KILN_CONFIG_LINE_MAX 4096
#define KILN_CONFIG_FILE_MAX (256 * 1024)

typedef enum {
    KILN_OPT_STRING, /* target: const char ** */
    KILN_OPT_INT,    /* target: int * */
    KILN_OPT_BOOL,   /* target: bool *; a flag without a value sets true */
    KILN_OPT_LIST,   /* target: kiln_opt_list_t *; each occurrence adds one */
} kiln_opt_kind_t;

/* A repeatable option's values, in the order given (KILN_OPT_LIST). */
#define KILN_OPT_LIST_MAX 64
typedef struct {
    const char *items[KILN_OPT_LIST_MAX];
    size_t n;
} kiln_opt_list_t;

typedef struct {
    const char *name;  /* long name without dashes; NULL ends the table */
    kiln_opt_kind_t kind;
    void *target;
    const char *help;
} kiln_opt_t;

/* Parses argv[start..]. Options may come before and between positional
 * arguments; "--" ends options. Positional arguments are moved, in order, to
 * the front of argv starting at argv[start], and their count is stored in
 * *n_positional. "--config FILE" loads the file first. Returns 0, 1 when
 * --help was given (usage is the caller's to print), or KILN_EINVAL with
 * kiln_error_last() naming the problem. */
int kiln_opts_parse(const kiln_opt_t *opts, int argc, char **argv, int start, int *n_positional);
/* Applies a config file's `name = value` lines (# comments). String values
 * are copies owned by this module (freed at exit): the caller keeps the
 * pointers and frees nothing. */
int kiln_config_load(const kiln_opt_t *opts, const char *path);
/* Prints "  --name VALUE  help" lines. */
void kiln_opts_print(FILE *out, const kiln_opt_t *opts);

#endif
