/* models.h: parsed workflows shared by the runs that submitted the same text.
 *
 * A run keeps its workflow model for its whole life (jobs are planned from
 * it as their needs finish), and a model costs about as much memory as the
 * run's jobs do in the run graph. A farm's queue is mostly runs of a few
 * workflow files: every push of a branch submits the same text. Runs whose
 * file name, text and local files (actions, called workflows) are the same
 * share one model, which planning only reads, and its parse warnings. A
 * model lives while a run holds it.
 */
#ifndef KILN_MODELS_H
#define KILN_MODELS_H

#include <jansson.h>
#include <stddef.h>

#include "lang/diag.h"
#include "lang/workflow.h"

typedef struct kiln_models kiln_models_t;
typedef struct kiln_model kiln_model_t;

int kiln_models_new(kiln_models_t **out);
/* Every model must have been released. */
void kiln_models_destroy(kiln_models_t **self_p);

/* As kiln_workflow_parse, with the loader over files (path -> text, may be
 * NULL): 0 and *out (a reference the caller releases), with the parse's
 * warnings added to diags, whether the model was parsed now or is shared;
 * KILN_EINVAL (refused: diags and kiln_error_last() say why) or -1 (out of
 * memory) with *out NULL. A refused text is not kept. */
int kiln_models_parse(kiln_models_t *self, const char *file, const char *text, size_t len,
                      const json_t *files, kiln_diags_t *diags, kiln_model_t **out);

const kiln_workflow_t *kiln_model_workflow(const kiln_model_t *model);
/* Drops the reference; the model goes with its last one. */
void kiln_model_release(kiln_model_t **model_p);

/* Distinct models held (for the coordinator's stats). */
size_t kiln_models_count(const kiln_models_t *self);

#endif
