/*
 * HEAPPROF_LEAK_REPORT: the leak summary printed at exit (leak_report.c).
 */
#ifndef HP_LEAK_REPORT_H
#define HP_LEAK_REPORT_H

#include "internal.h"

/*
 * Keep a private duplicate of stderr (close-on-exec, numbered 100 or
 * above) for the report, so that a program closing fd 2 before it exits
 * (coreutils do) still gets it. Called at start when the report is on.
 */
HP_HIDDEN void hp_leak_report_prepare(void);

#endif
