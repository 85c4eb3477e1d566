#ifndef FEERECON_CLIBPQ_SHIM_H
#define FEERECON_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
