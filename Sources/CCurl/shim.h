#ifndef FEERECON_CCURL_SHIM_H
#define FEERECON_CCURL_SHIM_H
#include <curl/curl.h>
#endif
