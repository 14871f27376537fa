/*
 * test-config: wf_config_load's defaults, the precedence flag > env > file >
 * default, both flag spellings, config files (etcd as a list, max_parallel),
 * every bad-value path (WF_CONFIG_BAD with the flag, variable or key named),
 * and --help / --version; --log-retention and --log-max-bytes; --etcd-http2.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf-version.h"
#include "wf/cli.h"
#include "wf/config.h"
#include "wf/http.h"
#include "wf/util.h"

static char *no_env[] = {NULL};
#define CFG_TEMPLATE "/tmp/wf-test-config-XXXXXX"
static char cfg_path[sizeof CFG_TEMPLATE];
static char err[1024];

/* The cases that read a config file make their own (empty) one with
 * cfg_make() and remove it with cfg_drop(). */
static void cfg_make(void) {
  memcpy(cfg_path, CFG_TEMPLATE, sizeof CFG_TEMPLATE);
  int fd = mkstemp(cfg_path);
  ASSERT(fd >= 0);
  close(fd);
}

static void cfg_drop(void) { unlink(cfg_path); }

/* argv from a NULL-terminated list of words ("workflow-node" first). */
static enum wf_config_result load(wf_config_t *cfg, char **envp, ...) {
  char *argv[64];
  int argc = 0;
  va_list ap;
  va_start(ap, envp);
  argv[argc++] = "workflow-node";
  for (char *a; (a = va_arg(ap, char *)) != NULL;) argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  err[0] = '\0';
  return wf_config_load(cfg, argc, argv, envp, err, sizeof err);
}

static void write_cfg(const char *text) {
  int fd = open(cfg_path, O_WRONLY | O_TRUNC | O_CREAT, 0600);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
  close(fd);
}

/* Expects WF_CONFIG_BAD with every `want` (NULL-terminated) in err. */
static void expect_bad(enum wf_config_result r, wf_config_t *cfg, ...) {
  if (r != WF_CONFIG_BAD) WF_FAIL("expected WF_CONFIG_BAD, got %d (err \"%s\")", r, err);
  va_list ap;
  va_start(ap, cfg);
  for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
    if (!strstr(err, w)) WF_FAIL("error \"%s\" lacks \"%s\"", err, w);
  va_end(ap);
  wf_config_finish(cfg);
}

static void test_defaults(void) {
  wf_config_t cfg;
  char host[256] = "";
  gethostname(host, sizeof host);
  ASSERT_EQ(load(&cfg, no_env, NULL), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.name, host);
  ASSERT_EQ(cfg.node.netcd, 1);
  ASSERT_STR_EQ(cfg.node.etcd[0], "http://127.0.0.1:2379");
  ASSERT_NULL(cfg.node.etcd[1]);
  ASSERT_STR_EQ(cfg.node.prefix, "inforboard");
  ASSERT_NULL(cfg.config_file);
  ASSERT_STR_EQ(cfg.node.log_dir, "runner_log");
  ASSERT_STR_EQ(cfg.node.output_dir, "runner_output");
  ASSERT_NULL(cfg.node.actions_dir);
  ASSERT_STR_EQ(cfg.node.docker_host, "unix:///var/run/docker.sock");
  ASSERT_EQ(cfg.node.max_parallel, 16);
  ASSERT_EQ(cfg.node.step_timeout, 0);
  ASSERT_EQ(cfg.node.stop_grace, 10);
  ASSERT_EQ(cfg.node.resync, 300);
  ASSERT_EQ(cfg.node.ttl, 30);
  ASSERT_EQ(cfg.node.drain_timeout, 30);
  ASSERT_EQ(cfg.node.log_level, WF_LOG_INFO);
  ASSERT_EQ(cfg.node.log_json, 0);
  ASSERT_STR_EQ(cfg.node.address, "");
  wf_config_finish(&cfg);
  wf_config_finish(&cfg);  /* twice is harmless */
  wf_config_finish(NULL);
}

