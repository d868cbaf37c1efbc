/* affinity.c: cache-aware placement: what each worker holds warm, what
 * each job is likely to need, what placing it cold would cost, and why a
 * job went where it went.
 *
 * Workers report what they hold (Heartbeat.holds: the short digests of
 * the cache and artifact blobs in their caches, the names of their
 * repository mirrors) when it changes. A job's likely inputs are what the
 * same job (repository or file, job id) restored, saved or downloaded the
 * last time it ran, with their sizes, noted as the store serves it (a
 * bounded table; a coordinator restart forgets it, and the next run
 * teaches it again), and its run's repository mirror when it checks the
 * repository out. The same table keeps how long the job took last.
 *
 * The scheduler (dispatch.c) prefers, among the workers that can take the
 * job now, the warmest. When a busy worker is warmer still, it weighs the
 * two (kiln_affinity_weigh): the wait is how long that worker's soonest
 * job is expected to go on (from its last duration; unknown for a job
 * never timed or already past it), the restore is the bytes the free
 * worker lacks at the rate the store measures its transfers. Only a wait
 * known to be shorter holds the job, and for no longer than the restore
 * would take (then it goes cold): the rent-or-buy rule, so a wrong guess
 * costs at most twice the better choice. One job at a time waits for a
 * given worker; other jobs take the free worker meanwhile, so nothing
 * starves and nothing piles up behind one worker.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/imageref.h"
#include "coordinator/coord.h"

/* The low two bits say what a value stands for: 0 a cache or artifact
 * blob, 1 a repository mirror, 2 a container image, 3 one of an image's
 * layers (their digests come from different names). */
#define S_CACHE(x) ((x) & ~3ull)
#define S_MIRROR(x) (((x) & ~3ull) | 1ull)
#define S_IMAGE(x) (((x) & ~3ull) | 2ull)
#define S_IS_CACHE(v) (((v) & 3ull) == 0)
#define S_IS_MIRROR(v) (((v) & 3ull) == 1)
#define S_IS_IMAGE(v) (((v) & 3ull) == 2)
#define S_LAYER(x) ((x) | 3ull)
#define S_IS_LAYER(v) (((v) & 3ull) == 3)
/* A job's inputs: its caches, its mirror, its image and its layers. */
#define S_INPUTS_MAX (KILN_AFFINITY_INPUTS + 2 + KILN_AFFINITY_LAYERS)

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
        else if (h[0] == 'i')
            x = S_IMAGE(x);
        else if (h[0] == 'l')
            x = S_LAYER(x);
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

/* A blob the worker just sent whole or fetched whole is in its cache now:
 * its next heartbeat will say so, but the job after this one may be placed
 * before it (and a heartbeat that does not list it corrects this). */
void kiln_affinity_held(kiln_cworker_t *w, const char *digest)
{
    if (!w || !digest || strncmp(digest, "sha256:", 7) != 0)
        return;
    uint64_t x = S_CACHE(s_short(digest + 7));
    if (!x || s_holds(w, x) || w->n_holds >= KILN_AFFINITY_HOLDS_MAX)
        return;
    uint64_t *v = realloc(w->holds, (w->n_holds + 1) * sizeof *v);
    if (!v)
        return; /* only a hint: the heartbeat brings it */
    size_t i = w->n_holds;
    while (i > 0 && v[i - 1] > x) {
        v[i] = v[i - 1];
        i--;
    }
    v[i] = x;
    w->holds = v;
    w->n_holds++;
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

/* The job's slot in the table, or NULL. */
static const kiln_affinity_slot_t *s_slot_find(const kiln_server_t *self, const kiln_cjob_t *job)
{
    uint64_t key = s_job_key(job);
    const kiln_affinity_slot_t *s = &self->affinity[key % KILN_AFFINITY_SLOTS];
    return s->key == key ? s : NULL;
}

/* The job's slot, taken from whichever job had it. */
static kiln_affinity_slot_t *s_slot_claim(kiln_server_t *self, const kiln_cjob_t *job)
{
    uint64_t key = s_job_key(job);
    kiln_affinity_slot_t *s = &self->affinity[key % KILN_AFFINITY_SLOTS];
    if (s->key != key) {
        memset(s, 0, sizeof *s);
        s->key = key;
    }
    return s;
}

void kiln_affinity_note(kiln_server_t *self, const kiln_cjob_t *job, const char *digest,
                        uint64_t size)
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0)
        return;
    uint64_t x = S_CACHE(s_short(digest + 7));
    if (!x)
        return;
    kiln_affinity_slot_t *s = s_slot_claim(self, job);
    for (unsigned i = 0; i < s->n; i++)
        if (s->inputs[i] == x) {
            s->sizes[i] = size;
            return;
        }
    if (s->n == KILN_AFFINITY_INPUTS) {
        memmove(s->inputs, s->inputs + 1, (KILN_AFFINITY_INPUTS - 1) * sizeof s->inputs[0]);
        memmove(s->sizes, s->sizes + 1, (KILN_AFFINITY_INPUTS - 1) * sizeof s->sizes[0]);
        s->n--;
    }
    s->sizes[s->n] = size;
    s->inputs[s->n++] = x;
}

