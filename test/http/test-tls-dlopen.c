/*
 * test-tls-dlopen: OpenSSL is loaded on the first https:// client, not at
 * start-up (src/http/tls-dl.c), and a libssl that cannot be loaded fails
 * that client with the library's name and dlerror()'s reason.
 *
 * This executable, like the agent, links no OpenSSL (test-tls does, for its
 * own server), so /proc/self/maps shows what the client code maps:
 *
 * - lazy: no libssl or libcrypto after start-up and an http:// client; both
 *   after the first https:// client (system trust store, no files); a
 *   second one, after the first is gone, works the same;
 * - empty_libssl, nosym_libssl: the test runs itself again with
 *   LD_LIBRARY_PATH on a directory whose WF_LIBSSL is an empty file (dlopen
 *   fails), or a copy of another library (dlsym fails).  Creating an
 *   https:// client fails with "cannot load OpenSSL (libssl.so.N) for
 *   https://: <dlerror>", twice (the load is tried once, its outcome
 *   remembered), and http:// clients still work.
 *
 * Usage: test-tls-dlopen [name | --list]; `test-tls-dlopen --child empty|nosym`
 * is the re-run.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "wf-test.h"
#include "wf/http.h"
#include "wf/util.h"

#define LOAD_ERR "cannot load OpenSSL (" WF_LIBSSL ") for https://: "

static uv_loop_t loop;
static int close_cb_called;

/* 1 if a mapping of this process has needle in its path. */
static int mapped(const char *needle) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  int found = 0;

  ASSERT_NOT_NULL(f);
  while (!found && fgets(line, sizeof(line), f)) {
    const char *path = strchr(line, '/');
    found = path && strstr(path, needle) != NULL;
  }
  fclose(f);
  return found;
}

static void on_client_closed(void *data) {
  (void)data;
  close_cb_called++;
}

static void close_all(wf_http_client_t **c, int n) {
  int i;
  close_cb_called = 0;
  for (i = 0; i < n; i++) wf_http_client_close(c[i], on_client_closed, NULL);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, n);
}

/* An https:// client with default TLS options (the system trust store). */
static wf_http_client_t *https_client(char *err, size_t errlen) {
  wf_http_tls_opts_t t = {NULL, NULL, NULL};
  wf_http_client_opts_t o;
  memset(&o, 0, sizeof(o));
  o.tls = &t;
  err[0] = '\0';
  return wf_http_client_create_ex(&loop, "https://127.0.0.1:2379", &o, err, errlen);
}

/* ---- cases ------------------------------------------------------------------------------ */
static void test_lazy(void) {
  wf_http_client_t *c[2];
  char err[512];

  /* Nothing has mapped OpenSSL at start-up: the executable does not link it. */
  ASSERT(!mapped("/libssl.so"));
  ASSERT(!mapped("/libcrypto.so"));
  ASSERT_OK(uv_loop_init(&loop));
  c[0] = wf_http_client_create(&loop, "http://127.0.0.1:2379", NULL);
  ASSERT_NOT_NULL(c[0]);
  ASSERT(!mapped("/libssl.so"));
  ASSERT(!mapped("/libcrypto.so"));
  /* The first https:// origin loads both. */
  c[1] = https_client(err, sizeof(err));
  if (!c[1]) WF_FAIL("https client: %s", err);
  ASSERT(mapped("/libssl.so"));
  ASSERT(mapped("/libcrypto.so"));
  close_all(c, 2);
  /* They stay (never unloaded), and the next https:// client uses them. */
  ASSERT(mapped("/libssl.so"));
  ASSERT_OK(uv_loop_init(&loop));
  c[0] = https_client(err, sizeof(err));
  if (!c[0]) WF_FAIL("second https client: %s", err);
  close_all(c, 1);
}

/* Runs this test again as `--child kind` with LD_LIBRARY_PATH=dir (where
 * the dynamic loader looks first), and expects exit status 0. */
