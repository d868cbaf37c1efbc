/* affinity.c: cache-aware placement: what each worker holds warm, what
 * each job is likely to need, and why a job went where it went.
 *
 * Workers report what they hold (Heartbeat.holds: the short digests of
 * the cache and artifact blobs in their caches, the names of their
 * repository mirrors) when it changes. A job's likely inputs are what the
 * same job (repository or file, job id) restored, saved or downloaded the
 * last time it ran, noted as the store serves it (a bounded table; a
 * coordinator restart forgets it, and the next run teaches it again), and
 * its run's repository mirror when it checks the repository out.
 *
 * The scheduler (dispatch.c) uses this only to choose among workers that
 * can take the job now: the warmest wins, ties go to the usual rule. A
 * job never waits for a warm worker that is busy: restoring a cache costs
 * seconds, and waiting for a slot can cost the whole of another job, so
 * the cold worker takes it at once (and its restore warms it for next
 * time). Nothing is starved: warmth changes which free worker runs a job,
 * never whether or when it is placed.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/coord.h"

/* The low bit says what a value stands for: 0 a cache or artifact blob, 1
 * a repository mirror (their digests come from different names). */
#define S_CACHE(x) ((x) & ~1ull)
#define S_MIRROR(x) ((x) | 1ull)
#define S_IS_MIRROR(v) (((v) & 1ull) != 0)

/* The first 16 hex digits of a digest as a number (0 when it is not hex). */
static uint64_t s_short(const char *hex)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = hex[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void kiln_affinity_on_holds(kiln_cworker_t *w, const Kiln__Heartbeat *hb)
{
    if (!hb->holds_set)
        return;
    size_t n = hb->n_holds < KILN_AFFINITY_HOLDS_MAX ? hb->n_holds : KILN_AFFINITY_HOLDS_MAX;
    uint64_t *v = n ? calloc(n, sizeof *v) : NULL;
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        const char *h = hb->holds[i];
        uint64_t x = strlen(h) >= 18 ? s_short(h + 2) : 0;
        if (!x)
            continue;
        if (h[0] == 'm')
            x = S_MIRROR(x);
        else if (h[0] == 'c')
            x = S_CACHE(x);
        else
            continue;
        v[k++] = x;
    }
    if (k)
        qsort(v, k, sizeof *v, s_cmp_u64);
    free(w->holds);
    w->holds = v;
    w->n_holds = k;
}

static bool s_holds(const kiln_cworker_t *w, uint64_t x)
{
    return w->n_holds && bsearch(&x, w->holds, w->n_holds, sizeof x, s_cmp_u64) != NULL;
}

/* The job's key in the table: its repository (or file) and job id. */
static uint64_t s_job_key(const kiln_cjob_t *job)
{
    const char *repo = json_string_value(json_object_get(job->run->source, "repository"));
    char text[1024];
    int n = snprintf(text, sizeof text, "%s%c%s%c%s", repo ? repo : "", 0,
                     job->run->file ? job->run->file : "", 0, kiln_runs_plan(job)->id);
    unsigned char h[8];
    crypto_generichash(h, sizeof h, (const unsigned char *)text,
                       (size_t)(n < (int)sizeof text ? n : (int)sizeof text - 1), NULL, 0);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k ? k : 1;
}

void kiln_affinity_note(kiln_server_t *self, const kiln_cjob_t *job, const char *digest)
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0)
        return;
    uint64_t x = S_CACHE(s_short(digest + 7)), key = s_job_key(job);
    if (!x)
        return;
    kiln_affinity_slot_t *s = &self->affinity[key % KILN_AFFINITY_SLOTS];
    if (s->key != key) {
        memset(s, 0, sizeof *s);
        s->key = key;
    }
    for (unsigned i = 0; i < s->n; i++)
        if (s->inputs[i] == x)
            return;
    if (s->n == KILN_AFFINITY_INPUTS) {
        memmove(s->inputs, s->inputs + 1, (KILN_AFFINITY_INPUTS - 1) * sizeof s->inputs[0]);
        s->n--;
    }
    s->inputs[s->n++] = x;
}

/* The job's likely inputs into out (at most KILN_AFFINITY_INPUTS + 1). */
static size_t s_inputs(const kiln_server_t *self, const kiln_cjob_t *job, uint64_t *out,
                       bool *mirror)
{
    size_t n = 0;
    uint64_t key = s_job_key(job);
    const kiln_affinity_slot_t *s = &self->affinity[key % KILN_AFFINITY_SLOTS];
    if (s->key == key)
        for (unsigned i = 0; i < s->n; i++)
            out[n++] = s->inputs[i];
    *mirror = false;
    const char *url = json_string_value(json_object_get(job->run->source, "url"));
    const kiln_job_t *spec = kiln_runs_spec(job);
    bool checks_out = false;
    for (size_t i = 0; spec && i < spec->n_steps && !checks_out; i++)
        checks_out = spec->steps[i].builtin && strcmp(spec->steps[i].builtin, "checkout") == 0;
    if (url && url[0] && checks_out) {
        /* The worker's mirror is named by this digest (common/gitsrc.c). */
        unsigned char d[10];
        char hex[21];
        crypto_generichash(d, sizeof d, (const unsigned char *)url, strlen(url), NULL, 0);
        sodium_bin2hex(hex, sizeof hex, d, sizeof d);
        out[n++] = S_MIRROR(s_short(hex));
        *mirror = true;
    }
    return n;
}

