/* cmd_lint.c: kiln lint and kiln graph, which need no farm. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"
#include "lang/rungraph.h"

int kiln_cmd_lint(int argc, char **argv)
{
    int npos = 0, code = KILN_EXIT_OK;
    kiln_opt_t opts[] = {{NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos < 1) {
        if (rc == 0)
            kiln_error_set("expected at least one workflow file");
        return kiln_cli_usage_error("lint", "WORKFLOW.yml...", opts, rc ? rc : -1);
    }
    for (int i = 0; i < npos; i++) {
        char *text = NULL;
        size_t len = 0;
        if (kiln_cli_validate(argv[2 + i], &text, &len) != 0)
            code = KILN_EXIT_USAGE;
        free(text);
    }
    return code;
}

/* One job of `kiln graph`: its name, id, runs-on and if:. */
static void s_graph_job(const char *name, const char *id, const kiln_plan_job_t *plan,
                        const kiln_job_t *spec)
{
    printf("  %s [%s]", name, id);
    printf(" runs-on: ");
    if (plan && plan->finished) {
        for (size_t k = 0; k < plan->n_labels; k++)
            printf("%s%s", k ? ", " : "", plan->labels[k]);
    } else if (spec->callee) {
        printf("(%s)", spec->uses);
    } else {
        char *text = json_dumps(spec->runs_on, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *shown = json_string_value(spec->runs_on);
        printf("%s", shown ? shown : text ? text : "?");
        free(text);
    }
    if (spec->if_expr)
        printf(" if: %s", spec->if_expr);
    for (size_t k = 0; k < spec->n_needs; k++)
        printf("%s%s", k ? ", " : " <- ", spec->needs[k]);
    printf("\n");
}

/* kiln graph FILE [--dot]: the job graph, matrices expanded where they are
 * known before the run starts, with each job's runs-on and if:. */
int kiln_cmd_graph(int argc, char **argv)
{
    bool dot = false;
    int npos = 0, code = KILN_EXIT_OK;
    char *text = NULL;
    size_t len = 0;
    kiln_opt_t opts[] = {{"dot", KILN_OPT_BOOL, &dot, "print Graphviz dot"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one workflow file");
        return kiln_cli_usage_error("graph", "WORKFLOW.yml [--dot]", opts, rc ? rc : -1);
    }
    if (kiln_cli_validate(argv[2], &text, &len) != 0)
        return KILN_EXIT_USAGE;
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_rungraph_t *g = NULL;
    json_t *none = json_object(), *inputs = NULL;
    kiln_diags_init(&diags, argv[2]);
    if (kiln_cli_parse(&wf, argv[2], text, len, &diags) != 0 ||
        kiln_workflow_inputs(wf->inputs ? wf->inputs : none, "on.workflow_dispatch.inputs",
                             none, &inputs) != 0)
        inputs = json_object();
    kiln_contexts_t run = {.workflow = wf ? wf->name : "", .actor = "kiln graph",
                           .event_name = "push", .inputs = inputs};
    if (!wf || kiln_rungraph_new(&g, wf, &run) != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        code = KILN_EXIT_INFRA;
        goto cleanup;
    }
    /* The jobs as planned now, by job as written. */
    size_t n = kiln_rungraph_size(g);
    if (dot) {
        printf("digraph \"%s\" {\n  rankdir=LR;\n  node [shape=box];\n", wf->name);
        for (size_t i = 0; i < n; i++)
            printf("  \"%s\" [label=\"%s\"];\n", kiln_rungraph_job(g, i)->id,
                   kiln_rungraph_job(g, i)->name);
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            if (j->plan_late)
                printf("  \"%s\" [label=\"%s (matrix computed at run time)\"];\n", j->id,
                       j->name ? j->name : j->id);
        }
        /* An edge from each job of a need to each job of its dependent; a
         * job planned at run time stands as its id. */
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            for (size_t k = 0; k < j->n_needs; k++) {
                const kiln_job_t *need = &wf->jobs[j->need_idx[k]];
                for (size_t a = 0; a < n || (need->plan_late && a == 0); a++) {
                    if (!need->plan_late && kiln_rungraph_spec(g, a) != need)
                        continue;
                    const char *from = need->plan_late ? need->id : kiln_rungraph_job(g, a)->id;
                    for (size_t b = 0; b < n || (j->plan_late && b == 0); b++) {
                        if (!j->plan_late && kiln_rungraph_spec(g, b) != j)
                            continue;
                        printf("  \"%s\" -> \"%s\";\n", from,
                               j->plan_late ? j->id : kiln_rungraph_job(g, b)->id);
                        if (j->plan_late)
                            break;
                    }
                    if (need->plan_late)
                        break;
                }
            }
        }
        printf("}\n");
        goto cleanup;
    }
    /* Levels: a job's level is one more than its deepest need's. */
    size_t level[KILN_WF_MAX_JOBS] = {0}, max_level = 0;
    for (size_t t = 0; t < wf->n_jobs; t++) {
        size_t i = wf->topo[t];
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++)
            if (level[wf->jobs[i].need_idx[k]] + 1 > level[i])
                level[i] = level[wf->jobs[i].need_idx[k]] + 1;
        if (level[i] > max_level)
            max_level = level[i];
    }
    printf("%s: %zu jobs\n", wf->name, n);
    for (size_t l = 0; l <= max_level; l++) {
        printf("stage %zu\n", l + 1);
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            if (level[wf->topo[t]] != l)
                continue;
            bool any = false;
            for (size_t i = 0; i < n; i++) {
                if (kiln_rungraph_spec(g, i) != j)
                    continue;
                const kiln_plan_job_t *p = kiln_rungraph_job(g, i);
                s_graph_job(p->name, p->id, p, j);
                any = true;
            }
            if (!any) {
                char label[KILN_WF_MAX_ID + 64];
                snprintf(label, sizeof label, "%s (matrix computed at run time)",
                         j->name ? j->name : j->id);
                s_graph_job(label, j->id, NULL, j);
            }
        }
    }
cleanup:
    kiln_rungraph_destroy(&g);
    kiln_workflow_destroy(&wf);
    json_decref(none);
    json_decref(inputs);
    kiln_diags_free(&diags);
    free(text);
    return code;
}
