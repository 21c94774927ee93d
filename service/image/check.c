/* Start-up checks of what every image needs, so that a daemon missing its
 * agent or recipe refuses to start instead of failing its first create. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "image/internal.h"
#include "util/cleanup.h"
#include "util/file.h"

int
image_recipe_check(const char *dir, se_err *err)
{
    image_recipe r = {0};
    int rc = image_recipe_load(&r, dir, err);
    image_recipe_free(&r);
    return rc;
}

/* The agent runs as the main process of images whose libc we do not know:
 * it must be a static ELF executable of this machine's class (no program
 * interpreter). */
int
image_agent_check(const char *path, se_err *err)
{
    cleanup_free uint8_t *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, IMAGE_AGENT_CAP, FILE_NOFOLLOW, &data, &len, NULL, err);
    if (rc < 0)
        return rc;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
    if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || (eh->e_type != ET_EXEC && eh->e_type != ET_DYN))
        return se_err_set(err, SE_INVALID, "%s is not a 64-bit ELF executable", path);
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
        (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
        return se_err_set(err, SE_INVALID, "%s: bad ELF program headers", path);
    for (size_t i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, data + eh->e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type == PT_INTERP)
            return se_err_set(err, SE_INVALID,
                              "%s is dynamically linked; the agent must be the static "
                              "safeeval-agent",
                              path);
    }
    return 0;
}
