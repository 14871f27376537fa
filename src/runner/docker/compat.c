/*
 * compat: the engines behind the Docker Engine API.  dockerd is the
 * reference; `podman system service` serves the same API on a unix socket
 * and the runner drives it unchanged, except where Podman answers
 * differently.  This file tells the two apart (GET /version) and holds the
 * pure half of every difference, so that each is written down once and
 * unit-tested without an engine (test/runner/docker/test-docker-unit.c).
 * docs/docker.md, "Podman", lists the differences and where each is
 * handled.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

const char *wf_docker_engine_name(enum wf_docker_engine e) {
  return e == WF_DOCKER_ENGINE_PODMAN ? "Podman" : "Docker";
}

/* Compares "1.41"-style versions numerically ("1.9" < "1.41"). */
int wf_docker_api_cmp(const char *a, const char *b) {
  long amaj = strtol(a, (char **)&a, 10), bmaj = strtol(b, (char **)&b, 10);
  long amin = *a == '.' ? strtol(a + 1, NULL, 10) : 0;
  long bmin = *b == '.' ? strtol(b + 1, NULL, 10) : 0;
  if (amaj != bmaj) return amaj < bmaj ? -1 : 1;
  return amin < bmin ? -1 : amin > bmin;
}

static void copy_str(char *out, size_t outlen, json_t *s) {
  const char *v = json_string_value(s);
  snprintf(out, outlen, "%s", v ? v : "");
}

int wf_docker_version_parse(const char *body, size_t len, wf_docker_version_t *v, char *why,
                            size_t whylen) {
  json_t *root = json_loadb(body, len, 0, NULL), *comps;
  int rc = -1;

  memset(v, 0, sizeof *v);
  if (!json_is_object(root)) {
    snprintf(why, whylen, "GET /version: the answer is not a JSON object");
    goto out;
  }
  /* Podman names itself only in Components ("Podman Engine"); its top-level
   * Version is its own too, but so is dockerd's. */
  comps = json_object_get(root, "Components");
  for (size_t i = 0; json_is_array(comps) && i < json_array_size(comps); i++) {
    json_t *c = json_array_get(comps, i);
    const char *name = json_string_value(json_object_get(c, "Name"));
    if (name && strcmp(name, "Podman Engine") == 0) {
      v->engine = WF_DOCKER_ENGINE_PODMAN;
      copy_str(v->version, sizeof v->version, json_object_get(c, "Version"));
    }
  }
  if (!v->version[0]) copy_str(v->version, sizeof v->version, json_object_get(root, "Version"));
  copy_str(v->api, sizeof v->api, json_object_get(root, "ApiVersion"));
  copy_str(v->min_api, sizeof v->min_api, json_object_get(root, "MinAPIVersion"));
  if (!v->api[0] && v->engine == WF_DOCKER_ENGINE_PODMAN) {
    /* An answer without ApiVersion is libpod's shape, not Docker's: its
     * MinAPIVersion ("4.0.0") is then libpod's own API, not a Docker API
     * version.  Podman 4 serves Docker API 1.41 on the compat endpoints
     * (its Docker-shaped answer says so when it has one). */
    if (strtol(v->version, NULL, 10) >= 4) {
      snprintf(v->api, sizeof v->api, "%s", WF_DOCKER_API);
      v->min_api[0] = '\0';
      v->api_assumed = 1;
    } else {
      snprintf(why, whylen,
               "GET /version: Podman %s names no Docker API version; this agent needs API %s "
               "(Podman 4 or later)",
               v->version[0] ? v->version : "?", WF_DOCKER_API);
      goto out;
    }
  }
  if (!v->api[0]) {
    snprintf(why, whylen, "GET /version: no ApiVersion in the answer");
  } else if (wf_docker_api_cmp(v->api, WF_DOCKER_API) < 0 ||
             (v->min_api[0] && wf_docker_api_cmp(v->min_api, WF_DOCKER_API) > 0)) {
    snprintf(why, whylen, "engine speaks API %s to %s, this agent needs %s",
             v->min_api[0] ? v->min_api : "?", v->api, WF_DOCKER_API);
  } else {
    rc = 0;
  }
out:
  json_decref(root);
  return rc;
}

int wf_docker_name_conflict(int status, const char *msg) {
  /* dockerd: 409.  Podman 4.3: 500 "... the container name "x" is already
   * in use by <id>. You have to remove that container ...". */
  return status == 409 || (status == 500 && msg && strstr(msg, "is already in use") != NULL);
}

int wf_docker_image_missing(int status, const char *msg) {
  /* dockerd: "No such image: x:1"; Podman: "no such image: docker.io/x:1: image not known". */
  return status == 404 && msg && strncasecmp(msg, "No such image", 13) == 0;
}

int wf_docker_podman_limits_ignored(const char *body, size_t len) {
  json_t *root = json_loadb(body, len, 0, NULL), *opts;
  const char *cg = json_string_value(json_object_get(root, "CgroupVersion"));
  /* Podman 4.3.1 says so in a field of its own ("Rootless": true; its
   * MemoryLimit stays true all the same); dockerd, and later Podmans, in
   * SecurityOptions. */
  int rootless = json_is_true(json_object_get(root, "Rootless"));
  opts = json_object_get(root, "SecurityOptions");
  for (size_t i = 0; json_is_array(opts) && i < json_array_size(opts); i++) {
    const char *o = json_string_value(json_array_get(opts, i));
    if (o && strcmp(o, "name=rootless") == 0) rootless = 1;
  }
  /* Podman's own words for it (its CLI only): "Resource limits are not
   * supported and ignored on cgroups V1 rootless systems". */
  int ignored = rootless && cg && strcmp(cg, "1") == 0;
  json_decref(root);
  return ignored;
}

int wf_docker_podman_start_exit(const char *body, size_t len) {
  json_t *root = json_loadb(body, len, 0, NULL);
  const char *cause = json_string_value(json_object_get(root, "cause"));
  int code = -1;
  /* libpod's define.ErrOCIRuntimeNotFound and ErrOCIRuntimePermissionDenied,
   * which `podman run` itself turns into 127 and 126, as a shell would. */
  if (cause && strstr(cause, "command that was not found"))
    code = 127;
  else if (cause && strstr(cause, "permission denied"))
    code = 126;
  json_decref(root);
  return code;
}
