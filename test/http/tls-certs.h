/*
 * tls-certs.h: the certificates of the TLS tests (test-tls, test-tls-server),
 * made at test time with the openssl CLI in a temporary directory.
 *
 * Why at test time: nothing checked in expires, and each case (a process of
 * its own) gets fresh keys, EC P-256 so that making them takes milliseconds.
 * The CAs are self-signed; a leaf is signed by the CA named, with the
 * extensions given (subjectAltName, extendedKeyUsage), valid for two days.
 * The programs skip themselves (77) when `openssl version` fails.
 */
#ifndef WF_TEST_TLS_CERTS_H
#define WF_TEST_TLS_CERTS_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"

/* Runs a shell command; a failure fails the test. */
static inline void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) WF_FAIL("command failed: %s", cmd);
}

#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

/* A fresh /tmp/wf-tls-XXXXXX into dir (at least 32 bytes). */
static inline void certs_dir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/wf-tls-XXXXXX");
  if (!mkdtemp(dir)) WF_FAIL("mkdtemp: %s", strerror(errno));
}

/* dir/<name>.crt and .key: a self-signed CA called cn. */
static inline void make_ca(const char *dir, const char *name, const char *cn) {
  sh("cd %s && openssl req -x509 " NEWKEY " -keyout %s.key -out %s.crt -days 2 "
     "-subj /CN=%s 2>/dev/null",
     dir, name, name, cn);
}

/* dir/<name>.crt and .key: a certificate for cn signed by the CA dir/<ca>
 * with the extensions ext (each line ending in a backslash-n for printf; the
 * file is dir/<name>.ext). */
static inline void make_leaf(const char *dir, const char *ca, const char *name, const char *cn,
                             const char *ext) {
  sh("cd %s && printf '%s' > %s.ext && "
     "openssl req " NEWKEY " -keyout %s.key -out %s.csr -subj /CN=%s 2>/dev/null && "
     "openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -days 2 "
     "-extfile %s.ext -out %s.crt 2>/dev/null >/dev/null",
     dir, ext, name, name, name, cn, name, ca, ca, name, name);
}

#endif
