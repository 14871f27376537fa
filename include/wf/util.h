/*
 * util: small pure helpers shared by every layer: logging, time, base64,
 * error codes, a string-keyed hash map and capped exponential backoff.
 * Nothing here touches libuv (util/ and model/ are testable without a loop).
 */
#ifndef WF_UTIL_H
#define WF_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors --------------------------------------------------------------
 * Functions return 0 or a negative code.  Transport errors are libuv's UV_E*
 * codes (all > -4096 on Linux); protocol outcomes use the WF_E* codes below,
 * which sit far below libuv's range so the two never collide. */
enum {
  WF_EPROTO = -20001,   /* the peer sent bytes that break its protocol */
  WF_EHTTP = -20002,    /* the peer answered with a non-2xx HTTP status */
  WF_EETCD = -20003,    /* etcd answered with an error object */
  WF_ECOMPACTED = -20004, /* etcd: the revision asked for is compacted */
  WF_ETOOBIG = -20005,  /* a bounded buffer would overflow */
  WF_ECLOSED = -20006,  /* the object was closed while the request was queued */
  WF_ETLS = -20007,     /* TLS failed: certificate rejected, alert, not TLS (see http.h) */
};
/* Text for any code above (falls back to uv_strerror-like text via strerror). */
const char *wf_strerror(int err);

/* ---- logging -------------------------------------------------------------
 * Logs go to stderr, one line each, text or JSON.  A line about a step names
 * it (`step` argument, may be NULL). */
