/*
 * helpers: the pure parts of the Docker client: Docker's error
 * bodies, query-string encoding, image references, registry auth headers and
 * the size/CPU notations operators write in runner params.  No libuv here,
 * so every function is unit-tested without an engine (test/runner/docker/test-docker-unit.c).
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "wf/util.h"

void wf_docker_errmsg(int status, const char *body, size_t len, char *out, size_t outlen) {
  json_t *root = NULL;
  const char *msg = NULL;

  if (outlen == 0) return;
  out[0] = '\0';
  if (body && len > 0) {
    root = json_loadb(body, len, 0, NULL);
    if (json_is_object(root)) msg = json_string_value(json_object_get(root, "message"));
  }
  if (msg && *msg) {
    snprintf(out, outlen, "%s", msg);
  } else if (body && len > 0) {
    /* Not Docker's JSON (a proxy in between?): the text itself, one line. */
    size_t i, o = 0;
    while (len > 0 && isspace((unsigned char)body[len - 1])) len--;
    for (i = 0; i < len && o + 1 < outlen; i++)
      out[o++] = (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i];
    out[o] = '\0';
    if (o == 0) snprintf(out, outlen, "HTTP %d", status);
  } else {
    snprintf(out, outlen, "HTTP %d", status);
  }
  json_decref(root);
}

int wf_docker_urlenc(const char *s, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      if (o + 1 >= outlen) return UV_ENAMETOOLONG;
      out[o++] = (char)c;
    } else {
      if (o + 3 >= outlen) return UV_ENAMETOOLONG;
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  if (o >= outlen) return UV_ENAMETOOLONG;
  out[o] = '\0';
  return 0;
}

int wf_docker_image_parse(const char *url, const char *version, wf_docker_image_t *out) {
  const char *slash, *last, *first_end;
  int n, has_tag;

  memset(out, 0, sizeof *out);
  if (!url || !*url) return UV_EINVAL;
  if (version && !*version) version = NULL;
  slash = strrchr(url, '/');
  last = slash ? slash + 1 : url;
  /* A colon before the last '/' is a registry port, not a tag. */
  has_tag = strchr(last, ':') != NULL || strchr(url, '@') != NULL;

  if (!version)
    n = snprintf(out->ref, sizeof out->ref, "%s", url);
  else
    n = snprintf(out->ref, sizeof out->ref, "%s%c%s", url,
                 strncmp(version, "sha256:", 7) == 0 ? '@' : ':', version);
  if (n < 0 || (size_t)n >= sizeof out->ref) return UV_ENAMETOOLONG;

  if (version)
    n = snprintf(out->tag, sizeof out->tag, "%s", version);
  else
    n = snprintf(out->tag, sizeof out->tag, "%s", has_tag ? "" : "latest");
  if (n < 0 || (size_t)n >= sizeof out->tag) return UV_ENAMETOOLONG;

  /* Docker's rule: the first component names a registry when it has a dot
   * or a port, or is "localhost"; otherwise the image is on Docker Hub. */
  first_end = strchr(url, '/');
  if (first_end) {
    size_t flen = (size_t)(first_end - url);
    if ((memchr(url, '.', flen) || memchr(url, ':', flen) ||
         (flen == 9 && strncmp(url, "localhost", 9) == 0)) &&
        flen < sizeof out->registry) {
      memcpy(out->registry, url, flen);
      out->registry[flen] = '\0';
      return 0;
    }
  }
  snprintf(out->registry, sizeof out->registry, "docker.io");
  return 0;
}

/* Re-encodes standard base64 into the URL alphabet, padded (Go's
 * base64.URLEncoding, which is what dockerd decodes X-Registry-Auth with). */
static void to_url_alphabet(char *s) {
  for (; *s; s++) {
    if (*s == '+') *s = '-';
    else if (*s == '/') *s = '_';
  }
}

