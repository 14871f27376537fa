/*
 * outputs: step outputs, the pipeline's runtime parameters (docs/protocol.md
 * §4, "Step outputs").  Pure: no libuv, no I/O.
 *
 * A step publishes values by writing NAME=value lines (and NAME<<DELIM ...
 * DELIM blocks for values of several lines) to the file WORKFLOW_OUTPUT
 * names, the format of GitHub Actions' GITHUB_OUTPUT.  The node reads that
 * file when the step ends (engine/, on the threadpool), checks it here, and
 * stores the values in the step's status.response under "output.NAME".
 * Later steps of the same pipeline run are offered the values of the
 * earlier steps that SUCCEEDED, as NAME and as <step name>.NAME.
 */
#ifndef WF_OUTPUTS_H
#define WF_OUTPUTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wf/model.h"

#define WF_OUTPUT_MAX_VALUE (64 * 1024)   /* bytes of one value */
#define WF_OUTPUT_MAX_TOTAL (256 * 1024)  /* bytes of all values of one step */
#define WF_OUTPUT_MAX_NAMES 100           /* names of one step */
/* The reader stops here: the values' bound plus room for names, newlines
 * and heredoc delimiters. */
#define WF_OUTPUT_MAX_FILE (WF_OUTPUT_MAX_TOTAL + 64 * 1024)
#define WF_SUMMARY_MAX 1024               /* bytes of WORKFLOW_SUMMARY's line */
/* status.response keys that hold outputs: "output." + NAME.  No runner key
 * has a dot, and the Go API keeps response as a map<string,string>. */
#define WF_OUTPUT_KEY_PREFIX "output."
/* What the offers of all earlier steps may add up to once merged (the
 * environment a process gets is bounded by the kernel, about 2 MiB). */
#define WF_OFFERS_MAX_TOTAL (1024 * 1024)
/* What the collector keeps before the merge (values of earlier steps). */
#define WF_OFFERS_MAX_KEPT (8 * 1024 * 1024)

/* Parses the bytes of an output file.  truncated: 1 when the reader stopped
 * at WF_OUTPUT_MAX_FILE with more to read (the file is too large: an
 * error).  On success returns 0 and sets each NAME in out (a repeated name:
 * the later value wins, as in GitHub Actions).  Otherwise returns -1 and
 * writes into err the rule broken or the line (1-based) that breaks it, e.g.
 * "line 3: \"1X\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)",
 * "line 7: the value of BIG is over 65536 bytes",
 * "line 9: no closing delimiter EOF for LOG (opened on line 4)",
 * "more than 100 names", "the values add up to over 262144 bytes",
 * "the file is over 327680 bytes".  Empty lines are skipped; a line's
 * trailing "\r" is dropped; a NUL byte, and a value that is not UTF-8
 * (status.response is JSON), are errors. */
int wf_outputs_parse(const char *buf, size_t len, int truncated, wf_params_t *out, char *err,
                     size_t errlen);

/* WORKFLOW_SUMMARY's file: its first line, without "\r\n", cut to
 * WF_SUMMARY_MAX bytes on a UTF-8 character boundary, control characters
 * other than tab replaced by spaces.  malloc'd; NULL when the first line is
 * empty. */
char *wf_summary_line(const char *buf, size_t len);

/* A pipeline step's key "<namespace>.<pipeline id>.<stage id>.<step id>"
 * (exactly four dot-separated parts, stage and step ids decimal >= 1). */
typedef struct wf_pipeline_pos_s {
  const char *run;  /* "<namespace>.<pipeline id>." : the run's key prefix ... */
  size_t run_len;   /* ... and its length (with the last dot) */
  int64_t stage;
  int64_t step;
} wf_pipeline_pos_t;
/* 0 and *pos (pointing into key) for a pipeline step's key, else -1. */
int wf_pipeline_pos(const char *key, wf_pipeline_pos_t *pos);

/* Collects what the earlier steps of one pipeline run offer to a step.
 * Feed it every step stored under the run's key prefix, in any order; it
 * keeps those that come before the step (an earlier stage; or the same
 * stage and a lower status.flow_number, when both have one) and ended
 * SUCCEEDED, then merges them in the order (stage, flow_number, step id):
 * a later step's value wins. */
typedef struct wf_offers_s wf_offers_t;

/* key: the consuming step's key (copied); flow: its status.flow_number (0 if
 * it has none).  NULL when key is not a pipeline step's key. */
wf_offers_t *wf_offers_create(const char *key, int64_t flow);
/* One stored step: key without the etcd prefix, step its parsed value
 * (borrowed, read during the call only).  Steps that are not earlier, did
 * not succeed or have no outputs are ignored.  Returns 0, or -1 with err
 * set when what is kept would pass WF_OFFERS_MAX_KEPT. */
int wf_offers_add(wf_offers_t *o, const char *key, const json_t *step, char *err,
                  size_t errlen);
/* The same for a stored value's bytes [p, p + n): the fields the offers need
 * are read with the byte scanner (wf/jscan.h) into a small object, and
 * only a value it declines (escapes, non-ASCII, repeated keys, ...) is parsed
 * whole with jansson; a value that is not a JSON object is ignored.  A big
 * pipeline run's start is mostly this parse (bench part 9). */
int wf_offers_add_bytes(wf_offers_t *o, const char *key, const char *p, size_t n, char *err,
                        size_t errlen);
/* Merges what was kept.  offers gets NAME and <step name>.NAME for every
 * output (the qualified form only for a step name of [A-Za-z0-9_.-]+);
 * origins, when not NULL, gets the same keys, each with the name of the
 * step whose value won.  Returns 0, or -1 with err set when the merged
 * values pass WF_OFFERS_MAX_TOTAL. */
int wf_offers_finish(wf_offers_t *o, wf_params_t *offers, wf_params_t *origins, char *err,
                     size_t errlen);
void wf_offers_destroy(wf_offers_t *o);  /* NULL is a no-op */

/* 1 for a name that changes how programs start rather than what they do
 * (PATH, HOME, IFS, the loader's LD_*, shells' BASH_ENV and SHELLOPTS,
 * interpreters' PYTHONPATH, NODE_OPTIONS, ...).  An output of such a name
 * is offered only as <step name>.NAME: a step must not be able to change,
 * through etcd, how later steps of the run (possibly LOCAL ones, on the
 * host) start.  A step's own `with` may still set them. */
int wf_output_name_guarded(const char *name);

#endif
