#ifndef FUNDUS_CDNNL_SHIM_H
#define FUNDUS_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>
#ifdef __GLIBC__
#include <malloc.h>  // mallopt: TensorMemory.keepFreedMemory
#endif

// DNNL_MEMORY_ALLOCATE and DNNL_MEMORY_NONE are macros over a cast pointer; Swift does not import them.
static inline void *fundus_dnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *fundus_dnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
#endif