void kiln_affinity_layers(kiln_server_t *self, const kiln_cjob_t *job, char *const *digests,
                          const uint64_t *sizes, size_t n)
{
    kiln_affinity_slot_t *s = s_slot_claim(self, job);
    s->n_layers = 0;
    for (size_t i = 0; i < n; i++) {
        if (!digests[i] || strncmp(digests[i], "sha256:", 7) != 0 || strlen(digests[i]) < 23)
            continue;
        uint64_t x = S_LAYER(s_short(digests[i] + 7));
        if (x == S_LAYER(0))
            continue;
        /* The largest ones: they are what a cold worker would wait for. */
        unsigned at = s->n_layers;
        if (at == KILN_AFFINITY_LAYERS) {
            unsigned least = 0;
            for (unsigned j = 1; j < at; j++)
                if (s->layer_sizes[j] < s->layer_sizes[least])
                    least = j;
            if (s->layer_sizes[least] >= sizes[i])
                continue;
            at = least;
        } else {
            s->n_layers++;
        }
        s->layers[at] = x;
        s->layer_sizes[at] = sizes[i];
    }
}

void kiln_affinity_done(kiln_server_t *self, const kiln_cjob_t *job, int64_t took_ms)
{
    if (took_ms >= 0)
        s_slot_claim(self, job)->last_ms = took_ms > 0 ? took_ms : 1;
}

/* A transfer is timed from its first chunk to its last: the rate restores
 * are weighed at. Small blobs say more about round trips than rate. */
#define S_XFER_MIN (4u << 20)

void kiln_affinity_transfer(kiln_server_t *self, const kiln_cjob_t *job, const char *digest,
                            uint64_t offset, size_t len, uint64_t size)
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0 || size < S_XFER_MIN)
        return;
    uint64_t blob = s_short(digest + 7);
    size_t n = sizeof self->xfer / sizeof self->xfer[0], slot = blob % n;
    int64_t now = kiln_clock_mono_ms();
    if (offset == 0) {
        self->xfer[slot].blob = blob;
        self->xfer[slot].job = job;
        self->xfer[slot].t0 = now;
        self->xfer[slot].off0 = len;
        return;
    }
    if (self->xfer[slot].blob != blob || self->xfer[slot].job != job || offset + len != size)
        return;
    int64_t took = now - self->xfer[slot].t0;
    uint64_t bytes = size - self->xfer[slot].off0;
    self->xfer[slot].blob = 0;
    if (took <= 0 || bytes < S_XFER_MIN / 2)
        return;
    double rate = (double)bytes / (double)took;
    self->store_rate = self->store_rate > 0 ? self->store_rate + (rate - self->store_rate) / 4 : rate;
}

double kiln_affinity_rate(const kiln_server_t *self)
{
    if (self->cfg.restore_mb_s)
        return (double)self->cfg.restore_mb_s * 1048576.0 / 1000.0;
    return self->store_rate > 0 ? self->store_rate : KILN_AFFINITY_DEFAULT_RATE;
}

/* The job's likely inputs into out (at most S_INPUTS_MAX),
 * and the sizes of its caches into sizes when given. */
