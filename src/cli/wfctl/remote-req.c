/*
 * remote-req: the pure parts of reading a step's log from the node that ran
 * it (docs/protocol.md §6.1), which remote.c puts on the loop: the request
 * target, the node record's endpoint, secret files (the bearer token, and
 * the etcd password access.c reads the same way), and what the status of an
 * answer means.  The unit tests call them without a loop (include/wf/cli.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/cli.h"
#include "wf/util.h"

#define SECRET_MAX 4096

static int unreserved(unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

char *wf_cli_log_target(const char *key, int follow, int64_t offset) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(key);
  /* "." and ".." would be dot segments, which a server resolves away. */
  int all_dots = n > 0 && strspn(key, ".") == n;
  char *out = wf_malloc(sizeof "/v1/steps//log?follow=1&offset=" + 3 * n + 24);
  char *o = out;
  o += sprintf(o, "/v1/steps/");
  for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
    if (unreserved(*p) && !all_dots) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  o += sprintf(o, "/log");
  char sep = '?';
  if (follow) {
    o += sprintf(o, "%cfollow=1", sep);
    sep = '&';
  }
  if (offset > 0) sprintf(o, "%coffset=%" PRId64, sep, offset);
  return out;
}

int wf_cli_node_endpoint(const char *value, size_t len, char **origin, char *why,
                         size_t whylen) {
  json_error_t je;
  json_t *rec = json_loadb(value, len, 0, &je);
  int rc = -1;
  if (!json_is_object(rec)) {
    snprintf(why, whylen, "the node record is not a JSON object (%s)",
             rec ? "wrong type" : je.text);
    goto out;
  }
  json_t *ep = json_object_get(rec, "endpoint");
  if (!ep || json_is_null(ep) || (json_is_string(ep) && !json_string_value(ep)[0])) {
    rc = 1;
    goto out;
  }
  if (!json_is_string(ep)) {
    snprintf(why, whylen, "the node record's endpoint is not a string");
    goto out;
  }
  const char *s = json_string_value(ep);
  char **list = NULL;
  size_t n = 0;
  char uwhy[300];
  /* One URL (a list would not be a base URL); wf_cli_parse_etcd checks the
   * same http(s)://host:port shape with its optional trailing '/'. */
  if (strchr(s, ',') || wf_cli_parse_etcd(s, &list, &n, uwhy, sizeof uwhy) != 0 || n != 1) {
    snprintf(why, whylen, "the node record's endpoint \"%.200s\" is not an http://host:port "
             "or https://host:port URL", s);
    wf_argv_free(list);
    goto out;
  }
  *origin = wf_strdup(list[0]);
  wf_argv_free(list);
  rc = 0;
out:
  json_decref(rec);
  return rc;
}

int wf_cli_read_secret(const char *path, int printable, char **out, char *why,
                       size_t whylen) {
  char buf[SECRET_MAX + 1];
  int rc = -1;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whylen, "cannot read \"%.200s\": %s", path, strerror(errno));
    return -1;
  }
  size_t n = fread(buf, 1, sizeof buf, f);
  int rerr = ferror(f);
  fclose(f);
  if (rerr) {
    snprintf(why, whylen, "cannot read \"%.200s\"", path);
    goto out;
  }
  if (n == sizeof buf) {
    snprintf(why, whylen, "\"%.200s\" is longer than %d bytes", path, SECRET_MAX);
    goto out;
  }
  if (n > 0 && buf[n - 1] == '\n') n--;
  if (n > 0 && buf[n - 1] == '\r') n--;
  if (n == 0) {
    snprintf(why, whylen, "\"%.200s\" is empty", path);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch == 0) {
      snprintf(why, whylen, "\"%.200s\" holds a NUL byte", path);
      goto out;
    }
    if (printable && (ch < 0x20 || ch == 0x7f)) {
      snprintf(why, whylen, "\"%.200s\" holds a control character (more than one line?)",
               path);
      goto out;
    }
  }
  *out = wf_strndup(buf, n);
  rc = 0;
out:
  for (volatile char *p = buf; p < buf + sizeof buf; p++) *p = 0;
  return rc;
}

/* The body of an error answer, when it is a short line of text worth
 * showing: ": <text>", else "". */
static void body_note(const char *body, char *out, size_t outlen) {
  out[0] = '\0';
  if (!body) return;
  size_t n = strcspn(body, "\r\n");
  while (n > 0 && body[n - 1] == ' ') n--;
  if (n == 0 || n > 160) return;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)body[i] < 0x20 || body[i] == 0x7f) return;
  snprintf(out, outlen, ": %.*s", (int)n, body);
}

enum wf_cli_log_answer wf_cli_log_answer(int status, const char *node, const char *key,
                                         const char *body, char *msg, size_t msglen) {
  char note[200];
  body_note(body, note, sizeof note);
  if (status == 200) {
    if (msglen) msg[0] = '\0';
    return WF_CLI_LOG_OK;
  }
  if (status == 401) {
    snprintf(msg, msglen, "node %s refused the log: token missing or wrong (--token-file)", node);
    return WF_CLI_LOG_FAIL;
  }
  if (status == 404) {
    snprintf(msg, msglen, "node %s has no log for step %s", node, key);
    return WF_CLI_LOG_FAIL;
  }
  if (status == 429 || status >= 500) {
    snprintf(msg, msglen, "node %s is busy or failing (HTTP %d%s)", node, status, note);
    return WF_CLI_LOG_RETRY;
  }
  snprintf(msg, msglen, "node %s answered HTTP %d for the log of step %s%s", node, status, key,
           note);
  return WF_CLI_LOG_FAIL;
}
