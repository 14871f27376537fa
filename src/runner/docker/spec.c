/*
 * spec: what a DOCKER run asks Docker for, built from the run request alone.
 *
 * The runner params (IMAGE_*, CONTAINER_*), the step's environment and the
 * node's --allow-mount directories become one checked wf__docker_spec_t:
 * the image reference and pull policy, the registry auth header, the
 * container name, and the containers/create body.  Every mistake an
 * operator can make in an action is found here, before anything runs, and
 * named in the error.  Pure: no loop, no I/O (the mounts' resolved paths
 * are checked again at run time, in run.c, because only the file system
 * knows where symlinks lead).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"
#include "wf/util.h"

char *wf__docker_normalize_path(const char *p) {
  size_t n = strlen(p), o = 0, i = 0;
  char *out = wf_malloc(n + 2);
  while (i < n) {
    size_t j;
    while (i < n && p[i] == '/') i++;
    for (j = i; j < n && p[j] != '/'; j++) {}
    if (j == i) break;
    if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') {
      /* Back to the previous '/', which goes too ("/a/b" -> "/a"). */
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if (!(j - i == 1 && p[i] == '.')) {
      out[o++] = '/';
      memcpy(out + o, p + i, j - i);
      o += j - i;
    }
    i = j;
  }
  if (o == 0) out[o++] = '/';
  out[o] = '\0';
  return out;
}

static int under_dir(const char *path, const char *dir) {
  size_t n = strlen(dir);
  if (strcmp(dir, "/") == 0) return 1;
  return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

const char *wf__docker_allowed_by(char *const *allow, size_t n, const char *path) {
  for (size_t i = 0; i < n; i++)
    if (under_dir(path, allow[i])) return allow[i];
  return NULL;
}

static void mounts_free(wf__docker_mount_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].host);
    free(v[i].cont);
    free(v[i].real);
  }
  free(v);
}

/* Parses CONTAINER_MOUNTS ("host:container[:ro|:rw]", comma list) and checks
 * each host path lexically; the resolved check follows at run time. */
static int parse_mounts(char *const *allow, size_t nallow, const char *s,
                        wf__docker_mount_t **out, size_t *nout, char *err, size_t errlen) {
  char *copy = wf_strdup(s), *save = NULL, *tok;
  wf__docker_mount_t *v = NULL;
  size_t n = 0;
  int rc = 0;

  for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *host = tok, *cont, *mode, *norm;
    while (*host == ' ') host++;
    if (!*host) continue;
    cont = strchr(host, ':');
    if (!cont) {
      snprintf(err, errlen, "CONTAINER_MOUNTS: \"%s\" is not host:container[:ro]", host);
      rc = -1;
      break;
    }
    *cont++ = '\0';
    mode = strchr(cont, ':');
    if (mode) *mode++ = '\0';
    if (host[0] != '/' || cont[0] != '/') {
      snprintf(err, errlen, "CONTAINER_MOUNTS: both paths of \"%s:%s\" must be absolute", host,
               cont);
      rc = -1;
      break;
    }
    if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) {
      snprintf(err, errlen, "CONTAINER_MOUNTS: mode \"%s\" of %s is neither ro nor rw", mode,
               host);
      rc = -1;
      break;
    }
    norm = wf__docker_normalize_path(host);
    if (!wf__docker_allowed_by(allow, nallow, norm)) {
      snprintf(err, errlen,
               "CONTAINER_MOUNTS: host path %s is not under an --allow-mount directory%s", host,
               nallow ? "" : " (none is configured)");
      free(norm);
      rc = -1;
      break;
    }
    v = wf_realloc(v, (n + 1) * sizeof *v);
    memset(&v[n], 0, sizeof v[n]);
    v[n].host = norm;
    v[n].cont = wf_strdup(cont);
    v[n].ro = mode && strcmp(mode, "ro") == 0;
    n++;
  }
  free(copy);
  if (rc < 0) {
    mounts_free(v, n);
    return -1;
  }
  *out = v;
  *nout = n;
  return 0;
}