static size_t s_inputs(const kiln_server_t *self, const kiln_cjob_t *job, uint64_t *out,
                       bool *mirror, uint64_t *sizes)
{
    size_t n = 0;
    const kiln_affinity_slot_t *s = s_slot_find(self, job);
    for (unsigned i = 0; s && i < s->n; i++) {
        if (sizes)
            sizes[n] = s->sizes[i];
        out[n++] = s->inputs[i];
    }
    for (unsigned i = 0; s && i < s->n_layers; i++) {
        if (sizes)
            sizes[n] = s->layer_sizes[i];
        out[n++] = s->layers[i];
    }
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
    /* Its container's image, when it is written out (an expression's
     * value is the worker's to know). */
    const char *image = spec ? json_string_value(json_object_get(spec->container, "image")) : NULL;
    kiln_imageref_t ref;
    char why[300];
    if (image && !strstr(image, "${{") &&
        kiln_imageref_parse(image, &ref, why, sizeof why) == 0) {
        char hex[21];
        kiln_imageref_hash(ref.canonical, hex);
        out[n++] = S_IMAGE(s_short(hex));
    }
    return n;
}

unsigned kiln_affinity_warmth(const kiln_server_t *self, const kiln_cworker_t *w,
                              const kiln_cjob_t *job)
{
    uint64_t in[S_INPUTS_MAX];
    bool mirror;
    size_t n = s_inputs(self, job, in, &mirror, NULL);
    unsigned score = 0;
    /* A cache or an image counts for more than a mirror: a mirror is a
     * fetch of what changed, a missing cache or image is everything again. */
    for (size_t i = 0; i < n; i++)
        if (s_holds(w, in[i]))
            score += S_IS_MIRROR(in[i]) || S_IS_LAYER(in[i]) ? 1 : 4;
    return score;
}

bool kiln_affinity_has_inputs(const kiln_server_t *self, const kiln_cjob_t *job)
{
    uint64_t in[S_INPUTS_MAX];
    bool mirror;
    return s_inputs(self, job, in, &mirror, NULL) > 0;
}

void kiln_affinity_weigh(const kiln_server_t *self, const kiln_cjob_t *job,
                         const kiln_cworker_t *here, const kiln_cworker_t *warm, int64_t now,
                         kiln_affinity_cost_t *out)
{
    uint64_t in[S_INPUTS_MAX], sizes[S_INPUTS_MAX];
    bool mirror;
    size_t n = s_inputs(self, job, in, &mirror, sizes);
    double rate = kiln_affinity_rate(self), ms = 0;
    out->bytes = 0;
    /* What the warm worker would not fetch and this one would: its caches
     * (a mirror's fetch is of what changed, small beside them, and is not
     * counted). */
    for (size_t i = 0; i < n; i++)
        if ((S_IS_CACHE(in[i]) || S_IS_LAYER(in[i])) && s_holds(warm, in[i]) &&
            !(here && s_holds(here, in[i]))) {
            out->bytes += sizes[i];
            ms += KILN_AFFINITY_BLOB_MS + (double)sizes[i] / rate;
        }
    out->restore_ms = ms < KILN_AFFINITY_HOLD_MAX_MS ? (int64_t)ms : KILN_AFFINITY_HOLD_MAX_MS;
    /* Its soonest slot: a job of its ends when it took last time; one
     * never timed, or already past that, could take any time. Assignments
     * queued behind its jobs take its next slots. */
    out->wait_ms = -1;
    if (warm->busy > warm->slots)
        return;
    for (unsigned i = 0; i < warm->cap; i++) {
        const kiln_cjob_t *j = warm->jobs[i];
        const kiln_affinity_slot_t *s = j ? s_slot_find(self, j) : NULL;
        if (!s || s->last_ms <= 0)
            continue;
        int64_t left = j->started_ms + s->last_ms - now;
        if (left >= 0 && (out->wait_ms < 0 || left < out->wait_ms))
            out->wait_ms = left;
    }
}

/* Bytes for a person: "95.4 MB". */
static void s_bytes(uint64_t n, char *out, size_t cap)
{
    if (n >= 1048576)
        snprintf(out, cap, "%.1f MB", (double)n / 1048576.0);
    else
        snprintf(out, cap, "%.1f kB", (double)n / 1024.0);
}

bool kiln_affinity_waiting_why(const kiln_cjob_t *job, char *out, size_t cap)
{
    if (!job->hold_until || !job->hold_for)
        return false;
    char size[32];
    s_bytes(job->hold_cost.bytes, size, sizeof size);
    snprintf(out, cap, "for %s, which holds what this job used last: expected free in ~%.1f s, "
                       "sooner than restoring %s elsewhere (~%.1f s, the longest it waits)",
             job->hold_for, (double)job->hold_cost.wait_ms / 1000.0, size,
             (double)job->hold_cost.restore_ms / 1000.0);
    return true;
}

