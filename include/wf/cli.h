/*
 * cli: what workflow-node's and wfctl's command lines share (etcd endpoint
 * lists, ids), and wfctl's entry point and its testable pieces.  Only cli/
 * and tests include this.
 */
#ifndef WF_CLI_H
#define WF_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wf/model.h"

/*
 * Splits a comma-separated endpoint list (spaces around items ignored) and
 * checks each item is http://host:port or https://host:port (host a name, IPv4 or [IPv6]; port
 * 1..65535; one trailing '/' is dropped).  On success *out is a malloc'd
 * NULL-terminated array of malloc'd strings (free with wf_argv_free) and *n
 * its length; returns 0.  Returns -1 with a reason in why ("\"x\" is not an
 * http://host:port URL") and *out untouched.
 */
int wf_cli_parse_etcd(const char *list, char ***out, size_t *n, char *why, size_t whylen);

/* A new globally unique id in the xid format the original uses for user
 * steps and pipelines: 12 bytes (seconds, machine, pid, counter) as 20
 * lowercase base32hex characters, NUL-terminated. */
void wf_cli_xid(char out[21]);

/* 1 if key is usable as the last segment of an etcd key and as a file name:
 * non-empty, at most 200 bytes, no '/', not "." or "..", no control bytes. */
int wf_cli_name_ok(const char *key);

/* Kinds of object `wfctl apply` stores. */
enum wf_cli_kind { WF_CLI_ACTION, WF_CLI_PIPELINE, WF_CLI_STEP };

/*
 * Prepares one `wfctl apply` document for storage: checks `kind`, removes it,
 * fills the defaults (pipeline id and namespace, step key, create_at, status,
 * create_type USER for a step with no pipeline_id, status.scheduled_node from
 * `node` when the document has none), turns YAML-typed numbers into strings
 * where the schema wants strings, and validates the result with the codec.
 * doc is modified in place (borrowed).  On success returns 0 with *etcd_key
 * (P/workflow/...) and *label ("step/<key>", "action/<name>@<version>",
 * "pipeline/<ns>/<id>") malloc'd; on failure -1 with err naming the field.
 * The caller prefixes err with the document number.
 */
int wf_cli_apply_prepare(json_t *doc, const char *prefix, const char *node,
                         enum wf_cli_kind *kind, char **etcd_key, char **label, char *err,
                         size_t errlen);

/*
 * v (borrowed) as one YAML document, malloc'd, ending in a newline; NULL if
 * v is NULL or nests absurdly deep.  Object keys keep their order (the order
 * `-o json` prints), empty objects and arrays are `{}` and `[]`, multi-line
 * strings are literal blocks where YAML allows, and every string that a YAML
 * 1.1 reader would type as something else ("8080", "1.21", "yes", "null",
 * "", "2026-01-02") is quoted, so reading the text back gives v again.
 */
char *wf_cli_yaml_dump(const json_t *v);

/*
 * What the earlier steps of a step's pipeline run offer it (docs/protocol.md
 * §4, "Step outputs"), as describe.c gathered them with wf/outputs.h: the
 * run's stored steps fed to wf_offers_add, then wf_offers_finish.  values
 * and origins hold the same names (NAME and <step name>.NAME); origins maps
 * each to the name (else the key) of the step whose value won.  error, when
 * set, is why they could not be gathered (a bound of wf/outputs.h): the node
 * would fail the step with it, and values and origins are not used.
 */
typedef struct wf_cli_offers_s {
  const wf_params_t *values;
  const wf_params_t *origins;
  const char *error;
} wf_cli_offers_t;