enum wf_log_level { WF_LOG_DEBUG, WF_LOG_INFO, WF_LOG_WARN, WF_LOG_ERROR };
void wf_log_setup(enum wf_log_level min, int json);
int wf_log_enabled(enum wf_log_level lvl);
int wf_log_level_parse(const char *s, enum wf_log_level *out); /* 0 ok, -1 bad */
void wf_log(enum wf_log_level lvl, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void wf_logv(enum wf_log_level lvl, const char *step, const char *fmt, va_list ap);
#define wf_debug(step, ...) \
  do { if (wf_log_enabled(WF_LOG_DEBUG)) wf_log(WF_LOG_DEBUG, step, __VA_ARGS__); } while (0)
#define wf_info(step, ...) wf_log(WF_LOG_INFO, step, __VA_ARGS__)
#define wf_warn(step, ...) wf_log(WF_LOG_WARN, step, __VA_ARGS__)
#define wf_error(step, ...) wf_log(WF_LOG_ERROR, step, __VA_ARGS__)

/* ---- time ---------------------------------------------------------------- */
int64_t wf_now_ms(void);  /* wall clock, Unix milliseconds (what the Go original stores) */
uint64_t wf_mono_ms(void); /* monotonic milliseconds, for durations */

/* ---- memory ---------------------------------------------------------------
 * Allocation failure is fatal (abort with a message): the agent's memory is
 * bounded by design, so running out means the machine is, and limping on
 * would lose steps silently. */
void *wf_malloc(size_t n);
void *wf_calloc(size_t n, size_t size);
void *wf_realloc(void *p, size_t n);
char *wf_strdup(const char *s);
char *wf_strndup(const char *s, size_t n);
/* Frees a NULL-terminated array of malloc'd strings and the array (NULL is a no-op). */
void wf_strv_free(char **v);
char *wf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- growable byte buffer with a hard cap ------------------------------------ */
typedef struct wf_buf_s {
  char *data;
  size_t len;
  size_t cap;
  size_t max;   /* hard bound; appends past it fail with WF_ETOOBIG */
} wf_buf_t;
void wf_buf_init(wf_buf_t *b, size_t max);
void wf_buf_finish(wf_buf_t *b);          /* frees data; b may be reused after init */
int wf_buf_append(wf_buf_t *b, const void *p, size_t n); /* 0 or WF_ETOOBIG; keeps a NUL after data */
int wf_buf_printf(wf_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wf_buf_consume(wf_buf_t *b, size_t n); /* drop n bytes from the front */
void wf_buf_reset(wf_buf_t *b);             /* len = 0, keeps memory */

/* ---- base64 (standard alphabet, padded; what etcd's gateway uses) ----------- */
size_t wf_b64_enc_len(size_t n);  /* without the NUL */
/* Writes the NUL-terminated encoding into out (wf_b64_enc_len(n)+1 bytes). */
void wf_b64_encode(const void *in, size_t n, char *out);
/* Returns a malloc'd NUL-terminated buffer and its length, or NULL on bad input. */
char *wf_b64_decode(const char *in, size_t n, size_t *out_len);

/* ---- string-keyed hash map (chained, grows by doubling) ---------------------
 * Keys are copied; values are borrowed pointers the caller owns. */
typedef struct wf_map_entry_s wf_map_entry_t;
typedef struct wf_map_s {
  wf_map_entry_t **slots;
  size_t nslots;
  size_t count;
} wf_map_t;
void wf_map_init(wf_map_t *m);
void wf_map_finish(wf_map_t *m);   /* frees entries (not the values) */
void *wf_map_get(const wf_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *wf_map_put(wf_map_t *m, const char *key, void *value);
void *wf_map_del(wf_map_t *m, const char *key);  /* returns the removed value or NULL */
/* Iteration: it = NULL to start; returns NULL at the end.  The map must not
 * change during iteration except through wf_map_del of the current key. */
typedef struct wf_map_iter_s { size_t slot; wf_map_entry_t *next; } wf_map_iter_t;
void wf_map_iter_init(wf_map_iter_t *it);
int wf_map_iter_next(const wf_map_t *m, wf_map_iter_t *it, const char **key, void **value);

/* ---- capped exponential backoff with full jitter ----------------------------- */
typedef struct wf_backoff_s {
  uint64_t base_ms, max_ms;
  unsigned attempt;
} wf_backoff_t;
void wf_backoff_init(wf_backoff_t *b, uint64_t base_ms, uint64_t max_ms);
uint64_t wf_backoff_next(wf_backoff_t *b);  /* delay for the next attempt */
void wf_backoff_reset(wf_backoff_t *b);

/* ---- key/value pairs ------------------------------------------------------------
 * A borrowed key and value, the currency of params, runner params and
 * response keys between model/, engine/ and the runners. */
typedef struct wf_kv_s {
  const char *key;
  const char *value;
} wf_kv_t;
/* The value of key in kv[0..n) (later entries win, like every merge in the
 * node), or NULL if absent.  Borrowed from kv. */
const char *wf_kv_get(const wf_kv_t *kv, size_t n, const char *key);

/* ---- small string helpers ------------------------------------------------------ */
/* Splits a command list: a value starting with '[' is a JSON array of strings,
 * anything else is comma-separated like the original.  Returns a malloc'd
 * NULL-terminated argv (free with wf_argv_free) or NULL with err filled. */
char **wf_argv_parse(const char *s, char *err, size_t errlen);
void wf_argv_free(char **argv);
/* 1 if name matches [A-Za-z_][A-Za-z0-9_]* */
int wf_env_name_valid(const char *name);

/* ---- durations and sizes (flag values such as --log-retention 7d) -------------
 * Both take a whole number, no sign, no space, no fraction, and refuse a value
 * whose result would overflow.  They return 0 with *out set, or -1 with *out
 * untouched (as wf_log_level_parse: util/ has no libuv codes); "0" is accepted
 * (the callers read it as "off").
 *
 * wf_parse_duration_ms: a number of seconds ("3600"), or a number with one
 * lower-case unit: s (seconds), m (minutes), h (hours), d (days of 24 h),
 * w (weeks).  "90s", "30m", "12h", "7d", "2w".  No "M" (month or minute?), no
 * compound forms ("1h30m").
 *
 * wf_parse_size_bytes: a number of bytes ("1048576", also "512B"), or a number
 * with a binary unit: K, M, G or T (either case), alone or as Ki/Mi/Gi/Ti or
 * KiB/MiB/GiB/TiB; every form is a power of 1024 ("512K" = "512KiB" = 524288).
 * "KB", "MB", "GB", "TB" are refused, since they read as powers of 1000 to
 * some and of 1024 to others. */
int wf_parse_duration_ms(const char *s, int64_t *out);
int wf_parse_size_bytes(const char *s, uint64_t *out);

#endif