char *wf_docker_auth_header(const char *secret, const char *registry, char *err, size_t errlen) {
  const char *colon = secret ? strchr(secret, ':') : NULL;
  char *json_text, *out;
  size_t jlen;

  if (!secret || !*secret) {
    snprintf(err, errlen, "IMAGE_PULL_SECRET is empty");
    return NULL;
  }
  if (colon) {
    /* user:password (base64 has no ':', so this cannot be the other form). */
    json_t *o = json_object();
    char *user = wf_strndup(secret, (size_t)(colon - secret));
    json_object_set_new(o, "username", json_string(user));
    json_object_set_new(o, "password", json_string(colon + 1));
    /* Docker Hub's canonical address; any other registry by its host. */
    json_object_set_new(o, "serveraddress",
                        json_string(registry && strcmp(registry, "docker.io") != 0
                                        ? registry
                                        : "https://index.docker.io/v1/"));
    json_text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(user);
    if (!json_text) {
      snprintf(err, errlen, "IMAGE_PULL_SECRET: user or password is not valid UTF-8");
      return NULL;
    }
  } else {
    /* base64 JSON auth config: accept both alphabets, padded or not. */
    size_t n = strlen(secret), i, dlen;
    char *std = wf_malloc(n + 4);
    char *dec;
    json_t *o;
    for (i = 0; i < n; i++)
      std[i] = secret[i] == '-' ? '+' : secret[i] == '_' ? '/' : secret[i];
    while (i % 4) std[i++] = '=';
    std[i] = '\0';
    dec = wf_b64_decode(std, i, &dlen);
    free(std);
    o = dec ? json_loadb(dec, dlen, 0, NULL) : NULL;
    free(dec);
    if (!json_is_object(o)) {
      json_decref(o);
      snprintf(err, errlen,
               "IMAGE_PULL_SECRET is neither user:password nor base64 of a JSON auth object");
      return NULL;
    }
    json_text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
  }
  jlen = strlen(json_text);
  out = wf_malloc(wf_b64_enc_len(jlen) + 1);
  wf_b64_encode(json_text, jlen, out);
  /* The JSON holds the password: do not leave it in freed heap memory. */
  memset(json_text, 0, jlen);
  free(json_text);
  to_url_alphabet(out);
  return out;
}

/* Reads a plain decimal ("512", "1.5") at the start of s; no signs,
 * exponents, hex, "inf" or "nan", which strtod alone would take. */
static int parse_decimal(const char *s, double *v, const char **end) {
  size_t k = strspn(s, "0123456789.");
  char num[64];
  const char *dot = memchr(s, '.', k);
  if (k == 0 || k >= sizeof num || (dot && memchr(dot + 1, '.', k - (size_t)(dot - s) - 1)))
    return -1;
  if (k == 1 && dot) return -1;
  memcpy(num, s, k);
  num[k] = '\0';
  *v = strtod(num, NULL);
  *end = s + k;
  return 0;
}

int wf_docker_parse_bytes(const char *s, int64_t *out) {
  double v, mult = 1;
  const char *end;
  if (!s || parse_decimal(s, &v, &end) < 0) return -1;
  switch (tolower((unsigned char)*end)) {
    case 'k': mult = 1024.0; end++; break;
    case 'm': mult = 1024.0 * 1024; end++; break;
    case 'g': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
  }
  if (mult > 1 && tolower((unsigned char)*end) == 'i') end++;
  if (tolower((unsigned char)*end) == 'b') end++;
  if (*end != '\0') return -1;
  v *= mult;
  if (v < 1 || v > 9.0e18) return -1;
  *out = (int64_t)v;
  return 0;
}

int wf_docker_parse_cpus(const char *s, int64_t *nano) {
  double v;
  const char *end;
  if (!s || parse_decimal(s, &v, &end) < 0 || *end != '\0') return -1;
  if (v <= 0 || v > 1.0e6) return -1;
  *nano = (int64_t)(v * 1e9 + 0.5);
  return *nano > 0 ? 0 : -1;
}
