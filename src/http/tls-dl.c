/*
 * http/tls-dl.c: loads libssl and libcrypto with dlopen() when the first
 * https:// origin or TLS listener is created, and fills tls-dl.h's table of
 * functions.
 *
 * Why not at start-up: an agent on plain http:// never needs OpenSSL, and
 * linking it mapped 1.65 MB of pages into every agent (see tls-dl.h).
 *
 * The sonames are the ones of the headers tls.c was compiled against
 * (WF_LIBSSL, WF_LIBCRYPTO from src/meson.build), never a guess at run
 * time: the table's types are those headers' declarations.  RTLD_LOCAL
 * keeps OpenSSL's symbols out of the global namespace; RTLD_NOW fails here,
 * with dlerror()'s text, rather than on a later call.  The handles are kept
 * in statics and never dlclose()d: OpenSSL cannot be unloaded cleanly (its
 * atexit cleanup and thread-local state point into the library).  The load
 * happens once (uv_once), on the thread that creates the first https
 * client or TLS listener, in practice the loop thread at start-up; a
 * failure is remembered and repeated to every later caller.
 */
#define WF__OSSL_NO_REDIRECT
#include "tls-dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

wf__ossl_t wf__ossl;

static uv_once_t load_once = UV_ONCE_INIT;
static void *lib_SSL, *lib_CRYPTO; /* never dlclose()d */
static char load_err[512];         /* "" once everything is loaded */

/* dlopen()s soname into *h; on failure, says which library and why. */
static int open_lib(void **h, const char *soname) {
  const char *why;
  *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (*h) return 0;
  why = dlerror();
  snprintf(load_err, sizeof(load_err), "cannot load OpenSSL (%s) for https://: %s", soname,
           why ? why : "dlopen failed");
  return -1;
}

/* The address of fn in h (from soname), or NULL with the reason set. */
static void *sym(void *h, const char *soname, const char *fn) {
  void *p;
  dlerror(); /* clear a stale error */
  p = dlsym(h, fn);
  if (!p) {
    const char *why = dlerror();
    snprintf(load_err, sizeof(load_err), "cannot load OpenSSL (%s) for https://: no %s: %s",
             soname, fn, why ? why : "NULL address");
  }
  return p;
}

static int load_all(void) {
  /* libssl first: it loads the libcrypto it was built with, which the
   * second dlopen() then only finds. */
  if (open_lib(&lib_SSL, WF_LIBSSL) < 0 || open_lib(&lib_CRYPTO, WF_LIBCRYPTO) < 0) return -1;
#define WF__OSSL_SYM(lib, fn)                                              \
  wf__ossl.fn = (__typeof__(wf__ossl.fn))sym(lib_##lib, WF_LIB##lib, #fn); \
  if (!wf__ossl.fn) return -1;
  WF__OSSL_FUNCS(WF__OSSL_SYM)
#undef WF__OSSL_SYM
  return 0;
}

static void load(void) {
  if (load_all() < 0) memset(&wf__ossl, 0, sizeof(wf__ossl));
}

int wf__ossl_load(char *err, size_t errlen) {
  uv_once(&load_once, load);
  if (!load_err[0]) return 0;
  snprintf(err, errlen, "%s", load_err);
  return -1;
}