/*
 * What `wfctl describe` shows about a step, as a new JSON object:
 *   key, status, node, action, runner (when the action is known),
 *   notes: [text...]: what could not be known or will fail (action not in
 *          etcd, pipeline missing, a value that does not decode, offers
 *          over their bounds);
 *   step: the stored object, every field, with the values of secret params
 *         in `with` and of secret outputs in status.response replaced by
 *         "******", and a secret param's value masked inside the others;
 *   params: [{name, value, from, secret[, output_of]}...]: merged as the
 *          node merges them (wf_params_merge: action defaults < pipeline
 *          with < outputs of earlier steps < step with); from is "action
 *          default", "pipeline", "output of step <name>" (output_of: the
 *          step's name) or "step"; secret values "******", and a secret
 *          param's value masked inside the other values, as the node masks
 *          its logs; absent when the step does not decode;
 *   outputs_merged: true when offers took part in the merge (absent else);
 *   params_error: the merge's validation message, when it fails;
 *   timeline: create_at, start_at, end_at, update_at (Unix ms, when set),
 *          waited_ms (start - create), ran_ms (end - start) or running_ms
 *          (now_ms - start, while not complete).
 * step, action and pipeline are stored values (borrowed); action and
 * pipeline NULL when not found.  offers (borrowed) NULL when the run was not
 * read (not a pipeline step).  A param is secret when its name matches one
 * of mask_globs (comma-separated globs, see wf_mask_name_matches) or the
 * action marks it `secret: true`, as the node decides.
 */
json_t *wf_cli_describe(const json_t *step, const json_t *action, const json_t *pipeline,
                        const wf_cli_offers_t *offers, const char *mask_globs, int64_t now_ms);

/* The model above as text for people: a header, the fields as YAML, a
 * params table and the timeline in local time (TZ) with durations.
 * Malloc'd. */
char *wf_cli_describe_text(const json_t *model);

/* ---- reading a step's log from its node (docs/protocol.md §6.1) ----------------
 *
 * The request target for a step's log: "/v1/steps/<key>/log", the key one
 * percent-encoded path segment (every byte but A-Z a-z 0-9 - . _ ~ as %XX;
 * a key of dots only entirely, so it is never a dot segment), then
 * "?follow=1" when follow, and "offset=N" when offset > 0.  Malloc'd. */
char *wf_cli_log_target(const char *key, int follow, int64_t offset);

/* The `endpoint` of a node record (value, len bytes, borrowed) as an origin
 * for wf/http.h: "http://host:port" or "https://host:port" (one trailing
 * '/' dropped; no path).  Returns 0 with *origin malloc'd; 1 when the
 * record has no endpoint (absent, null or ""); -1 with why when the record
 * is not a JSON object or the endpoint is not such a URL. */
int wf_cli_node_endpoint(const char *value, size_t len, char **origin, char *why,
                         size_t whylen);

/* Reads a secret from a file (a password, a bearer token): its content with
 * one trailing "\n" or "\r\n" stripped, what `echo "$X" > file` writes.
 * Refused, with why (naming the file, never the content): unreadable, a
 * file over 4096 bytes (as the agent's password file), empty, a NUL byte,
 * and with printable set any control character (the value goes into an
 * HTTP header).  Returns 0 with *out malloc'd (wipe it before freeing), or
 * -1. */
int wf_cli_read_secret(const char *path, int printable, char **out, char *why,
                       size_t whylen);

/* What a node's answer to a log request means. */
enum wf_cli_log_answer {
  WF_CLI_LOG_OK,     /* 200: the body is the log */
  WF_CLI_LOG_RETRY,  /* 5xx, 429: ask again later */
  WF_CLI_LOG_FAIL,   /* anything else: say why and stop */
};
/* Classifies status and, for RETRY and FAIL, writes the sentence for people
 * into msg: "node N refused the log: token missing or wrong (--token-file)"
 * (401), "node N has no log for step K" (404), "node N is busy (HTTP 503)",
 * "node N answered HTTP S for the log of step K".  body (may be NULL) is
 * the start of the answer's body, added when it says something. */
enum wf_cli_log_answer wf_cli_log_answer(int status, const char *node, const char *key,
                                         const char *body, char *msg, size_t msglen);

/* wfctl: returns the process exit code (0 ok, 1 failure, 2 usage). */
int wf_wfctl_main(int argc, char **argv);

#endif