/* Why the job went to its worker, for its attempt's record and its log;
 * "" when the job has no inputs to be warm for. Counted per pool. */
void kiln_affinity_explain(kiln_server_t *self, const kiln_cjob_t *job, char *out, size_t cap)
{
    uint64_t in[S_INPUTS_MAX];
    bool mirror;
    size_t n = s_inputs(self, job, in, &mirror, NULL);
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
    unsigned caches = 0, held = 0, layers = 0, layers_held = 0;
    bool mirror_held = false, image = false, image_held = false;
    for (size_t i = 0; i < n; i++) {
        caches += S_IS_CACHE(in[i]);
        layers += S_IS_LAYER(in[i]);
        image = image || S_IS_IMAGE(in[i]);
        if (s_holds(w, in[i])) {
            held += S_IS_CACHE(in[i]);
            layers_held += S_IS_LAYER(in[i]);
            mirror_held = mirror_held || S_IS_MIRROR(in[i]);
            image_held = image_held || S_IS_IMAGE(in[i]);
        }
    }
    kiln_affinity_pool_t *pool = kiln_affinity_pool(self, w);
    double waited = job->hold_until ? (double)(kiln_clock_mono_ms() - job->hold_since) / 1000.0 : 0;
    char size[32];
    s_bytes(job->hold_cost.bytes, size, sizeof size);
    if (mine > 0) {
        /* What it holds, then what it lacks of what the job used. */
        int o = snprintf(out, cap, "warm: %s holds ", w->name);
        bool any = false;
#define S_PART(...)                                                                               \
    do {                                                                                          \
        if (o > 0 && (size_t)o < cap)                                                             \
            o += snprintf(out + o, cap - (size_t)o, __VA_ARGS__);                                 \
    } while (0)
        if (caches) {
            S_PART("%u of the %u cache%s this job used last", held, caches, caches == 1 ? "" : "s");
            any = true;
        }
        if (mirror_held) {
            S_PART("%sthe repository's mirror", any ? " and " : "");
            any = true;
        }
        if (image_held) {
            S_PART("%sthe job's container image", any ? " and " : "");
            any = true;
        } else if (layers_held) {
            S_PART("%s%u of the %u largest layers of the job's container image", any ? " and " : "",
                   layers_held, layers);
            any = true;
        }
        if (mirror && !mirror_held)
            S_PART("; not the repository's mirror");
        if (image && !image_held && !layers_held)
            S_PART("; not the job's container image");
#undef S_PART
        if (job->hold_until && o > 0 && (size_t)o < cap)
            snprintf(out + o, cap - (size_t)o, "; waited %.1f s for it rather than restore %s "
                                               "elsewhere (~%.1f s)",
                     waited, size, (double)job->hold_cost.restore_ms / 1000.0);
        if (pool)
            pool->placed_warm++;
        return;
    }
    if (pool)
        pool->placed_cold++;
    if (job->hold_until) {
        snprintf(out, cap, "cold: waited %.1f s for %s, which holds what this job used last, as "
                           "long as restoring %s here was expected to take; it did not free up "
                           "in time",
                 waited, job->hold_for ? job->hold_for : "a warm worker", size);
        return;
    }
    if (!warmer) {
        snprintf(out, cap, "cold: no connected worker holds what this job used last");
        return;
    }
    kiln_affinity_cost_t c;
    kiln_affinity_weigh(self, job, w, warmer, kiln_clock_wall_ms(), &c);
    s_bytes(c.bytes, size, sizeof size);
    if (c.wait_ms < 0)
        snprintf(out, cap, "cold: %s holds what this job used last but has no free slot and its "
                           "work is of unknown length; placed at once rather than wait for it "
                           "(restoring %s here, ~%.1f s)",
                 warmer->name, size, (double)c.restore_ms / 1000.0);
    else if (c.wait_ms >= c.restore_ms)
        snprintf(out, cap, "cold: %s holds what this job used last but is expected busy ~%.1f s "
                           "more, longer than restoring %s here (~%.1f s); placed at once",
                 warmer->name, (double)c.wait_ms / 1000.0, size, (double)c.restore_ms / 1000.0);
    else
        snprintf(out, cap, "cold: %s holds what this job used last but other jobs already wait "
                           "for its next slot; placed at once",
                 warmer->name);
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
