/*
 * model: step helpers on top of the codec: reading the few fields the node
 * decides on straight from stored JSON (so that even a step the codec rejects
 * can be judged), patching the fields the node owns into the stored object
 * (every other key, known or not, keeps its value), parameter merging and
 * validation.  Pure: no libuv.
 */
#ifndef WF_MODEL_H
#define WF_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wf/codec.h"
#include "wf/util.h"

/* 1 for SUCCEEDED, FAILED, CANCELED, SKIP, REFUSE, AUDITING, SCHEDULE_FAILED:
 * statuses the node never acts on (docs/protocol.md §4). */
int wf_status_is_final(int status);
const char *wf_status_name(int status);

/* What the node reads before anything else.  status is -1 when the status
 * is missing or not a known name/number; node is "" when unassigned.
 * Pointers borrow from obj. */
typedef struct wf_step_head_s {
  const char *node;
  int status;
  int64_t start_at;
} wf_step_head_t;
void wf_step_head(const json_t *obj, wf_step_head_t *out);

/* The same from the stored bytes, without a JSON tree (model/headscan.c):
 * 1 with *out filled (node copied into nodebuf, nodecap bytes) when the
 * bytes are certainly a JSON object that jansson would accept and
 * wf_step_head would read the same way; 0 when unsure (escapes, non-ASCII,
 * big numbers, deep nesting, a repeated status key, invalid JSON): parse
 * and call wf_step_head then. */
int wf_step_head_scan(const char *p, size_t n, wf_step_head_t *out, char *nodebuf,
                      size_t nodecap);

/* The fields the node owns.  A field is written only if its flag is set. */
typedef struct wf_step_patch_s {
  int status;              /* always written */
  int set_start_at, set_end_at, set_message;
  int64_t start_at, end_at;
  const char *message;
  const wf_kv_t *response; /* merged into status.response */
  size_t nresponse;
  const char *drop_prefix; /* NULL, or: status.response keys starting with it are
                              removed before the merge (a new run's claim drops
                              the outputs of an earlier run) */
  int64_t update_at;       /* always written */
} wf_step_patch_t;

/* Applies p to obj (a stored step object, modified in place): status.status
 * (as the upper-case name), the flagged status fields, status.response merged
 * key by key, and update_at.  A missing or non-object "status"/"response" is
 * replaced by an object.  Returns 0, or -1 if obj is not an object. */
int wf_step_apply_patch(json_t *obj, const wf_step_patch_t *p);

/* Splits "name@version" (version "" when there is no '@'; only the first two
 * parts count, like the original).  Returns malloc'd strings. */
void wf_action_ref_split(const char *ref, char **name, char **version);

/* An ordered, growable list of owned key/value strings (later set wins). */
typedef struct wf_params_s {
  wf_kv_t *kv;
  size_t n, cap;
} wf_params_t;
void wf_params_init(wf_params_t *p);
void wf_params_finish(wf_params_t *p);
void wf_params_set(wf_params_t *p, const char *key, const char *value);
const char *wf_params_get(const wf_params_t *p, const char *key);

/*
 * Merges run params, later wins (docs/protocol.md §4): the action's non-empty
 * defaults < the pipeline's `with` (pipeline may be NULL) < the outputs of
 * the pipeline run's earlier steps (offers, may be NULL; see wf/outputs.h)
 * < the step's `with`.  Then checks that every required run param is
 * present and non-empty and that every key of the action, the pipeline and
 * the step is a valid environment name (an offer's "<step name>.NAME" is
 * not one, and is passed on as it is).  Returns 0, or -1 with a malloc'd
 * message in *err ("validate run params error, required param A,required
 * param B", like the original).
 */
int wf_params_merge(const Wf__Action *action, const Wf__Pipeline *pipeline,
                    const wf_params_t *offers, const Wf__Step *step, wf_params_t *out,
                    char **err);

/* The action's runner_params with non-empty values, as borrowed kvs
 * (caller frees the array only). */
wf_kv_t *wf_action_runner_params(const Wf__Action *action, size_t *n);

#endif
