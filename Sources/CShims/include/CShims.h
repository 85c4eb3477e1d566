#ifndef FEERECON_CSHIMS_H
#define FEERECON_CSHIMS_H
#include <curl/curl.h>

/// Non-variadic wrappers around libcurl's variadic option and info calls, which Swift cannot call.
CURLcode feerecon_curl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode feerecon_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode feerecon_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode feerecon_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode feerecon_curl_easy_setopt_write_function(CURL *handle, CURLoption option,
    size_t (*callback)(char *, size_t, size_t, void *));
CURLcode feerecon_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode feerecon_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode feerecon_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode feerecon_curl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLMcode feerecon_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value);
CURLSHcode feerecon_curl_share_setopt_long(CURLSH *handle, CURLSHoption option, long value);

/// Names the calling thread (visible in top, gdb and crash reports); a no-op where unsupported.
void feerecon_set_current_thread_name(const char *name);

#endif
