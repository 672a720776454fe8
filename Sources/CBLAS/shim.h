#ifndef FUNDUS_CBLAS_SHIM_H
#define FUNDUS_CBLAS_SHIM_H
// Debian's libopenblas-dev puts cblas.h under the pthread variant's include folder (pkg-config openblas).
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif
