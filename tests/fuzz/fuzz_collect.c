/* Files back, the agent's side: the records the jail's pid 1 writes on its
 * pipe (agent/collect.c, compiled in here), hostile to the agent. The
 * first input byte sets the caps (files 1..8, bytes 0..2^15 in 128 steps
 * of the second), the third the size of the pieces the rest arrives in
 * (as reads of a pipe would cut it). Invariants: the reader never takes
 * more files or bytes than the caps, only valid paths in strictly
 * increasing order, never more bytes for a file than it announced; once
 * it refuses, it refuses for good. */
#include <string.h>

#include "agent/collect.c"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint64_t max_files = 1 + (data[0] & 7);
    uint64_t max_bytes = (uint64_t)data[1] << 7;
    size_t piece = 1 + data[2];
    data += 3;
    size -= 3;
    uint8_t *in = fuzz_dup(data, size);
    if (!in)
        return 0;
    agent_collect_rd *rd = malloc(sizeof(*rd));
    if (!rd) {
        free(in);
        return 0;
    }
    agent_collect_rd_init(rd, max_files, max_bytes);
    char last[AGENT_MAX_PATH + 1] = "";
    uint64_t files = 0, bytes = 0, left = 0;
    bool refused = false;
    size_t off = 0;
    while (off < size && !refused) {
        size_t n = size - off < piece ? size - off : piece;
        if (n > sizeof(rd->buf) - rd->len)
            n = sizeof(rd->buf) - rd->len;
        FUZZ_CHECK(n > 0); /* a whole record always fits: the buffer never fills */
        memcpy(rd->buf + rd->len, in + off, n);
        rd->len += n;
        off += n;
        agent_collect_piece pc;
        int r;
        while ((r = agent_collect_next(rd, &pc)) == 1) {
            FUZZ_CHECK(pc.consumed > 0 && pc.consumed <= rd->len);
            if (pc.path) {
                FUZZ_CHECK(left == 0);
                FUZZ_CHECK(agent_path_validate(pc.path, NULL) == 0);
                FUZZ_CHECK(files == 0 || strcmp(pc.path, last) > 0);
                snprintf(last, sizeof(last), "%s", pc.path);
                files++;
                bytes += pc.size;
                left = pc.size;
                FUZZ_CHECK(files <= max_files && bytes <= max_bytes);
            } else if (pc.data) {
                FUZZ_CHECK(pc.len > 0 && pc.len <= AGENT_COLLECT_CHUNK && pc.len <= left);
                FUZZ_CHECK(pc.data >= rd->buf && pc.data + pc.len <= rd->buf + rd->len);
                left -= pc.len;
            }
            agent_collect_consume(rd, pc.consumed);
        }
        if (r < 0) {
            refused = true;
            FUZZ_CHECK(rd->bad && rd->why[0]);
            agent_collect_piece again;
            FUZZ_CHECK(agent_collect_next(rd, &again) == -1);
        }
    }
    FUZZ_CHECK(rd->files == files && rd->left == left);
    free(rd);
    free(in);
    return 0;
}
