/*
 * http/origin.c: the origins a client is created for ("http://host:port",
 * "https://host:port", "unix:///path") parsed into what connecting needs (a
 * socket path, or a host for getaddrinfo or an address ready to connect to,
 * a port) and the Host header sent with every request.
 *
 * A file of its own because it is pure string work on no connection and no
 * loop: client.c calls it once, in wf_http_client_create_ex, and the port
 * parser is shared with server.c's listen address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "http-internal.h"

int wf__http_parse_port(const char *s, size_t n, int allow0) {
  unsigned long v = 0;
  size_t i;
  if (n == 0 || n > 5) return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > 65535 || (v == 0 && !allow0)) return -1;
  return (int)v;
}

static int parse(wf__http_origin_t *o, const char *origin) {
  const char *auth, *end, *host, *port = NULL;
  size_t hostlen, portlen = 0;

  if (strncmp(origin, "unix://", 7) == 0) {
    struct sockaddr_un sun;
    const char *path = origin + 7;
    if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) return UV_EINVAL;
    o->kind = ORIGIN_UNIX;
    o->path = wf_strdup(path);
    /* dockerd needs a Host header but ignores its value. */
    o->host_header = wf_strdup("localhost");
    return 0;
  }
  if (strncasecmp(origin, "http://", 7) == 0) {
    auth = origin + 7;
  } else if (strncasecmp(origin, "https://", 8) == 0) {
    auth = origin + 8;
    o->https = 1;
  } else {
    return UV_EINVAL;
  }
  end = auth + strlen(auth);
  if (end > auth && end[-1] == '/') end--;
  if (memchr(auth, '/', (size_t)(end - auth)) || memchr(auth, '@', (size_t)(end - auth)))
    return UV_EINVAL;
  if (auth[0] == '[') {
    const char *rb = memchr(auth, ']', (size_t)(end - auth));
    if (!rb) return UV_EINVAL;
    host = auth + 1;
    hostlen = (size_t)(rb - host);
    if (rb + 1 < end) {
      if (rb[1] != ':') return UV_EINVAL;
      port = rb + 2;
      portlen = (size_t)(end - port);
    }
  } else {
    const char *colon = memchr(auth, ':', (size_t)(end - auth));
    host = auth;
    if (colon) {
      hostlen = (size_t)(colon - auth);
      port = colon + 1;
      portlen = (size_t)(end - port);
    } else {
      hostlen = (size_t)(end - auth);
    }
  }
  if (hostlen == 0) return UV_EINVAL;
  if (port) {
    int v = wf__http_parse_port(port, portlen, 0);
    if (v < 0) return UV_EINVAL;
    /* v <= 65535: the cast only tells the compiler it fits. */
    snprintf(o->port_str, sizeof(o->port_str), "%u", (unsigned)(uint16_t)v);
  } else {
    strcpy(o->port_str, o->https ? "443" : "80");
  }
  o->kind = ORIGIN_TCP;
  o->host = wf_strndup(host, hostlen);
  o->host_header = wf_strndup(auth, (size_t)(end - auth));
  if (uv_ip4_addr(o->host, atoi(o->port_str), (struct sockaddr_in *)&o->addr) == 0 ||
      uv_ip6_addr(o->host, atoi(o->port_str), (struct sockaddr_in6 *)&o->addr) == 0)
    o->have_addr = 1;
  else if (auth[0] == '[')
    return UV_EINVAL; /* brackets hold only an IPv6 literal */
  return 0;
}

int wf__http_origin_parse(wf__http_origin_t *o, const char *origin) {
  int r = parse(o, origin);
  if (r < 0) wf__http_origin_finish(o);
  return r;
}

void wf__http_origin_finish(wf__http_origin_t *o) {
  free(o->host);
  free(o->host_header);
  free(o->path);
  o->host = o->host_header = o->path = NULL;
}
