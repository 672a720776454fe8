#ifndef FUNDUS_CPOSTGRES_SHIM_H
#define FUNDUS_CPOSTGRES_SHIM_H
#include <libpq-fe.h>
#endif
