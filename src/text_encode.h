/*
 * The debug=1 legacy text heap profile (gperftools' format as Go's
 * runtime/pprof writes it, with @ heap_v2/<rate> so that google/pprof and
 * jeprof both read it as Poisson sampling), followed by MAPPED_LIBRARIES:
 * and a copy of /proc/self/maps so readers can build mappings.
 */
#ifndef HP_TEXT_ENCODE_H
#define HP_TEXT_ENCODE_H

#include "heapprof.h"
#include "internal.h"
#include "profile.h"

/*
 * Write d as text to sink. Rows are pre-inverted (hp_text_preinvert) so
 * that a reader's legacy scaling reproduces d's unbiased values. maps_path
 * is the file copied after MAPPED_LIBRARIES: (NULL = /proc/self/maps).
 * Runs inside the fence. 0, HEAPPROF_ENOMEM or HEAPPROF_EIO (sink failed).
 */
HP_HIDDEN int hp_text_encode(const struct hp_profile_data *d,
                             const struct heapprof_sink *sink,
                             const char *maps_path);

/*
 * The row (*c_in, *s_in) to print so that pprof's scaleHeapSample at rate
 * gives back about (c_out, s_out): jemalloc's prof_do_unbias inversion,
 * rounded to integers pprof accepts (count >= 1 whenever bytes > 0).
 */
HP_HIDDEN void hp_text_preinvert(int64_t c_out, int64_t s_out, uint64_t rate,
                                 int64_t *c_in, int64_t *s_in);

/* pprof's scaleHeapSample (profile/legacy_profile.go), for tests. */
HP_HIDDEN void hp_text_scale(int64_t count, int64_t size, uint64_t rate,
                             int64_t *c_out, int64_t *s_out);

#endif
