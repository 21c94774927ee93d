/* The wire walk that refuses a NUL inside a string field (util/pbcheck.h),
 * on the request of every method the daemon serves: the first input byte
 * picks the method (rpc_sandbox_methods), the rest is the request.
 *
 * Checked against protobuf-c itself, through an allocator that records the
 * size of every block: protobuf-c allocates each unpacked string as its
 * wire length + 1, so a string whose strlen + 1 is less than its block was
 * cut short by a NUL. For bytes protobuf-c unpacks:
 *   - a cut string means the walk refused, naming a NUL;
 *   - the walk never calls them malformed (it is not stricter), but for a
 *     field number protobuf does not have (0, above 2^29 - 1).
 * Always: the answer is 0 or SE_INVALID with a printable message. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "rpc/rpc.h"
#include "util/pbcheck.h"

/* Blocks protobuf-c holds during one unpack: far more than a request of
 * libFuzzer's sizes makes; past it the cut-string check is skipped. */
#define BLOCKS_MAX 65536

struct block {
    const void *p;
    size_t size;
};

static struct block blocks[BLOCKS_MAX];
static size_t n_blocks;
static bool blocks_overflow;

static void *
rec_alloc(void *ud, size_t size)
{
    (void)ud;
    void *p = malloc(size ? size : 1);
    if (!p)
        return NULL;
    if (n_blocks < BLOCKS_MAX)
        blocks[n_blocks++] = (struct block){p, size};
    else
        blocks_overflow = true;
    return p;
}

static void
rec_free(void *ud, void *p)
{
    (void)ud;
    for (size_t i = n_blocks; i-- > 0;) {
        if (blocks[i].p == p) {
            blocks[i] = blocks[--n_blocks];
            break;
        }
    }
    free(p);
}

static int
block_cmp(const void *a, const void *b)
{
    const struct block *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* True if s is a string protobuf-c allocated and a NUL cut it short. A
 * string it did not allocate is a field's default ("" in proto3). */
static bool
string_cut(const char *s)
{
    struct block key = {s, 0};
    const struct block *b = bsearch(&key, blocks, n_blocks, sizeof(blocks[0]), block_cmp);
    return b && strlen(s) + 1 != b->size;
}

/* Any string of m, at any depth, cut short. Reads the unpacked message
 * through its descriptor, the way protobuf-c lays it out. */
static bool
any_cut(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            void *const *arr = *(void *const *const *)(base + f->offset);
            for (size_t j = 0; j < n; j++) {
                if (f->type == PROTOBUF_C_TYPE_STRING ? string_cut(arr[j]) : any_cut(arr[j]))
                    return true;
            }
        } else {
            const void *v = *(const void *const *)(base + f->offset);
            if (v && (f->type == PROTOBUF_C_TYPE_STRING ? string_cut(v) : any_cut(v)))
                return true;
        }
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d =
        rpc_sandbox_methods[data[0] % rpc_sandbox_methods_count].request;
    size--;
    uint8_t *buf = fuzz_dup(data + 1, size);
    if (!buf)
        abort();

    se_err err;
    se_err_clear(&err);
    int rc = pbcheck_message(d, size ? buf : NULL, size, &err);
    FUZZ_CHECK(rc == 0 || rc == -SE_INVALID);
    bool nul = false, malformed = false, bad_number = false;
    if (rc < 0) {
        FUZZ_CHECK(err.code == SE_INVALID && err.msg[0]);
        for (const char *p = err.msg; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
        nul = strstr(err.msg, ": contains a NUL byte") != NULL;
        malformed = strncmp(err.msg, "not a valid ", 12) == 0;
        FUZZ_CHECK(nul != malformed);
        /* The one refusal stricter than protobuf-c: not "malformed" below;
         * the walk stops there, before any NUL further on. */
        bad_number = strstr(err.msg, ": a bad field number at byte ") != NULL;
        if (bad_number)
            malformed = false;
    }

    n_blocks = 0;
    blocks_overflow = false;
    ProtobufCAllocator rec = {.alloc = rec_alloc, .free = rec_free};
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &rec, size, buf);
    if (m) {
        if (malformed)
            fprintf(stderr, "protobuf-c unpacks what the walk refused: %s\n", err.msg);
        FUZZ_CHECK(!malformed);
        if (!blocks_overflow) {
            qsort(blocks, n_blocks, sizeof(blocks[0]), block_cmp);
            if (any_cut(m))
                FUZZ_CHECK(nul || bad_number);
        }
        protobuf_c_message_free_unpacked(m, &rec);
    }
    free(buf);
    return 0;
}