unsigned kiln_affinity_warmth(const kiln_server_t *self, const kiln_cworker_t *w,
                              const kiln_cjob_t *job)
{
    uint64_t in[KILN_AFFINITY_INPUTS + 1];
    bool mirror;
    size_t n = s_inputs(self, job, in, &mirror);
    unsigned score = 0;
    /* A cache counts for more than a mirror: a mirror is a fetch of what
     * changed, a missing cache is everything again. */
    for (size_t i = 0; i < n; i++)
        if (s_holds(w, in[i]))
            score += S_IS_MIRROR(in[i]) ? 1 : 4;
    return score;
}

bool kiln_affinity_has_inputs(const kiln_server_t *self, const kiln_cjob_t *job)
{
    uint64_t in[KILN_AFFINITY_INPUTS + 1];
    bool mirror;
    return s_inputs(self, job, in, &mirror) > 0;
}

/* Why the job went to its worker, for its attempt's record and its log;
 * "" when the job has no inputs to be warm for. Counted per pool. */
void kiln_affinity_explain(kiln_server_t *self, const kiln_cjob_t *job, char *out, size_t cap)
{
    uint64_t in[KILN_AFFINITY_INPUTS + 1];
    bool mirror;
    size_t n = s_inputs(self, job, in, &mirror);
    const kiln_cworker_t *w = job->worker;
    out[0] = '\0';
    if (n == 0 || !w)
        return;
    unsigned mine = kiln_affinity_warmth(self, w, job), best = mine;
    const kiln_cworker_t *warmer = NULL;
    for (size_t i = 0; i < self->n_workers; i++) {
        const kiln_cworker_t *o = self->workers[i];
        unsigned s = o == w ? 0 : kiln_affinity_warmth(self, o, job);
        if (s > best && kiln_workers_matches(self, o, kiln_runs_plan(job))) {
            best = s;
            warmer = o;
        }
    }
    unsigned caches = 0, held = 0;
    bool mirror_held = false;
    for (size_t i = 0; i < n; i++) {
        bool is_mirror = S_IS_MIRROR(in[i]);
        caches += !is_mirror;
        if (s_holds(w, in[i])) {
            held += !is_mirror;
            mirror_held = mirror_held || is_mirror;
        }
    }
    kiln_affinity_pool_t *pool = kiln_affinity_pool(self, w);
    if (mine > 0) {
        snprintf(out, cap, "warm: %s holds %u of the %u cache%s this job used last%s", w->name,
                 held, caches, caches == 1 ? "" : "s",
                 mirror ? (mirror_held ? " and the repository's mirror" : "; not the repository's mirror")
                        : "");
        if (pool)
            pool->placed_warm++;
    } else {
        snprintf(out, cap, "cold: %s%s%s", warmer ? warmer->name : "no connected worker holds "
                                                                   "what this job used last",
                 warmer ? " holds what this job used last but has no free slot; " : "",
                 warmer ? "placed at once rather than wait for it" : "");
        if (pool)
            pool->placed_cold++;
    }
}

kiln_affinity_pool_t *kiln_affinity_pool(kiln_server_t *self, const kiln_cworker_t *w)
{
    char name[sizeof self->pools[0].name];
    size_t o = 0;
    for (size_t i = 0; i < w->n_labels && o + 1 < sizeof name; i++)
        o += (size_t)snprintf(name + o, sizeof name - o, "%s%s", i ? "," : "", w->labels[i]);
    if (o >= sizeof name)
        o = sizeof name - 1;
    name[o] = '\0';
    for (size_t i = 0; i < self->n_pools; i++)
        if (strcmp(self->pools[i].name, name) == 0)
            return &self->pools[i];
    if (self->n_pools == KILN_AFFINITY_POOLS_MAX)
        return NULL;
    kiln_affinity_pool_t *p = &self->pools[self->n_pools++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

json_t *kiln_affinity_pools_json(const kiln_server_t *self)
{
    json_t *doc = json_object();
    for (size_t i = 0; doc && i < self->n_pools; i++) {
        const kiln_affinity_pool_t *p = &self->pools[i];
        uint64_t lookups = p->cache_hits + p->cache_misses;
        json_object_set_new(doc, p->name,
                            json_pack("{s:I, s:I, s:I, s:I, s:f}", "placed_warm",
                                      (json_int_t)p->placed_warm, "placed_cold",
                                      (json_int_t)p->placed_cold, "cache_hits",
                                      (json_int_t)p->cache_hits, "cache_misses",
                                      (json_int_t)p->cache_misses, "cache_hit_rate",
                                      lookups ? (double)p->cache_hits / (double)lookups : 0.0));
    }
    return doc;
}