static void run_child(const char *kind, const char *dir) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  pid_t pid;
  int st;

  ASSERT(n > 0);
  exe[n] = '\0';
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    setenv("LD_LIBRARY_PATH", dir, 1);
    execl(exe, exe, "--child", kind, (char *)NULL);
    _exit(127);
  }
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) WF_FAIL("child %s: status %#x", kind, st);
}

static void make_dir(char *dir, size_t len, char *lib, size_t liblen) {
  snprintf(dir, len, "/tmp/wf-tls-dlopen-XXXXXX");
  if (!mkdtemp(dir)) WF_FAIL("mkdtemp: %s", strerror(errno));
  snprintf(lib, liblen, "%s/%s", dir, WF_LIBSSL);
}

static void remove_dir(const char *dir, const char *lib) {
  ASSERT_OK(unlink(lib));
  ASSERT_OK(rmdir(dir));
}

static void test_empty_libssl(void) {
  char dir[64], lib[128];
  FILE *f;

  make_dir(dir, sizeof(dir), lib, sizeof(lib));
  f = fopen(lib, "w");
  ASSERT_NOT_NULL(f);
  fclose(f);
  run_child("empty", dir);
  remove_dir(dir, lib);
}

/* A real shared library under libssl's name: dlopen succeeds, dlsym does
 * not.  libuv is one this process has mapped for sure. */
static void test_nosym_libssl(void) {
  char dir[64], lib[128], cmd[4096 + 300], line[4096], *src = NULL;
  FILE *f = fopen("/proc/self/maps", "r");

  ASSERT_NOT_NULL(f);
  while (!src && fgets(line, sizeof(line), f)) {
    char *p = strchr(line, '/');
    if (p && strstr(p, "/libuv.so")) {
      p[strcspn(p, "\n")] = '\0';
      src = p;
    }
  }
  fclose(f);
  if (!src) {
    fprintf(stderr, "  libuv is not a shared library here: case skipped\n");
    return;
  }
  make_dir(dir, sizeof(dir), lib, sizeof(lib));
  snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, lib);
  if (system(cmd) != 0) WF_FAIL("command failed: %s", cmd);
  run_child("nosym", dir);
  remove_dir(dir, lib);
}

/* ---- the re-run, with a broken libssl first on the search path --------------------------- */
static int child(const char *kind) {
  wf_http_client_t *c;
  char err[512], again[512], want[512];
  int i;

  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_NULL(https_client(err, sizeof(err)));
  fprintf(stderr, "  %s: %s\n", kind, err);
  if (strncmp(err, LOAD_ERR, strlen(LOAD_ERR)) != 0)
    WF_FAIL("\"%s\" does not start with \"%s\"", err, LOAD_ERR);
  if (strcmp(kind, "empty") == 0) {
    /* The reason is dlopen()'s own (the same call fails the same way). */
    ASSERT_NULL(dlopen(WF_LIBSSL, RTLD_NOW | RTLD_LOCAL));
    snprintf(want, sizeof(want), LOAD_ERR "%s", dlerror());
    ASSERT_STR_EQ(err, want);
    ASSERT(!mapped("/libssl.so"));
    ASSERT(!mapped("/libcrypto.so"));
  } else {
    /* The first function of the table is missing from "libssl". */
    snprintf(want, sizeof(want), LOAD_ERR "no TLS_client_method: ");
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, "undefined symbol"))
      WF_FAIL("\"%s\" does not start with \"%s\" or lacks dlerror()'s reason", err, want);
  }
  /* Tried once; every later https:// client gets the same answer. */
  for (i = 0; i < 2; i++) {
    ASSERT_NULL(https_client(again, sizeof(again)));
    ASSERT_STR_EQ(again, err);
  }
  c = wf_http_client_create(&loop, "http://127.0.0.1:2379", NULL);
  ASSERT_NOT_NULL(c);
  close_all(&c, 1);
  return 0;
}

/* ---- runner ---------------------------------------------------------------------------- */
static const wf_test_t tests[] = {
    WF_TEST(lazy), WF_TEST(empty_libssl), WF_TEST(nosym_libssl),
};

int main(int argc, char **argv) {
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child(argv[2]);
  return WF_TEST_MAIN(argc, argv, tests);
}