char *wf__docker_container_name(const char *key) {
  size_t n = strlen(key), i;
  int ok_first = (key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z') ||
                 (key[0] >= '0' && key[0] <= '9');
  char *out = wf_malloc(n + 4);
  char *p = out;
  /* The label keeps the real key, and tells two keys that map to the same
   * name apart (as a conflict, run.c). */
  if (!ok_first || n < 2) {
    memcpy(p, "wf-", 3);
    p += 3;
  }
  for (i = 0; i < n; i++) {
    char c = key[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    *p++ = ok ? c : '_';
  }
  *p = '\0';
  return out;
}

/* json_string() refuses invalid UTF-8; say which param carried it. */
static int set_str(json_t *o, const char *key, const char *value, const char *what, char *err,
                   size_t errlen) {
  json_t *s = json_string(value);
  if (!s) {
    snprintf(err, errlen, "docker runner: %s is not valid UTF-8", what);
    return -1;
  }
  json_object_set_new(o, key, s);
  return 0;
}

/* The containers/create body (without Binds). */
static json_t *build_body(const wf_run_req_t *req, const char *node,
                          const wf_docker_image_t *img, char **argv, char *err, size_t errlen) {
  const wf_kv_t *p = req->runner_params;
  size_t np = req->nrunner_params, i;
  const char *workdir = wf_kv_get(p, np, "CONTAINER_WORKDIR");
  const char *user = wf_kv_get(p, np, "CONTAINER_USER");
  const char *network = wf_kv_get(p, np, "CONTAINER_NETWORK");
  const char *memory = wf_kv_get(p, np, "CONTAINER_MEMORY");
  const char *cpus = wf_kv_get(p, np, "CONTAINER_CPUS");
  json_t *spec = json_object(), *host = json_object(), *labels = json_object();
  json_t *env = json_array(), *log = json_object();

  json_object_set_new(spec, "Image", json_string(img->ref));
  if (argv) {
    json_t *cmd = json_array();
    for (i = 0; argv[i]; i++) {
      json_t *s = json_string(argv[i]);
      if (!s) {
        snprintf(err, errlen, "docker runner: IMAGE_CMD is not valid UTF-8");
        json_decref(cmd);
        goto fail;
      }
      json_array_append_new(cmd, s);
    }
    json_object_set_new(spec, "Cmd", cmd);
  }
  for (i = 0; req->env && req->env[i]; i++) {
    /* The output files as the container sees them. */
    if (req->output_dir && strncmp(req->env[i], "WORKFLOW_OUTPUT=", 16) == 0) {
      json_array_append_new(env, json_string("WORKFLOW_OUTPUT=" WF__DOCKER_OUTPUT_MOUNT "/output"));
      continue;
    }
    if (req->output_dir && strncmp(req->env[i], "WORKFLOW_SUMMARY=", 17) == 0) {
      json_array_append_new(env,
                            json_string("WORKFLOW_SUMMARY=" WF__DOCKER_OUTPUT_MOUNT "/summary"));
      continue;
    }
    json_t *s = json_string(req->env[i]);
    if (!s) {
      snprintf(err, errlen, "docker runner: the value of env %.*s is not valid UTF-8",
               (int)strcspn(req->env[i], "="), req->env[i]);
      goto fail;
    }
    json_array_append_new(env, s);
  }
  json_object_set(spec, "Env", env);
  if (set_str(labels, "workflow.step", req->step_key, "the step key", err, errlen) < 0 ||
      set_str(labels, "workflow.node", node, "the node name", err, errlen) < 0)
    goto fail;
  json_object_set(spec, "Labels", labels);
  json_object_set_new(spec, "AttachStdin", json_false());
  json_object_set_new(spec, "AttachStdout", json_true());
  json_object_set_new(spec, "AttachStderr", json_true());
  json_object_set_new(spec, "OpenStdin", json_false());
  json_object_set_new(spec, "Tty", json_false());
  if (workdir && *workdir &&
      set_str(spec, "WorkingDir", workdir, "CONTAINER_WORKDIR", err, errlen) < 0)
    goto fail;
  if (user && *user && set_str(spec, "User", user, "CONTAINER_USER", err, errlen) < 0) goto fail;
  if (network && *network &&
      set_str(host, "NetworkMode", network, "CONTAINER_NETWORK", err, errlen) < 0)
    goto fail;
  if (memory && *memory) {
    int64_t bytes;
    if (wf_docker_parse_bytes(memory, &bytes) < 0) {
      snprintf(err, errlen, "docker runner: CONTAINER_MEMORY \"%s\" is not bytes or 512m/1g",
               memory);
      goto fail;
    }
    json_object_set_new(host, "Memory", json_integer(bytes));
    /* No swap on top: a memory limit that is hit is an OOM kill, not a
     * container that crawls through swap. */
    json_object_set_new(host, "MemorySwap", json_integer(bytes));
  }
  if (cpus && *cpus) {
    int64_t nano;
    if (wf_docker_parse_cpus(cpus, &nano) < 0) {
      snprintf(err, errlen, "docker runner: CONTAINER_CPUS \"%s\" is not a positive number",
               cpus);
      goto fail;
    }
    json_object_set_new(host, "NanoCpus", json_integer(nano));
  }
  /* Docker keeps its own copy of the output only so that a restarted agent
   * can read what it missed: the "local" driver bounds it (5 x 20 MB per
   * container) and supports reading it back. */
  json_object_set_new(log, "Type", json_string("local"));
  json_object_set(host, "LogConfig", log);
  json_object_set(spec, "HostConfig", host);
  json_decref(host);
  json_decref(labels);
  json_decref(env);
  json_decref(log);
  return spec;
fail:
  json_decref(spec);
  json_decref(host);
  json_decref(labels);
  json_decref(env);
  json_decref(log);
  return NULL;
}

static int parse_policy(const char *policy, enum wf__docker_policy *out) {
  if (!policy || !*policy || strcmp(policy, "if-not-present") == 0 ||
      strcmp(policy, "IfNotPresent") == 0)
    *out = WF__PULL_IF_NOT_PRESENT;
  else if (strcmp(policy, "always") == 0 || strcmp(policy, "Always") == 0)
    *out = WF__PULL_ALWAYS;
  else if (strcmp(policy, "never") == 0 || strcmp(policy, "Never") == 0)
    *out = WF__PULL_NEVER;
  else
    return -1;
  return 0;
}

int wf__docker_spec_init(wf__docker_spec_t *s, const wf_run_req_t *req, const char *node,
                         char *const *allow, size_t nallow, char *err, size_t errlen) {
  const wf_kv_t *p = req->runner_params;
  size_t np = req->nrunner_params;
  const char *url = wf_kv_get(p, np, "IMAGE_URL");
  const char *version = wf_kv_get(p, np, "IMAGE_VERSION");
  const char *cmd = wf_kv_get(p, np, "IMAGE_CMD");
  const char *policy = wf_kv_get(p, np, "IMAGE_PULL_POLICY");
  const char *secret = wf_kv_get(p, np, "IMAGE_PULL_SECRET");
  const char *mounts = wf_kv_get(p, np, "CONTAINER_MOUNTS");
  const char *memory = wf_kv_get(p, np, "CONTAINER_MEMORY");
  char perr[256];
  char **argv = NULL;

  memset(s, 0, sizeof *s);
  if (!req->step_key || !*req->step_key) {
    snprintf(err, errlen, "docker runner: the step key is empty");
    return -1;
  }
  if (!url || !*url) {
    snprintf(err, errlen, "docker runner: runner param IMAGE_URL is missing");
    return -1;
  }
  if (wf_docker_image_parse(url, version, &s->img) < 0) {
    snprintf(err, errlen, "docker runner: IMAGE_URL/IMAGE_VERSION too long");
    return -1;
  }
  if (parse_policy(policy, &s->policy) < 0) {
    snprintf(err, errlen,
             "docker runner: IMAGE_PULL_POLICY \"%s\" is not if-not-present, always or never",
             policy);
    return -1;
  }
  if (cmd && *cmd) {
    argv = wf_argv_parse(cmd, perr, sizeof perr);
    if (!argv) {
      snprintf(err, errlen, "docker runner: bad IMAGE_CMD: %s", perr);
      return -1;
    }
  }
  if (mounts && *mounts &&
      parse_mounts(allow, nallow, mounts, &s->mounts, &s->nmounts, err, errlen) < 0) {
    wf_argv_free(argv);
    return -1;
  }
  s->body = build_body(req, node, &s->img, argv, err, errlen);
  wf_argv_free(argv);
  if (s->body && secret && *secret) {
    s->auth = wf_docker_auth_header(secret, s->img.registry, perr, sizeof perr);
    if (!s->auth) snprintf(err, errlen, "docker runner: %s", perr);
  }
  if (!s->body || (secret && *secret && !s->auth)) {
    wf__docker_spec_finish(s);
    return -1;
  }
  s->image_url = wf_strdup(url);
  s->name = wf__docker_container_name(req->step_key);
  s->mem_text = memory && *memory ? wf_strdup(memory) : NULL;
  s->output_dir = req->output_dir ? wf_strdup(req->output_dir) : NULL;
  return 0;
}

void wf__docker_spec_finish(wf__docker_spec_t *s) {
  mounts_free(s->mounts, s->nmounts);
  json_decref(s->body);
  /* The registry password must not linger in freed memory. */
  if (s->auth) memset(s->auth, 0, strlen(s->auth));
  free(s->auth);
  free(s->mem_text);
  free(s->output_dir);
  free(s->image_url);
  free(s->name);
  memset(s, 0, sizeof *s);
}

const char *wf__docker_spec_limit_param(const wf__docker_spec_t *s) {
  json_t *host = json_object_get(s->body, "HostConfig");
  if (json_object_get(host, "Memory")) return "CONTAINER_MEMORY";
  if (json_object_get(host, "NanoCpus")) return "CONTAINER_CPUS";
  return NULL;
}

char *wf__docker_spec_create_body(const wf__docker_spec_t *s, enum wf_docker_engine engine) {
  json_t *body = json_deep_copy(s->body);
  char *text;
  if (engine == WF_DOCKER_ENGINE_PODMAN) {
    /* Podman has no "local" driver (its create fails "invalid log driver").
     * Its k8s-file is the one it reads back through /logs; conmon starts
     * the file afresh past max-size, so it holds at most the last 100 MB
     * (the same bound as Docker's 5 x 20 MB). */
    json_t *log = json_pack("{s:s, s:{s:s}}", "Type", "k8s-file", "Config", "max-size", "100m");
    json_object_set_new(json_object_get(body, "HostConfig"), "LogConfig", log);
  }
  if (s->nmounts > 0 || s->output_dir) {
    json_t *binds = json_array();
    for (size_t i = 0; i < s->nmounts; i++) {
      const wf__docker_mount_t *m = &s->mounts[i];
      char *b = wf_asprintf("%s:%s%s", m->real ? m->real : m->host, m->cont, m->ro ? ":ro" : "");
      json_array_append_new(binds, json_string(b));
      free(b);
    }
    if (s->output_dir) {
      char *b = wf_asprintf("%s:" WF__DOCKER_OUTPUT_MOUNT, s->output_dir);
      json_array_append_new(binds, json_string(b));
      free(b);
    }
    json_object_set_new(json_object_get(body, "HostConfig"), "Binds", binds);
  }
  text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  return text ? text : wf_strdup("{}");
}
