/*
 * step-view: a stored step's fields as wfctl shows them (pure).  get's
 * table, describe's model and the status lines of logs, run and cancel all
 * read the same few fields the same way: a missing field is "", a missing
 * status is PENDDING (the original's default), status names in upper case.
 */
#include <string.h>

#include "wf/codec.h"
#include "wf/util.h"
#include "wfctl-internal.h"

const char *wf__jstr(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

char *wf__status_name(const json_t *step) {
  json_t *st = json_object_get(json_object_get(step, "status"), "status");
  if (json_is_integer(st)) {
    const char *n = wf_enum_name(&wf__step__status__descriptor, (int)json_integer_value(st));
    return wf_strdup(n ? n : "UNKNOWN");
  }
  if (!json_is_string(st)) return wf_strdup("PENDDING");
  char *s = wf_strdup(json_string_value(st));
  for (char *p = s; *p; p++)
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
  return s;
}

int wf__status_complete(const char *s) {
  static const char *const done[] = {"SUCCEEDED", "FAILED", "CANCELED", "SKIP", "REFUSE", NULL};
  for (const char *const *d = done; *d; d++)
    if (strcmp(s, *d) == 0) return 1;
  return 0;
}

const char *wf__step_message(const json_t *step) {
  return wf__jstr(json_object_get(step, "status"), "message");
}

const char *wf__step_node(const json_t *step) {
  return wf__jstr(json_object_get(step, "status"), "scheduled_node");
}
