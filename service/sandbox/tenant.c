/* Tenants: who may see a sandbox, and the per-tenant quotas.
 *
 * A sandbox belongs to the owner that created it (spec.owner, kept in its
 * container labels). Another owner's sandbox is answered exactly like an
 * unknown id, so ids cannot be probed across tenants. The quotas are counted
 * from the registry itself under its lock (no counters to drift): live
 * sandboxes plus the creates in flight, held as sandbox_tenant_hold. */
#include <inttypes.h>
#include <string.h>

#include "sandbox/internal.h"

static const char *
owner_of(const sandbox_entry *e)
{
    return e->spec.owner ? e->spec.owner : "";
}

bool
sandbox_caller_sees(const sandbox_caller *who, const sandbox_entry *e)
{
    return who->admin || strcmp(owner_of(e), who->owner) == 0;
}

static uint64_t
spec_memory(const sandbox_spec *s)
{
    return s->limits.memory_bytes * (uint64_t)(s->max_runs ? s->max_runs : 1);
}

int
sandbox_tenant_reserve(sandbox_manager *m, const sandbox_caller *who, const sandbox_spec *spec,
                       sandbox_tenant_hold *hold, se_err *err)
{
    memset(hold, 0, sizeof(*hold));
    hold->owner = who->owner;
    hold->memory = spec_memory(spec);
    if (!who->max_sandboxes && !who->max_memory)
        return 0;
    int rc = 0;
    uint64_t n = 0, mem = 0;
    pthread_mutex_lock(&m->reg.mu);
    for (sandbox_entry *e = m->reg.head; e; e = e->next)
        if (strcmp(owner_of(e), who->owner) == 0) {
            n++;
            mem += spec_memory(&e->spec);
        }
    for (sandbox_tenant_hold *h = m->holds; h; h = h->next)
        if (strcmp(h->owner, who->owner) == 0) {
            n++;
            mem += h->memory;
        }
    if (who->max_sandboxes && n + 1 > who->max_sandboxes)
        rc = se_err_set(err, SE_EXHAUSTED,
                        "tenant-max-sandboxes: tenant '%s' has %" PRIu64 " sandboxes (at most %u)",
                        who->owner, n, who->max_sandboxes);
    else if (who->max_memory && mem + hold->memory > who->max_memory)
        rc = se_err_set(err, SE_EXHAUSTED,
                        "tenant-max-memory: tenant '%s' holds %" PRIu64 " bytes (memory_bytes x "
                        "max_concurrent_runs of its sandboxes), this one %" PRIu64
                        " more, at most %" PRIu64,
                        who->owner, mem, hold->memory, who->max_memory);
    if (rc == 0) {
        hold->next = m->holds;
        m->holds = hold;
        hold->linked = true;
    }
    pthread_mutex_unlock(&m->reg.mu);
    return rc;
}

void
sandbox_tenant_release(sandbox_manager *m, sandbox_tenant_hold *hold)
{
    if (!hold->linked)
        return;
    pthread_mutex_lock(&m->reg.mu);
    for (sandbox_tenant_hold **pp = &m->holds; *pp; pp = &(*pp)->next)
        if (*pp == hold) {
            *pp = hold->next;
            break;
        }
    hold->linked = false;
    pthread_mutex_unlock(&m->reg.mu);
}
