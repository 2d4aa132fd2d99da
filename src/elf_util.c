/*
 * ELF helpers of the bottom layer: a loaded object's executable segments
 * and GNU build id, from its program headers in memory (dl_iterate_phdr)
 * or from the file on disk. Used by maps.c, retired.c and symbolize.c.
 */
#define _GNU_SOURCE
#include "elf_util.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
hex_encode(const unsigned char *p, size_t n, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    if (n > HP_BUILD_ID_MAX)
        n = HP_BUILD_ID_MAX;
    if (cap < 2 * n + 1) {
        if (cap > 0)
            out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/*
 * Scan a buffer of ELF notes for the first NT_GNU_BUILD_ID named "GNU".
 * Notes are padded to 4 bytes, or 8 in segments aligned to 8 (the layout
 * of .note.gnu.property, which shares a PT_NOTE with the build id).
 */
static int
find_build_id_note(const unsigned char *p, size_t len, size_t align, char *out,
                   size_t cap)
{
    align = align == 8 ? 8 : 4;
    while (len >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, p, sizeof(nh));
        size_t namesz = ((size_t)nh.n_namesz + align - 1) & ~(align - 1);
        size_t descsz = ((size_t)nh.n_descsz + align - 1) & ~(align - 1);
        size_t total = sizeof(nh) + namesz + descsz;
        if (namesz > len || descsz > len || total > len)
            return -1;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp(p + sizeof(nh), "GNU", 4) == 0 && nh.n_descsz > 0) {
            hex_encode(p + sizeof(nh) + namesz, nh.n_descsz, out, cap);
            return 0;
        }
        p += total;
        len -= total;
    }
    return -1;
}

void
hp_elf_phdr_exec_segs(const struct dl_phdr_info *info, struct hp_exec_segs *out)
{
    out->n = 0;
    for (int i = 0; i < info->dlpi_phnum && out->n < HP_EXEC_SEGS_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        out->start[out->n] = info->dlpi_addr + ph->p_vaddr;
        out->limit[out->n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        out->offset[out->n] = ph->p_offset;
        out->n++;
    }
}

int
hp_elf_phdr_build_id(const struct dl_phdr_info *info, char *buf, size_t cap)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        /* Read the note only if a PT_LOAD covers it, i.e. it is mapped. */
        bool mapped = false;
        for (int j = 0; j < info->dlpi_phnum; j++) {
            const ElfW(Phdr) *lp = &info->dlpi_phdr[j];
            if (lp->p_type == PT_LOAD && ph->p_vaddr >= lp->p_vaddr &&
                ph->p_vaddr + ph->p_memsz <= lp->p_vaddr + lp->p_filesz)
                mapped = true;
        }
        if (mapped &&
            find_build_id_note(
                (const unsigned char *)(info->dlpi_addr + ph->p_vaddr),
                ph->p_memsz, ph->p_align, buf, cap) == 0)
            return 0;
    }
    return -1;
}

int
hp_elf_file_build_id(const char *path, char *buf, size_t cap)
{
    int rc = -1;
    unsigned char *notes = NULL;
    ElfW(Phdr) *ph = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ElfW(Ehdr) eh;
    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] !=
            (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
        eh.e_phnum > 4096)
        goto out;
    ph = malloc((size_t)eh.e_phnum * sizeof(*ph));
    if (ph == NULL)
        goto out;
    size_t phlen = (size_t)eh.e_phnum * sizeof(*ph);
    if (pread(fd, ph, phlen, (off_t)eh.e_phoff) != (ssize_t)phlen)
        goto out;
    for (int i = 0; i < eh.e_phnum && rc != 0; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_filesz == 0 ||
            ph[i].p_filesz > (1u << 20))
            continue;
        free(notes);
        notes = malloc(ph[i].p_filesz);
        if (notes == NULL)
            goto out;
        if (pread(fd, notes, ph[i].p_filesz, (off_t)ph[i].p_offset) !=
            (ssize_t)ph[i].p_filesz)
            continue;
        rc = find_build_id_note(notes, ph[i].p_filesz, ph[i].p_align, buf, cap);
    }
out:
    free(notes);
    free(ph);
    close(fd);
    return rc;
}