static void test_every_flag(void) {
  wf_config_t cfg;
  ASSERT_EQ(load(&cfg, no_env, "--name", "n1", "--etcd=http://a:1, http://[::1]:2379/",
                 "--prefix", "pfx", "--log-dir=/var/log/wf", "--actions-dir", "/etc/wf/actions",
                 "--docker-host", "tcp://dock:2375", "--max-parallel=10000",
                 "--step-timeout", "3600", "--stop-grace", "0", "--resync=0", "--ttl", "2",
                 "--drain-timeout", "5", "--log-level", "DEBUG", "--log-format=json",
                 "--address", "10.0.0.5:8050", NULL),
            WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.name, "n1");
  ASSERT_EQ(cfg.node.netcd, 2);
  ASSERT_STR_EQ(cfg.node.etcd[0], "http://a:1");
  ASSERT_STR_EQ(cfg.node.etcd[1], "http://[::1]:2379");
  ASSERT_STR_EQ(cfg.node.prefix, "pfx");
  ASSERT_STR_EQ(cfg.node.log_dir, "/var/log/wf");
  ASSERT_STR_EQ(cfg.node.actions_dir, "/etc/wf/actions");
  ASSERT_STR_EQ(cfg.node.docker_host, "tcp://dock:2375");
  ASSERT_EQ(cfg.node.max_parallel, 10000);
  ASSERT_EQ(cfg.node.step_timeout, 3600);
  ASSERT_EQ(cfg.node.stop_grace, 0);
  ASSERT_EQ(cfg.node.resync, 0);
  ASSERT_EQ(cfg.node.ttl, 2);
  ASSERT_EQ(cfg.node.drain_timeout, 5);
  ASSERT_EQ(cfg.node.log_level, WF_LOG_DEBUG);
  ASSERT_EQ(cfg.node.log_json, 1);
  ASSERT_STR_EQ(cfg.node.address, "10.0.0.5:8050");
  wf_config_finish(&cfg);

  /* Repeated flag: the last one wins. */
  ASSERT_EQ(load(&cfg, no_env, "--ttl", "5", "--ttl=6", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.ttl, 6);
  wf_config_finish(&cfg);
}

static void test_env(void) {
  wf_config_t cfg;
  char *env[] = {
      "PATH=/bin", "WORKFLOW_NODE_NAME=envnode", "WORKFLOW_ETCD=http://e1:2379,http://e2:2379",
      "WORKFLOW_PREFIX=envp", "WORKFLOW_LOG_DIR=envlogs", "WORKFLOW_ACTIONS_DIR=envactions",
      "DOCKER_HOST=unix:///run/d.sock", "WORKFLOW_MAX_PARALLEL=3", "WORKFLOW_STEP_TIMEOUT=9",
      "WORKFLOW_STOP_GRACE=4", "WORKFLOW_RESYNC=60", "WORKFLOW_TTL=12",
      "WORKFLOW_DRAIN_TIMEOUT=7", "WORKFLOW_LOG_LEVEL=warn", "WORKFLOW_LOG_FORMAT=json",
      "WORKFLOW_ADDRESS=addr", "WORKFLOW_NODE_NAMEX=ignored", NULL,
  };
  ASSERT_EQ(load(&cfg, env, NULL), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.name, "envnode");
  ASSERT_EQ(cfg.node.netcd, 2);
  ASSERT_STR_EQ(cfg.node.etcd[1], "http://e2:2379");
  ASSERT_STR_EQ(cfg.node.prefix, "envp");
  ASSERT_STR_EQ(cfg.node.log_dir, "envlogs");
  ASSERT_STR_EQ(cfg.node.actions_dir, "envactions");
  ASSERT_STR_EQ(cfg.node.docker_host, "unix:///run/d.sock");
  ASSERT_EQ(cfg.node.max_parallel, 3);
  ASSERT_EQ(cfg.node.step_timeout, 9);
  ASSERT_EQ(cfg.node.stop_grace, 4);
  ASSERT_EQ(cfg.node.resync, 60);
  ASSERT_EQ(cfg.node.ttl, 12);
  ASSERT_EQ(cfg.node.drain_timeout, 7);
  ASSERT_EQ(cfg.node.log_level, WF_LOG_WARN);
  ASSERT_EQ(cfg.node.log_json, 1);
  ASSERT_STR_EQ(cfg.node.address, "addr");
  wf_config_finish(&cfg);

  /* An empty variable is unset. */
  char *env2[] = {"WORKFLOW_PREFIX=", "DOCKER_HOST=", NULL};
  ASSERT_EQ(load(&cfg, env2, NULL), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.prefix, "inforboard");
  ASSERT_STR_EQ(cfg.node.docker_host, "unix:///var/run/docker.sock");
  wf_config_finish(&cfg);
}

static void test_precedence(void) {
  wf_config_t cfg;
  char cflag[64];
  cfg_make();
  snprintf(cflag, sizeof cflag, "--config=%s", cfg_path);
  write_cfg("max-parallel: 5\nprefix: filep\nttl: 40\nlog_level: error\n");
  char *env[] = {"WORKFLOW_MAX_PARALLEL=6", "WORKFLOW_PREFIX=envp", NULL};

  /* flag > env > file > default, option by option */
  ASSERT_EQ(load(&cfg, env, cflag, "--max-parallel", "7", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.max_parallel, 7);
  ASSERT_STR_EQ(cfg.node.prefix, "envp");
  ASSERT_EQ(cfg.node.ttl, 40);
  ASSERT_EQ(cfg.node.log_level, WF_LOG_ERROR);
  ASSERT_EQ(cfg.node.stop_grace, 10);
  ASSERT_STR_EQ(cfg.config_file, cfg_path);
  wf_config_finish(&cfg);

  ASSERT_EQ(load(&cfg, env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.max_parallel, 6);
  wf_config_finish(&cfg);

  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.max_parallel, 5);
  ASSERT_STR_EQ(cfg.node.prefix, "filep");
  wf_config_finish(&cfg);

  ASSERT_EQ(load(&cfg, no_env, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.max_parallel, 16);
  wf_config_finish(&cfg);

  /* The file can come from WORKFLOW_CONFIG; the flag beats it. */
  char envc[64];
  snprintf(envc, sizeof envc, "WORKFLOW_CONFIG=%s", cfg_path);
  char *env3[] = {envc, NULL};
  ASSERT_EQ(load(&cfg, env3, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.max_parallel, 5);
  wf_config_finish(&cfg);
  expect_bad(load(&cfg, env3, "--config", "/nonexistent/wf.yaml", NULL), &cfg,
             "config /nonexistent/wf.yaml", NULL);

  /* A bad value in the file does not matter when a flag overrides it?  It
   * does: the file is checked as a whole, types first. */
  write_cfg("ttl: [1, 2]\n");
  expect_bad(load(&cfg, no_env, cflag, "--ttl", "5", NULL), &cfg, "key \"ttl\"", NULL);
  cfg_drop();
}

static void test_file_forms(void) {
  wf_config_t cfg;
  char cflag[64];
  cfg_make();
  snprintf(cflag, sizeof cflag, "--config=%s", cfg_path);

  write_cfg("# the node's config\n"
            "name: filenode\n"
            "etcd:\n"
            "  - http://10.0.0.1:2379\n"
            "  - http://10.0.0.2:2379\n"
            "max_parallel: 8\n"
            "step-timeout: 60\n"
            "drain_timeout: 0\n"
            "log-format: JSON\n"
            "actions-dir: ~\n"
            "address: 10.1.1.1\n");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.name, "filenode");
  ASSERT_EQ(cfg.node.netcd, 2);
  ASSERT_STR_EQ(cfg.node.etcd[0], "http://10.0.0.1:2379");
  ASSERT_STR_EQ(cfg.node.etcd[1], "http://10.0.0.2:2379");
  ASSERT_EQ(cfg.node.max_parallel, 8);
  ASSERT_EQ(cfg.node.step_timeout, 60);
  ASSERT_EQ(cfg.node.drain_timeout, 0);
  ASSERT_EQ(cfg.node.log_json, 1);
  ASSERT_NULL(cfg.node.actions_dir);
  ASSERT_STR_EQ(cfg.node.address, "10.1.1.1");
  wf_config_finish(&cfg);

  write_cfg("etcd: http://a:1,http://b:2\n");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.netcd, 2);
  wf_config_finish(&cfg);

  /* Empty file, comment-only file, JSON file. */
  write_cfg("");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  wf_config_finish(&cfg);
  write_cfg("# nothing\n");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  wf_config_finish(&cfg);
  write_cfg("{\"ttl\": 9, \"etcd\": [\"http://j:1\"]}");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.ttl, 9);
  ASSERT_STR_EQ(cfg.node.etcd[0], "http://j:1");
  wf_config_finish(&cfg);
  cfg_drop();
}

static void test_bad(void) {
  wf_config_t cfg;
  char cflag[64];
  cfg_make();
  snprintf(cflag, sizeof cflag, "--config=%s", cfg_path);

  /* flags */
  expect_bad(load(&cfg, no_env, "--bogus", NULL), &cfg, "--bogus", "unknown flag", NULL);
  expect_bad(load(&cfg, no_env, "--bogus=1", NULL), &cfg, "--bogus", NULL);
  expect_bad(load(&cfg, no_env, "-x", NULL), &cfg, "-x", NULL);
  expect_bad(load(&cfg, no_env, "start", NULL), &cfg, "\"start\"", NULL);
  expect_bad(load(&cfg, no_env, "--ttl", NULL), &cfg, "--ttl", "needs a value", NULL);
  expect_bad(load(&cfg, no_env, "--help=yes", NULL), &cfg, "--help", NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel", "abc", NULL), &cfg,
             "--max-parallel: \"abc\" is not a whole number from 1 to 10000", NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel=0", NULL), &cfg, "--max-parallel", "\"0\"",
             NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel=10001", NULL), &cfg, "\"10001\"", NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel=-1", NULL), &cfg, "\"-1\"", NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel=", NULL), &cfg, "--max-parallel", NULL);
  expect_bad(load(&cfg, no_env, "--max-parallel= 4", NULL), &cfg, "--max-parallel", NULL);
  expect_bad(load(&cfg, no_env, "--step-timeout", "1.5", NULL), &cfg, "--step-timeout",
             "\"1.5\"", NULL);
  expect_bad(load(&cfg, no_env, "--stop-grace", "99999999999", NULL), &cfg, "--stop-grace",
             NULL);
  expect_bad(load(&cfg, no_env, "--resync", "x", NULL), &cfg, "--resync", NULL);
  expect_bad(load(&cfg, no_env, "--ttl", "1", NULL), &cfg, "--ttl: \"1\"", "from 2", NULL);
  expect_bad(load(&cfg, no_env, "--drain-timeout", "1m", NULL), &cfg, "--drain-timeout", NULL);
  expect_bad(load(&cfg, no_env, "--log-level", "loud", NULL), &cfg, "--log-level", "\"loud\"",
             NULL);
  expect_bad(load(&cfg, no_env, "--log-format", "xml", NULL), &cfg, "--log-format", "\"xml\"",
             NULL);
  expect_bad(load(&cfg, no_env, "--prefix", "a/b", NULL), &cfg, "--prefix", "\"a/b\"", NULL);
  expect_bad(load(&cfg, no_env, "--prefix=", NULL), &cfg, "--prefix", NULL);
  expect_bad(load(&cfg, no_env, "--name", "", NULL), &cfg, "--name", NULL);
  expect_bad(load(&cfg, no_env, "--name", "a/b", NULL), &cfg, "--name", NULL);
  expect_bad(load(&cfg, no_env, "--log-dir", "", NULL), &cfg, "--log-dir", NULL);
  expect_bad(load(&cfg, no_env, "--docker-host", "/var/run/docker.sock", NULL), &cfg,
             "--docker-host", NULL);
  expect_bad(load(&cfg, no_env, "--docker-host", "unix://", NULL), &cfg, "--docker-host", NULL);
  static const char *const bad_urls[] = {
      "ftp://a:2379", "https://a", "http://a", "http://a:0", "http://a:65536", "http://:2379",
      "127.0.0.1:2379", "http://a:2379/v3", "http://a:23x9", "", "http://a:1,,http://b:2",
      "http://a b:1", "http://[zz]:1",
  };
  for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++)
    expect_bad(load(&cfg, no_env, "--etcd", bad_urls[i], NULL), &cfg, "--etcd", NULL);
  expect_bad(load(&cfg, no_env, "--etcd", "ftp://a:2379", NULL), &cfg,
             "\"ftp://a:2379\" is not an http://host:port or https://host:port URL", NULL);

  /* environment: the variable is named */
  char *e1[] = {"WORKFLOW_MAX_PARALLEL=abc", NULL};
  expect_bad(load(&cfg, e1, NULL), &cfg, "WORKFLOW_MAX_PARALLEL: \"abc\"", NULL);
  char *e2[] = {"WORKFLOW_ETCD=localhost:2379", NULL};
  expect_bad(load(&cfg, e2, NULL), &cfg, "WORKFLOW_ETCD", NULL);
  char *e3[] = {"WORKFLOW_TTL=0", NULL};
  expect_bad(load(&cfg, e3, NULL), &cfg, "WORKFLOW_TTL", NULL);
  char *e4[] = {"WORKFLOW_LOG_FORMAT=yaml", NULL};
  expect_bad(load(&cfg, e4, NULL), &cfg, "WORKFLOW_LOG_FORMAT", NULL);
  char *e5[] = {"DOCKER_HOST=ssh://x", NULL};
  expect_bad(load(&cfg, e5, NULL), &cfg, "DOCKER_HOST", NULL);
  char *e6[] = {"WORKFLOW_PREFIX=x/y", NULL};
  expect_bad(load(&cfg, e6, NULL), &cfg, "WORKFLOW_PREFIX", NULL);
  /* ... but a good flag hides a bad variable */
  ASSERT_EQ(load(&cfg, e1, "--max-parallel", "2", NULL), WF_CONFIG_OK);
  wf_config_finish(&cfg);

  /* config file */
  expect_bad(load(&cfg, no_env, "--config", "/nonexistent/x.yaml", NULL), &cfg,
             "config /nonexistent/x.yaml", "No such file", NULL);
  expect_bad(load(&cfg, no_env, "--config=", NULL), &cfg, "--config", NULL);
  write_cfg("bogus: 1\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "config ", cfg_path,
             "key \"bogus\" is unknown", NULL);
  write_cfg("config: /x\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"config\" is unknown", NULL);
  write_cfg("help: true\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"help\" is unknown", NULL);
  write_cfg("ttl: 5\nttl: 6\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "duplicate key", "line 2", NULL);
  write_cfg("max-parallel: 5\nmax_parallel: 6\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "max-parallel", "twice", NULL);
  write_cfg("ttl: [\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, cfg_path, "line 2", NULL);
  write_cfg("- a\n- b\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "expected a mapping", NULL);
  write_cfg("a: 1\n---\nb: 2\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "documents", NULL);
  write_cfg("max-parallel: abc\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"max-parallel\": \"abc\"",
             "whole number", NULL);
  write_cfg("max_parallel: 1.5\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"max-parallel\": \"1.5\"", NULL);
  write_cfg("ttl: true\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"ttl\"", NULL);
  write_cfg("ttl: {a: 1}\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"ttl\"", "single value", NULL);
  write_cfg("etcd: [http://a:1, 5]\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"etcd\"", "item 2", NULL);
  write_cfg("etcd: [http://a:1, \"ftp://b:2\"]\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"etcd\"", "ftp://b:2", NULL);
  write_cfg("prefix: a/b\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"prefix\"", NULL);
  write_cfg("log-level: 3\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"log-level\"", "\"3\"", NULL);
  write_cfg("[1, 2");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, cfg_path, NULL);
  cfg_drop();
}

/* Runs load with stdout sent to a file and returns what was printed. */
static char *capture(enum wf_config_result *r, const char *flag) {
  char out[] = "/tmp/wf-test-config-out-XXXXXX";
  int fd = mkstemp(out);
  ASSERT(fd >= 0);
  fflush(stdout);
  int saved = dup(1);
  dup2(fd, 1);
  wf_config_t cfg;
  *r = load(&cfg, no_env, "--max-parallel=bad", flag, NULL);
  wf_config_finish(&cfg);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  char *text = wf_calloc(1, 65536);
  ASSERT(pread(fd, text, 65535, 0) >= 0);
  close(fd);
  unlink(out);
  return text;
}

static void test_help_version(void) {
  enum wf_config_result r;
  char *text = capture(&r, "--help");
  ASSERT_EQ(r, WF_CONFIG_EXIT);
  static const char *const want[] = {
      "--name",          "WORKFLOW_NODE_NAME", "--etcd",          "WORKFLOW_ETCD",
      "http://127.0.0.1:2379", "--prefix",     "inforboard",      "--config",
      "WORKFLOW_CONFIG", "--log-dir",          "runner_log",      "--actions-dir",
      "--output-dir",    "WORKFLOW_OUTPUT_DIR", "runner_output",
      "--docker-host",   "DOCKER_HOST",        "--max-parallel",  "WORKFLOW_MAX_PARALLEL",
      "--step-timeout",  "--stop-grace",       "--resync",        "--ttl",
      "--drain-timeout", "--log-level",        "--log-format",    "--address",
      "--help",          "--version",          "WORKFLOW_LOG_FORMAT",
      "--log-retention DURATION", "WORKFLOW_LOG_RETENTION", "--log-max-bytes SIZE",
      "WORKFLOW_LOG_MAX_BYTES", "--etcd-http2 auto|off", "WORKFLOW_ETCD_HTTP2",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(text, want[i])) WF_FAIL("--help lacks %s:\n%s", want[i], text);
  free(text);
  text = capture(&r, "-h");
  ASSERT_EQ(r, WF_CONFIG_EXIT);
  free(text);
  text = capture(&r, "--version");
  ASSERT_EQ(r, WF_CONFIG_EXIT);
  ASSERT_STR_EQ(text, "workflow-node " WF_VERSION "\n");
  free(text);
}

static void test_etcd_parse(void) {
  char **v = NULL;
  size_t n = 0;
  char why[256];
  ASSERT_OK(wf_cli_parse_etcd(" http://a:1 ,http://b.example.com:2379/", &v, &n, why,
                              sizeof why));
  ASSERT_EQ(n, 2);
  ASSERT_STR_EQ(v[0], "http://a:1");
  ASSERT_STR_EQ(v[1], "http://b.example.com:2379");
  ASSERT_NULL(v[2]);
  wf_argv_free(v);
  ASSERT_EQ(wf_cli_parse_etcd("http://a:1,", &v, &n, why, sizeof why), -1);
  ASSERT(strstr(why, "empty") != NULL);
}

/* --log-retention and --log-max-bytes: off by default, every source, the
 * units, and bad values naming the flag, variable or key. */
static void test_log_retention(void) {
  wf_config_t cfg;
  char cflag[64];
  ASSERT_EQ(load(&cfg, no_env, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 0);
  ASSERT_EQ(cfg.node.log_max_bytes, 0);
  wf_config_finish(&cfg);

  ASSERT_EQ(load(&cfg, no_env, "--log-retention", "7d", "--log-max-bytes=10G", NULL),
            WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 7LL * 86400 * 1000);
  ASSERT_EQ(cfg.node.log_max_bytes, 10ULL << 30);
  wf_config_finish(&cfg);
  ASSERT_EQ(load(&cfg, no_env, "--log-retention=0", "--log-max-bytes", "0", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 0);
  ASSERT_EQ(cfg.node.log_max_bytes, 0);
  wf_config_finish(&cfg);

  char *env[] = {"WORKFLOW_LOG_RETENTION=3600", "WORKFLOW_LOG_MAX_BYTES=512KiB", NULL};
  ASSERT_EQ(load(&cfg, env, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 3600000);
  ASSERT_EQ(cfg.node.log_max_bytes, 524288);
  wf_config_finish(&cfg);

  cfg_make();
  snprintf(cflag, sizeof cflag, "--config=%s", cfg_path);
  write_cfg("log-retention: 2w\nlog_max_bytes: 1048576\n");
  ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 14LL * 86400 * 1000);
  ASSERT_EQ(cfg.node.log_max_bytes, 1048576);
  wf_config_finish(&cfg);
  /* flag > env > file */
  ASSERT_EQ(load(&cfg, env, cflag, "--log-retention", "90s", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.log_retention_ms, 90000);
  ASSERT_EQ(cfg.node.log_max_bytes, 524288);
  wf_config_finish(&cfg);

  expect_bad(load(&cfg, no_env, "--log-retention", "7x", NULL), &cfg,
             "--log-retention: \"7x\" is not a duration", NULL);
  static const char *const bad_durations[] = {"-1d", "", "1.5h", "7D", "1h30m", " 7d",
                                              "99999999999999999999d", "106751991168d"};
  for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++)
    expect_bad(load(&cfg, no_env, "--log-retention", bad_durations[i], NULL), &cfg,
               "--log-retention", NULL);
  expect_bad(load(&cfg, no_env, "--log-max-bytes", "1.5G", NULL), &cfg,
             "--log-max-bytes: \"1.5G\" is not a size", NULL);
  static const char *const bad_sizes[] = {"-1", "", "10GB", "1P", "K", "18446744073709551616",
                                          "16777216T"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
    expect_bad(load(&cfg, no_env, "--log-max-bytes", bad_sizes[i], NULL), &cfg,
               "--log-max-bytes", NULL);
  char *e1[] = {"WORKFLOW_LOG_MAX_BYTES=10GB", NULL};
  expect_bad(load(&cfg, e1, NULL), &cfg, "WORKFLOW_LOG_MAX_BYTES: \"10GB\" is not a size",
             NULL);
  char *e2[] = {"WORKFLOW_LOG_RETENTION=1y", NULL};
  expect_bad(load(&cfg, e2, NULL), &cfg, "WORKFLOW_LOG_RETENTION: \"1y\"", NULL);
  write_cfg("log-max-bytes: 1.5\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"log-max-bytes\": \"1.5\"",
             "not a size", NULL);
  write_cfg("log_retention: -5\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"log-retention\": \"-5\"", NULL);
  write_cfg("log-retention: [7d]\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"log-retention\"", NULL);
  cfg_drop();
}

/* --etcd-http2: auto by default; off from the flag, the variable or the
 * file (a bare YAML `off`, which the YAML reader types as false, too);
 * flag > env > file; a bad value exits 2 naming the flag, variable or key
 * and the accepted values. */
static void test_etcd_http2(void) {
  wf_config_t cfg;
  char cflag[64];
  ASSERT_EQ(load(&cfg, no_env, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_AUTO);
  wf_config_finish(&cfg);
  ASSERT_EQ(load(&cfg, no_env, "--etcd-http2", "off", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_OFF);
  wf_config_finish(&cfg);
  ASSERT_EQ(load(&cfg, no_env, "--etcd-http2=OFF", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_OFF);
  wf_config_finish(&cfg);
  ASSERT_EQ(load(&cfg, no_env, "--etcd-http2=auto", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_AUTO);
  wf_config_finish(&cfg);

  char *env_off[] = {"WORKFLOW_ETCD_HTTP2=off", NULL};
  ASSERT_EQ(load(&cfg, env_off, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_OFF);
  wf_config_finish(&cfg);
  char *env_empty[] = {"WORKFLOW_ETCD_HTTP2=", NULL};  /* empty counts as unset */
  ASSERT_EQ(load(&cfg, env_empty, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_AUTO);
  wf_config_finish(&cfg);
  ASSERT_EQ(load(&cfg, env_off, "--etcd-http2", "auto", NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_AUTO);  /* the flag wins */
  wf_config_finish(&cfg);

  cfg_make();
  snprintf(cflag, sizeof cflag, "--config=%s", cfg_path);
  static const char *const off_files[] = {"etcd-http2: off\n", "etcd_http2: \"off\"\n",
                                          "etcd-http2: Off\n", "etcd-http2: no\n"};
  for (size_t i = 0; i < sizeof off_files / sizeof off_files[0]; i++) {
    write_cfg(off_files[i]);
    ASSERT_EQ(load(&cfg, no_env, cflag, NULL), WF_CONFIG_OK);
    if (cfg.node.etcd_http2 != WF_HTTP2_OFF) WF_FAIL("file \"%s\": not off", off_files[i]);
    wf_config_finish(&cfg);
  }
  write_cfg("etcd-http2: auto\n");
  ASSERT_EQ(load(&cfg, env_off, cflag, NULL), WF_CONFIG_OK);
  ASSERT_EQ(cfg.node.etcd_http2, WF_HTTP2_OFF);  /* env > file */
  wf_config_finish(&cfg);

  expect_bad(load(&cfg, no_env, "--etcd-http2", "maybe", NULL), &cfg,
             "--etcd-http2: \"maybe\" is not one of auto, off", NULL);
  expect_bad(load(&cfg, no_env, "--etcd-http2=", NULL), &cfg, "--etcd-http2", "auto, off",
             NULL);
  expect_bad(load(&cfg, no_env, "--etcd-http2", "on", NULL), &cfg, "--etcd-http2", "\"on\"",
             NULL);
  expect_bad(load(&cfg, no_env, "--etcd-http2", NULL), &cfg, "--etcd-http2", "needs a value",
             NULL);
  char *env_bad[] = {"WORKFLOW_ETCD_HTTP2=h2", NULL};
  expect_bad(load(&cfg, env_bad, NULL), &cfg,
             "WORKFLOW_ETCD_HTTP2: \"h2\" is not one of auto, off", NULL);
  write_cfg("etcd-http2: true\n");  /* YAML's true (or on, yes): not a mode */
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"etcd-http2\": \"true\"",
             "auto, off", NULL);
  write_cfg("etcd-http2: 2\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"etcd-http2\": \"2\"", NULL);
  write_cfg("etcd-http2: [off]\n");
  expect_bad(load(&cfg, no_env, cflag, NULL), &cfg, "key \"etcd-http2\"", "single value",
             NULL);
  cfg_drop();
}

static const wf_test_t tests[] = {
    WF_TEST(defaults), WF_TEST(every_flag), WF_TEST(env), WF_TEST(precedence),
    WF_TEST(file_forms), WF_TEST(bad), WF_TEST(help_version), WF_TEST(etcd_parse),
    WF_TEST(log_retention), WF_TEST(etcd_http2),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
