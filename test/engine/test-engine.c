/*
 * test-engine: the engine (src/engine/) against a real etcd (WF_TEST_ETCD)
 * with the real LOCAL runner, steps and actions written as docs/protocol.md
 * §2-§4 lays them out: a PENDDING step of this node is claimed (RUNNING with
 * start_at), runs and ends SUCCEEDED with its output in its log file; a
 * failing command, an unknown action and a missing program end FAILED with
 * the reason; CANCELING ends a running step CANCELED (and a step that never
 * ran); a running step that is deleted or given to another node is stopped
 * and never written back; WORKFLOW_TIMEOUT fails a step that runs too long;
 * params merge into the environment (action defaults < pipeline `with` <
 * step `with`) and a missing required param or pipeline fails the step; a
 * RUNNING or CANCELING step from before a restart is failed or canceled; a
 * step of another node, and a finished one, are left alone; keys the node
 * does not own survive both of its writes; --max-parallel holds the second
 * step until the first ended.
 *
 * The engine, its etcd client and the runner run on `loop`; the test reads
 * and writes etcd through etcd-sync.h's client on a second loop (t_loop), so
 * the engine only runs while the test waits for it.  Each case has its own
 * prefix and log directory.  Where the number of writes matters, the
 * step's whole history is read back (a watch replay from its creation):
 * the claim and the outcome, nothing else.
 */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etcd/etcd-sync.h"
#include "wf/engine.h"
#include "wf/runner-local.h"

#define NODE "node-t"

static uv_loop_t loop;
static wf_etcd_t *ec;       /* the engine's client */
static wf_runner_t *runner; /* LOCAL */
static wf_engine_t *eng;
static uv_timer_t tick;
static char prefix[64];
static char logdir[256];
static char outdir[300];

static void on_tick(uv_timer_t *t) { (void)t; }

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

/* Runs the engine's loop for about ms. */
static void loop_for(uint64_t ms) {
  uint64_t end = mono_ms() + ms;
  uv_timer_start(&tick, on_tick, 10, 10);
  while (mono_ms() < end) uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&tick);
}

#define LOOP_UNTIL(cond, ms)                                                        \
  do {                                                                              \
    uint64_t dl_ = mono_ms() + (ms);                                                \
    uv_timer_start(&tick, on_tick, 10, 10);                                         \
    while (!(cond)) {                                                               \
      if (mono_ms() > dl_) WF_FAIL("timed out after %d ms: %s", (int)(ms), #cond);  \
      uv_run(&loop, UV_RUN_ONCE);                                                   \
    }                                                                               \
    uv_timer_stop(&tick);                                                           \
  } while (0)

/* ---- keys, objects ------------------------------------------------------------------ */

static char *step_key(const char *key) { return wf_asprintf("%s/workflow/steps/%s", prefix, key); }

static void put_json(const char *k, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  t_put(k, s);
  free(s);
  json_decref(o);
}

/* An action as `wfctl apply` stores it, LOCAL, argv given as a JSON array;
 * run_params (a JSON array, stolen) may be NULL. */
static void put_action_rp(const char *name, const char *script, json_t *run_params) {
  char *k = wf_asprintf("%s/workflow/actions/%s@v1", prefix, name);
  json_t *argv = json_pack("[s,s,s]", "sh", "-c", script);
  char *cmd = json_dumps(argv, JSON_COMPACT);
  put_json(k, json_pack("{s:s,s:s,s:s,s:{s:s},s:o}", "name", name, "version", "v1",
                        "runner_type", "LOCAL", "runner_params", "CMD", cmd, "run_params",
                        run_params ? run_params : json_array()));
  free(cmd);
  json_decref(argv);
  free(k);
}

static void put_action(const char *name, const char *script) {
  put_action_rp(name, script, NULL);
}

static json_t *step_obj(const char *key, const char *action, const char *node,
                        const char *status) {
  return json_pack("{s:s,s:s,s:s,s:s,s:{},s:{s:s,s:s}}", "key", key, "create_type", "USER",
                   "name", key, "action", action, "with", "status", "status", status,
                   "scheduled_node", node);
}

/* Writes a step; returns the revision that created it. */
static int64_t put_step_obj(const char *key, json_t *o) {
  char *k = step_key(key);
  char *s = json_dumps(o, JSON_COMPACT);
  int64_t rev = t_put(k, s);
  free(s);
  free(k);
  json_decref(o);
  return rev;
}

static int64_t put_step(const char *key, const char *action) {
  return put_step_obj(key, step_obj(key, action, NODE, "PENDDING"));
}

/* The step as etcd holds it now (NULL if gone); *mod gets its revision. */
static json_t *get_step(const char *key, int64_t *mod, char **raw) {
  char *k = step_key(key);
  t_res_t r;
  t_get(k, &r);
  free(k);
  json_t *o = NULL;
  if (r.nkvs == 1) {
    o = json_loads(r.kvs[0].value, 0, NULL);
    ASSERT_NOT_NULL(o);
    if (mod) *mod = r.kvs[0].mod_revision;
    if (raw) *raw = wf_strdup(r.kvs[0].value);
  }
  t_res_free(&r);
  return o;
}

static const char *st_str(const json_t *step, const char *field) {
  return json_string_value(json_object_get(json_object_get(step, "status"), field));
}
static int64_t st_int(const json_t *step, const char *field) {
  return json_integer_value(json_object_get(json_object_get(step, "status"), field));
}
static const char *resp(const json_t *step, const char *field) {
  return json_string_value(
      json_object_get(json_object_get(json_object_get(step, "status"), "response"), field));
}

static wf_engine_stats_t stats(void);

/* Lets the engine run until the step's status is `want`; fails on a final
 * status that is not it.  Returns the step (the caller frees it).  For a
 * final status it also waits until the job that wrote it has seen the
 * answer and given back its slot (the write lands in etcd before that), so
 * the engine's counters are up to date. */
static json_t *wait_status(const char *key, const char *want, uint64_t ms) {
  uint64_t dl = mono_ms() + ms;
  for (;;) {
    json_t *o = get_step(key, NULL, NULL);
    const char *s = o ? st_str(o, "status") : NULL;
    if (s && strcmp(s, want) == 0) {
      if (strcmp(want, "RUNNING") != 0) LOOP_UNTIL(stats().running == 0, 5000);
      return o;
    }
    if (s && (strcmp(s, "SUCCEEDED") == 0 || strcmp(s, "FAILED") == 0 ||
              strcmp(s, "CANCELED") == 0)) {
      char *d = json_dumps(o, JSON_COMPACT);
      WF_FAIL("step %s ended %s, want %s: %s", key, s, want, d);
    }
    json_decref(o);
    if (mono_ms() > dl) WF_FAIL("step %s: no %s within %llu ms (now %s)", key, want,
                                (unsigned long long)ms, s ? s : "gone");
    loop_for(20);
  }
}

/* Every value the step had since revision `from` (a watch replay), up to
 * its current revision.  The caller frees them with free_history. */
typedef struct hist_s {
  int64_t until;
  int64_t last;
  size_t n;
  int deletes;
  char *val[16];
} hist_t;

static void hist_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  hist_t *h = data;
  for (size_t i = 0; i < n; i++) {
    h->last = ev[i].kv.mod_revision;
    if (ev[i].type == WF_ETCD_DELETE) {
      h->deletes++;
      continue;
    }
    ASSERT(h->n < 16);
    h->val[h->n++] = wf_strndup(ev[i].kv.value, ev[i].kv.value_len);
  }
}

static void history(const char *key, int64_t from, hist_t *h) {
  memset(h, 0, sizeof *h);
  int64_t mod = 0;
  json_t *o = get_step(key, &mod, NULL);
  ASSERT_NOT_NULL(o);
  json_decref(o);
  h->until = mod;
  char *k = step_key(key);
  wf_etcd_watch_cbs_t cbs = {.on_events = hist_events};
  /* The key as a prefix: the test's keys are never a prefix of another. */
  wf_etcd_watch_t *w = wf_etcd_watch(t_etcd, k, strlen(k), from, &cbs, h);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(h->last >= h->until);
  wf_etcd_watch_cancel(w);
  free(k);
}

static void free_history(hist_t *h) {
  for (size_t i = 0; i < h->n; i++) free(h->val[i]);
}

static json_t *hist_json(const hist_t *h, size_t i) {
  ASSERT(i < h->n);
  json_t *o = json_loads(h->val[i], 0, NULL);
  ASSERT_NOT_NULL(o);
  return o;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = wf_malloc(65536);
  size_t n = fread(buf, 1, 65535, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* The pid the step's script printed first (`echo $$` before an exec). */
static int wait_pid_in_log(const char *path) {
  uint64_t dl = mono_ms() + 5000;
  for (;;) {
    char *s = read_file(path);
    int pid = s && strchr(s, '\n') ? atoi(s) : 0;
    free(s);
    if (pid > 0) return pid;
    if (mono_ms() > dl) WF_FAIL("no pid in %s", path);
    loop_for(20);
  }
}

static int process_gone(int pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

/* Puts the step's current value back with status CANCELING (a guarded
 * write, as a scheduler would do it). */
static void set_canceling(const char *key) {
  int64_t mod = 0;
  json_t *o = get_step(key, &mod, NULL);
  ASSERT_NOT_NULL(o);
  json_object_set_new(json_object_get(o, "status"), "status", json_string("CANCELING"));
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char *k = step_key(key);
  t_res_t r = {0};
  CALL(wf_etcd_put_if(t_etcd, k, strlen(k), mod, s, strlen(s), t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 1);
  free(k);
  free(s);
}

/* ---- the engine's life ----------------------------------------------------------------- */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static void setup_with(const char *name, unsigned max_parallel) {
  t_setup(); /* the test's client, on t_loop */
  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_OK(uv_timer_init(&loop, &tick));
  snprintf(prefix, sizeof prefix, "t-%s", name);
  snprintf(logdir, sizeof logdir, "/tmp/wf-test-engine-XXXXXX");
  ASSERT_NOT_NULL(mkdtemp(logdir));
  snprintf(outdir, sizeof outdir, "%s/out", logdir);
  const char *ep = wf_test_etcd();
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = &ep;
  o.nendpoints = 1;
  ec = wf_etcd_create(&loop, &o);
  ASSERT_NOT_NULL(ec);
  runner = wf_local_runner_create(&loop, NULL);
  ASSERT_NOT_NULL(runner);
  wf_engine_cfg_t cfg = {
      .node_name = NODE,
      .prefix = prefix,
      .log_dir = logdir,
      .output_dir = outdir,
      .max_parallel = max_parallel,
      .stop_grace_s = 2,
      .runners = &runner,
      .nrunners = 1,
  };
  char err[256] = "";
  eng = wf_engine_create(&loop, ec, &cfg, err, sizeof err);
  if (!eng) WF_FAIL("wf_engine_create: %s", err);
}

static void setup(const char *name) { setup_with(name, 4); }

static void start(void) {
  wf_engine_start(eng);
  LOOP_UNTIL(wf_engine_live(eng), 5000);
}

static void on_closed(void *data) { (*(int *)data)++; }

/* Drain, close the engine, then the runner, then its etcd client; every
 * handle is gone after that (uv_loop_close() == 0), and so is the log dir. */
static void teardown(void) {
  int drained = 0, closed = 0;
  wf_engine_drain(eng, 5, on_closed, &drained);
  LOOP_UNTIL(drained == 1, 10000);
  wf_engine_close(eng, on_closed, &closed);
  ASSERT_EQ(closed, 0);
  LOOP_UNTIL(closed == 1, 5000);
  eng = NULL;
  wf_runner_close(runner, on_closed, &closed);
  LOOP_UNTIL(closed == 2, 5000);
  runner = NULL;
  wf_etcd_close(ec, on_closed, &closed);
  LOOP_UNTIL(closed == 3, 5000);
  ec = NULL;
  uv_close((uv_handle_t *)&tick, NULL);
  wf_test_close_loop(&loop);
  t_teardown();
  nftw(logdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static wf_engine_stats_t stats(void) {
  wf_engine_stats_t s;
  wf_engine_stats(eng, &s);
  return s;
}

/* The log path the node chose: <log dir>/<Y>/<M>/<D>/<key> for the day of
 * start_at, month and day not zero-padded (docs/protocol.md §6). */
static void check_log_path(const char *path, const char *key, int64_t start_at) {
  ASSERT_NOT_NULL(path);
  time_t t = (time_t)(start_at / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  char want[512];
  snprintf(want, sizeof want, "%s/%d/%d/%d/%s", logdir, tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, key);
  ASSERT_STR_EQ(path, want);
}

/* ---- the cases ------------------------------------------------------------------------- */

/* PENDDING -> RUNNING (start_at, log_driver, log_path, claim_id) ->
 * SUCCEEDED (end_at, empty message, exit_code 0, pid): exactly two writes,
 * and the log file holds stdout and stderr in order, with the WORKFLOW_*
 * environment the step got. */
static void test_success(void) {
  setup("success");
  put_action("hello", "echo hi; echo \"key=$WORKFLOW_STEP_KEY node=$WORKFLOW_NODE_NAME\"; "
                      "echo to-stderr >&2");
  start();
  int64_t t0 = wf_now_ms();
  int64_t r0 = put_step("s1", "hello@v1");
  json_t *fin = wait_status("s1", "SUCCEEDED", 10000);
  int64_t t1 = wf_now_ms();

  hist_t h;
  history("s1", r0, &h);
  ASSERT_EQ(h.n, 3); /* ours, the claim, the outcome */
  ASSERT_EQ(h.deletes, 0);
  json_t *run = hist_json(&h, 1);
  ASSERT_STR_EQ(st_str(run, "status"), "RUNNING");
  int64_t start_at = st_int(run, "start_at");
  ASSERT(start_at >= t0 && start_at <= t1);
  ASSERT_STR_EQ(st_str(run, "scheduled_node"), NODE);
  ASSERT_STR_EQ(resp(run, "log_driver"), "local_file");
  ASSERT_NOT_NULL(resp(run, "claim_id"));
  ASSERT(resp(run, "claim_id")[0] != '\0');
  check_log_path(resp(run, "log_path"), "s1", start_at);
  ASSERT_EQ(st_int(run, "end_at"), 0);
  ASSERT(json_integer_value(json_object_get(run, "update_at")) >= start_at);
  json_t *last = hist_json(&h, 2);
  ASSERT(json_equal(last, fin));

  ASSERT_EQ(st_int(fin, "start_at"), start_at);
  int64_t end_at = st_int(fin, "end_at");
  ASSERT(end_at >= start_at && end_at <= t1);
  ASSERT_STR_EQ(st_str(fin, "message"), "");
  ASSERT_STR_EQ(resp(fin, "exit_code"), "0");
  ASSERT_STR_EQ(resp(fin, "log_driver"), "local_file");
  ASSERT_STR_EQ(resp(fin, "log_path"), resp(run, "log_path"));
  ASSERT_STR_EQ(resp(fin, "claim_id"), resp(run, "claim_id"));
  ASSERT_NOT_NULL(resp(fin, "pid"));
  ASSERT(atoi(resp(fin, "pid")) > 0);
  ASSERT(json_integer_value(json_object_get(fin, "update_at")) >= end_at);
  char *log = read_file(resp(fin, "log_path"));
  ASSERT_NOT_NULL(log);
  ASSERT_STR_EQ(log, "hi\nkey=s1 node=" NODE "\nto-stderr\n");
  free(log);

  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.started, 1);
  ASSERT_EQ(s.succeeded, 1);
  ASSERT_EQ(s.failed, 0);
  ASSERT_EQ(s.running, 0);
  ASSERT_EQ(s.cached, 1);
  json_decref(run);
  json_decref(last);
  json_decref(fin);
  free_history(&h);
  teardown();
}

/* A command that exits 3 ends FAILED, the code in the message and in
 * response.exit_code, its output in the log. */
static void test_failure(void) {
  setup("failure");
  put_action("bad", "echo bad; exit 3");
  start();
  int64_t r0 = put_step("f1", "bad@v1");
  json_t *fin = wait_status("f1", "FAILED", 10000);
  ASSERT_STR_EQ(st_str(fin, "message"), "process exited with exit code 3");
  ASSERT_STR_EQ(resp(fin, "exit_code"), "3");
  ASSERT(st_int(fin, "end_at") >= st_int(fin, "start_at"));
  ASSERT(st_int(fin, "start_at") > 0);
  char *log = read_file(resp(fin, "log_path"));
  ASSERT_NOT_NULL(log);
  ASSERT_STR_EQ(log, "bad\n");
  free(log);
  hist_t h;
  history("f1", r0, &h);
  ASSERT_EQ(h.n, 3);
  json_t *run = hist_json(&h, 1);
  ASSERT_STR_EQ(st_str(run, "status"), "RUNNING");
  json_decref(run);
  free_history(&h);
  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.failed, 1);
  ASSERT_EQ(s.succeeded, 0);
  json_decref(fin);
  teardown();
}

/* A step whose action exists nowhere (neither the catalog nor etcd) is
 * claimed, then ends FAILED saying which action is missing. */
static void test_unknown_action(void) {
  setup("unknown_action");
  put_action("hello", "echo hi");
  start();
  int64_t r0 = put_step("u1", "nope@v1");
  json_t *fin = wait_status("u1", "FAILED", 10000);
  ASSERT_STR_EQ(st_str(fin, "message"), "action \"nope@v1\" not found");
  ASSERT(st_int(fin, "end_at") > 0);
  hist_t h;
  history("u1", r0, &h);
  ASSERT_EQ(h.n, 3);
  json_t *run = hist_json(&h, 1);
  ASSERT_STR_EQ(st_str(run, "status"), "RUNNING");
  json_decref(run);
  free_history(&h);
  ASSERT_EQ(stats().failed, 1);
  ASSERT_EQ(stats().started, 0); /* nothing ran */
  json_decref(fin);
  teardown();
}

/* A LOCAL command naming a program that does not exist ends FAILED with
 * the runner's reason. */
static void test_missing_program(void) {
  setup("missing_program");
  char *k = wf_asprintf("%s/workflow/actions/gone@v1", prefix);
  t_put(k, "{\"name\":\"gone\",\"version\":\"v1\",\"runner_type\":\"LOCAL\","
           "\"runner_params\":{\"CMD\":\"/nonexistent/wf-test-prog,arg\"}}");
  free(k);
  start();
  put_step("m1", "gone@v1");
  json_t *fin = wait_status("m1", "FAILED", 10000);
  const char *msg = st_str(fin, "message");
  ASSERT_NOT_NULL(msg);
  if (!strstr(msg, "cannot run /nonexistent/wf-test-prog"))
    WF_FAIL("message does not name the program: %s", msg);
  json_decref(fin);
  teardown();
}

/* CANCELING on a running step: SIGTERM to its process group, the step ends
 * CANCELED ("canceled") well within the grace period, exit code 143, and
 * the process is gone. */
static void test_cancel(void) {
  setup("cancel");
  put_action("long", "echo $$; exec sleep 30");
  start();
  put_step("c1", "long@v1");
  json_t *run = wait_status("c1", "RUNNING", 10000);
  int pid = wait_pid_in_log(resp(run, "log_path"));
  ASSERT_EQ(kill(pid, 0), 0); /* running */
  uint64_t t0 = mono_ms();
  set_canceling("c1");
  json_t *fin = wait_status("c1", "CANCELED", 5000);
  ASSERT(mono_ms() - t0 < 1900); /* SIGTERM did it, not the kill after 2 s */
  ASSERT_STR_EQ(st_str(fin, "message"), "canceled");
  ASSERT_STR_EQ(resp(fin, "exit_code"), "143");
  ASSERT_EQ(st_int(fin, "start_at"), st_int(run, "start_at"));
  ASSERT(st_int(fin, "end_at") >= st_int(fin, "start_at"));
  ASSERT(process_gone(pid));
  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.canceled, 1);
  ASSERT_EQ(s.running, 0);
  json_decref(run);
  json_decref(fin);
  teardown();
}

/* A step that is CANCELING before this node ever ran it ends CANCELED
 * without running. */
static void test_cancel_pending(void) {
  setup("cancel_pending");
  put_action("hello", "echo hi");
  start();
  int64_t r0 = put_step_obj("cp1", step_obj("cp1", "hello@v1", NODE, "CANCELING"));
  json_t *fin = wait_status("cp1", "CANCELED", 10000);
  ASSERT_STR_EQ(st_str(fin, "message"), "canceled before it ran");
  hist_t h;
  history("cp1", r0, &h);
  ASSERT_EQ(h.n, 2); /* never RUNNING */
  free_history(&h);
  ASSERT_EQ(stats().started, 0);
  json_decref(fin);
  teardown();
}

/* A running step whose key is deleted is stopped (its process killed) and
 * its status never written back: the key stays gone. */
static void test_delete_running(void) {
  setup("delete_running");
  put_action("long", "echo $$; exec sleep 30");
  start();
  put_step("d1", "long@v1");
  json_t *run = wait_status("d1", "RUNNING", 10000);
  int pid = wait_pid_in_log(resp(run, "log_path"));
  char *k = step_key("d1");
  ASSERT_EQ(t_delete(k, NULL), 1);
  LOOP_UNTIL(stats().running == 0, 5000);
  loop_for(300);
  t_res_t r;
  t_get(k, &r);
  ASSERT_EQ(r.nkvs, 0); /* not resurrected by a status write */
  t_res_free(&r);
  ASSERT(process_gone(pid));
  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.succeeded + s.failed + s.canceled, 0);
  ASSERT_EQ(s.cached, 0);
  free(k);
  json_decref(run);
  teardown();
}

/* Steps this node must not touch: one PENDDING for another node, and one of
 * ours that is already SUCCEEDED.  A step of ours written after them runs
 * to its end, so the engine saw both; they keep their bytes and revision. */
static void test_other_node(void) {
  setup("other_node");
  put_action("hello", "echo hi");
  put_step_obj("o1", step_obj("o1", "hello@v1", "node-other", "PENDDING"));
  put_step_obj("o2", step_obj("o2", "hello@v1", NODE, "SUCCEEDED"));
  int64_t m1 = 0, m2 = 0;
  char *raw1 = NULL, *raw2 = NULL;
  json_decref(get_step("o1", &m1, &raw1));
  json_decref(get_step("o2", &m2, &raw2));
  start();
  put_step_obj("o3", step_obj("o3", "hello@v1", "node-other", "PENDDING")); /* via the watch */
  put_step("mine", "hello@v1");
  json_decref(wait_status("mine", "SUCCEEDED", 10000));
  loop_for(200);
  int64_t n1 = 0, n2 = 0;
  char *now1 = NULL, *now2 = NULL;
  json_decref(get_step("o1", &n1, &now1));
  json_decref(get_step("o2", &n2, &now2));
  ASSERT_EQ(n1, m1);
  ASSERT_EQ(n2, m2);
  ASSERT_STR_EQ(now1, raw1);
  ASSERT_STR_EQ(now2, raw2);
  json_t *o3 = get_step("o3", NULL, NULL);
  ASSERT_STR_EQ(st_str(o3, "status"), "PENDDING");
  json_decref(o3);
  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.started, 1);
  ASSERT_EQ(s.cached, 2); /* o2 and mine: ours; o1 and o3 are not kept */
  free(raw1);
  free(raw2);
  free(now1);
  free(now2);
  teardown();
}

/* After a restart (docs/protocol.md §4): a step of ours RUNNING since before
 * the engine started, which the LOCAL runner cannot re-attach to, ends
 * FAILED saying the node restarted; one CANCELING since before ends
 * CANCELED; one claimed after the engine started (another process under
 * our name) is left alone. */
static void test_recover(void) {
  setup("recover");
  put_action("hello", "echo hi");
  int64_t old = wf_now_ms() - 60000;
  json_t *o = step_obj("rr1", "hello@v1", NODE, "RUNNING");
  json_object_set_new(json_object_get(o, "status"), "start_at", json_integer(old));
  put_step_obj("rr1", o);
  o = step_obj("rr2", "hello@v1", NODE, "CANCELING");
  json_object_set_new(json_object_get(o, "status"), "start_at", json_integer(old));
  put_step_obj("rr2", o);
  o = step_obj("rr3", "hello@v1", NODE, "RUNNING");
  json_object_set_new(json_object_get(o, "status"), "start_at",
                      json_integer(wf_now_ms() + 3600 * 1000));
  put_step_obj("rr3", o);
  int64_t m3 = 0;
  char *raw3 = NULL;
  json_decref(get_step("rr3", &m3, &raw3));
  start();
  json_t *f1 = wait_status("rr1", "FAILED", 10000);
  json_t *f2 = wait_status("rr2", "CANCELED", 10000);
  ASSERT_STR_EQ(st_str(f1, "message"), "node restarted while the step was running");
  ASSERT_STR_EQ(st_str(f2, "message"), "canceled; the node restarted while the step was running");
  ASSERT_EQ(st_int(f1, "start_at"), old);
  ASSERT(st_int(f1, "end_at") >= old);
  put_step("mine", "hello@v1");
  json_decref(wait_status("mine", "SUCCEEDED", 10000));
  loop_for(200);
  int64_t n3 = 0;
  char *now3 = NULL;
  json_decref(get_step("rr3", &n3, &now3));
  ASSERT_EQ(n3, m3);
  ASSERT_STR_EQ(now3, raw3);
  ASSERT_EQ(stats().started, 1); /* only "mine" ran */
  free(raw3);
  free(now3);
  json_decref(f1);
  json_decref(f2);
  teardown();
}

/* The node writes only status.status, start_at, end_at, message, keys of
 * status.response, and update_at (docs/protocol.md §3, §4): every other
 * key, known to the schema or not, nested, null, non-ASCII or escaped,
 * is the same after the claim and after the outcome. */
static const char *const RICH =
    "{\"key\":\"k1\",\"create_type\":\"USER\",\"namespace\":\"ns1\",\"pipeline_id\":\"\","
    "\"create_at\":1626770673846,\"update_at\":1626770681002,\"deploy_id\":\"d-1\","
    "\"resource_version\":831402,\"id\":1,\"name\":\"step1.1\",\"action\":\"hello@v1\","
    "\"with\":{\"ENV1\":\"env1\"},\"is_parallel\":false,\"ignore_failed\":true,"
    "\"with_audit\":false,\"audit_params\":null,\"with_notify\":false,\"notify_params\":null,"
    "\"webhooks\":null,\"node_selector\":null,"
    "\"x_unknown\":{\"list\":[1,2.5,{\"deep\":null}],\"text\":\"gr\\u00fc\\u00dfe \\\"q\\\"\"},"
    "\"x_big\":9007199254740993,"
    "\"status\":{\"flow_number\":7,\"start_at\":0,\"end_at\":0,\"status\":\"PENDDING\","
    "\"scheduled_node\":\"" NODE "\",\"audit_at\":0,\"audit_response\":\"UOD\","
    "\"audit_message\":\"\",\"notify_at\":0,\"notify_error\":\"\",\"message\":\"\","
    "\"x_status_extra\":[\"keep\",{\"me\":true}],"
    "\"response\":{\"custom_resp\":\"r\",\"container_warn\":\"\"}}}";

static void check_kept(const json_t *orig, const json_t *now) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)orig, k, v) {
    if (strcmp(k, "update_at") == 0 || strcmp(k, "status") == 0) continue;
    if (!json_equal(v, json_object_get(now, k))) WF_FAIL("key %s changed", k);
  }
  json_object_foreach((json_t *)now, k, v) {
    if (!json_object_get(orig, k)) WF_FAIL("key %s added", k);
  }
  json_t *os = json_object_get(orig, "status"), *ns = json_object_get(now, "status");
  static const char *const owned[] = {"status", "start_at", "end_at", "message", "response"};
  json_object_foreach(os, k, v) {
    int own = 0;
    for (size_t i = 0; i < 5; i++) own |= strcmp(k, owned[i]) == 0;
    if (!own && !json_equal(v, json_object_get(ns, k))) WF_FAIL("status.%s changed", k);
  }
  json_object_foreach(ns, k, v) {
    int own = 0;
    for (size_t i = 0; i < 5; i++) own |= strcmp(k, owned[i]) == 0;
    if (!own && !json_object_get(os, k)) WF_FAIL("status.%s added", k);
  }
  ASSERT_STR_EQ(resp(now, "custom_resp"), "r");
  ASSERT_STR_EQ(resp(now, "container_warn"), "");
}

static void test_unknown_keys(void) {
  setup("unknown_keys");
  put_action("hello", "echo hi");
  start();
  char *k = step_key("k1");
  int64_t r0 = t_put(k, RICH);
  free(k);
  json_t *fin = wait_status("k1", "SUCCEEDED", 10000);
  json_t *orig = json_loads(RICH, 0, NULL);
  ASSERT_NOT_NULL(orig);
  hist_t h;
  history("k1", r0, &h);
  ASSERT_EQ(h.n, 3);
  ASSERT_STR_EQ(h.val[0], RICH);
  json_t *run = hist_json(&h, 1);
  ASSERT_STR_EQ(st_str(run, "status"), "RUNNING");
  check_kept(orig, run);
  check_kept(orig, fin);
  /* The 64-bit integer kept exactly (not through a double). */
  if (!strstr(h.val[1], "\"x_big\":9007199254740993") ||
      !strstr(h.val[2], "\"x_big\":9007199254740993"))
    WF_FAIL("x_big not kept exactly: %s", h.val[2]);
  ASSERT_STR_EQ(resp(fin, "exit_code"), "0");
  json_decref(run);
  json_decref(orig);
  json_decref(fin);
  free_history(&h);
  teardown();
}

/* A running step given to another node is stopped (its process killed) and
 * not written: the other node's value stays as it was put. */
static void test_reassigned_running(void) {
  setup("reassigned_running");
  put_action("long", "echo $$; exec sleep 30");
  start();
  put_step("r1", "long@v1");
  json_t *run = wait_status("r1", "RUNNING", 10000);
  int pid = wait_pid_in_log(resp(run, "log_path"));
  json_object_set_new(json_object_get(run, "status"), "scheduled_node",
                      json_string("node-other"));
  char *moved = json_dumps(run, JSON_COMPACT);
  char *k = step_key("r1");
  int64_t rm = t_put(k, moved);
  LOOP_UNTIL(stats().running == 0, 5000);
  loop_for(300);
  int64_t mod = 0;
  char *now = NULL;
  json_decref(get_step("r1", &mod, &now));
  ASSERT_EQ(mod, rm);
  ASSERT_STR_EQ(now, moved);
  ASSERT(process_gone(pid));
  wf_engine_stats_t s = stats();
  ASSERT_EQ(s.succeeded + s.failed + s.canceled, 0);
  ASSERT_EQ(s.cached, 0);
  free(now);
  free(moved);
  free(k);
  json_decref(run);
  teardown();
}

/* WORKFLOW_TIMEOUT in the step's `with`: the step is stopped after 1 s and
 * ends FAILED saying so. */
static void test_timeout(void) {
  setup("timeout");
  put_action("long", "echo $$; exec sleep 30");
  start();
  json_t *o = step_obj("t1", "long@v1", NODE, "PENDDING");
  json_object_set_new(o, "with", json_pack("{s:s}", "WORKFLOW_TIMEOUT", "1"));
  put_step_obj("t1", o);
  json_t *run = wait_status("t1", "RUNNING", 10000);
  int pid = wait_pid_in_log(resp(run, "log_path"));
  json_t *fin = wait_status("t1", "FAILED", 5000);
  ASSERT_STR_EQ(st_str(fin, "message"), "timed out after 1 s");
  int64_t took = st_int(fin, "end_at") - st_int(fin, "start_at");
  ASSERT(took >= 1000 && took < 3000);
  ASSERT(process_gone(pid));
  json_decref(run);
  json_decref(fin);
  teardown();
}

/* Params: an action default, overridden or not by the step's `with`,
 * reaches the command's environment; a required param missing fails the
 * step naming it, without running anything. */
static void test_params(void) {
  setup("params");
  char *k = wf_asprintf("%s/workflow/actions/greet@v1", prefix);
  t_put(k, "{\"name\":\"greet\",\"version\":\"v1\",\"runner_type\":\"local\","
           "\"runner_params\":{\"CMD\":\"[\\\"sh\\\",\\\"-c\\\",\\\"echo $GREETING $WHO\\\"]\"},"
           "\"run_params\":[{\"key_name\":\"GREETING\",\"default_value\":\"hello\"},"
           "{\"key_name\":\"WHO\",\"required\":true}]}");
  free(k);
  start();
  json_t *o = step_obj("g1", "greet@v1", NODE, "PENDDING");
  json_object_set_new(o, "with", json_pack("{s:s}", "WHO", "world"));
  put_step_obj("g1", o);
  o = step_obj("g2", "greet@v1", NODE, "PENDDING");
  json_object_set_new(o, "with", json_pack("{s:s,s:s}", "WHO", "you", "GREETING", "hi"));
  put_step_obj("g2", o);
  o = step_obj("g3", "greet@v1", NODE, "PENDDING");
  json_object_set_new(o, "with", json_pack("{s:s}", "GREETING", "hey"));
  put_step_obj("g3", o);
  json_t *f1 = wait_status("g1", "SUCCEEDED", 10000);
  json_t *f2 = wait_status("g2", "SUCCEEDED", 10000);
  json_t *f3 = wait_status("g3", "FAILED", 10000);
  char *log = read_file(resp(f1, "log_path"));
  ASSERT_STR_EQ(log, "hello world\n");
  free(log);
  log = read_file(resp(f2, "log_path"));
  ASSERT_STR_EQ(log, "hi you\n");
  free(log);
  ASSERT_STR_EQ(st_str(f3, "message"), "validate run params error, required param WHO");
  ASSERT_EQ(stats().started, 2);
  json_decref(f1);
  json_decref(f2);
  json_decref(f3);
  teardown();
}

/* A pipeline step: the pipeline's `with` sits between the action's defaults
 * and the step's `with` (docs/protocol.md §4), and WORKFLOW_NAMESPACE and
 * WORKFLOW_PIPELINE_ID name it.  A step without create_type counts as a
 * pipeline step too: its missing pipeline fails it, named. */
static void test_pipeline(void) {
  setup("pipeline");
  put_action_rp("greet", "echo $GREETING $WHO $COLOR $WORKFLOW_NAMESPACE/$WORKFLOW_PIPELINE_ID",
                json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:b}]", "key_name", "GREETING",
                          "default_value", "hello", "key_name", "COLOR", "default_value",
                          "red", "key_name", "WHO", "required", 1));
  char *k = wf_asprintf("%s/workflow/pipelines/ns1/pl1", prefix);
  put_json(k, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", "pl1", "namespace", "ns1", "with",
                        "WHO", "pipe", "GREETING", "yo"));
  free(k);
  start();
  json_t *o = step_obj("ps1", "greet@v1", NODE, "PENDDING");
  json_object_set_new(o, "create_type", json_string("PIPELINE"));
  json_object_set_new(o, "namespace", json_string("ns1"));
  json_object_set_new(o, "pipeline_id", json_string("pl1"));
  json_object_set_new(o, "with", json_pack("{s:s}", "GREETING", "step"));
  put_step_obj("ps1", o);
  o = step_obj("ps2", "greet@v1", NODE, "PENDDING");
  json_object_del(o, "create_type");
  json_object_set_new(o, "namespace", json_string("ns1"));
  json_object_set_new(o, "pipeline_id", json_string("missing"));
  json_object_set_new(o, "with", json_pack("{s:s}", "WHO", "x"));
  put_step_obj("ps2", o);
  json_t *f1 = wait_status("ps1", "SUCCEEDED", 10000);
  json_t *f2 = wait_status("ps2", "FAILED", 10000);
  char *log = read_file(resp(f1, "log_path"));
  ASSERT_STR_EQ(log, "step pipe red ns1/pl1\n");
  free(log);
  ASSERT_STR_EQ(st_str(f2, "message"), "pipeline \"ns1/missing\" not found");
  json_decref(f1);
  json_decref(f2);
  teardown();
}

/* Step outputs (docs/protocol.md §4): a stage-1 step publishes a plain and
 * a multi-line value and a summary; they are stored as output.<NAME>, the
 * summary is its message, its directory is gone; the stage-2 step of the
 * same run gets them in its environment, its own `with` winning over one
 * of them.  A step of another run is offered nothing. */
static void test_outputs(void) {
  setup("outputs");
  put_action("make", "printf 'IMAGE=reg/app:1\\nML<<E\\nl1\\nl2\\nE\\nWHO=out\\n' >> "
                     "\"$WORKFLOW_OUTPUT\"; echo built reg/app:1 > \"$WORKFLOW_SUMMARY\"");
  put_action("use", "printf '%s|%s|%s' \"$IMAGE\" \"$ML\" \"$WHO\"");
  char *k = wf_asprintf("%s/workflow/pipelines/ns1/pl1", prefix);
  put_json(k, json_pack("{s:s,s:s}", "id", "pl1", "namespace", "ns1"));
  free(k);
  k = wf_asprintf("%s/workflow/pipelines/ns1/other", prefix);
  put_json(k, json_pack("{s:s,s:s}", "id", "other", "namespace", "ns1"));
  free(k);
  start();
  const char *keys[] = {"ns1.pl1.1.1", "ns1.pl1.2.1", "ns1.other.2.1"};
  const char *acts[] = {"make@v1", "use@v1", "use@v1"};
  json_t *f[3];
  for (int i = 0; i < 3; i++) {
    json_t *o = step_obj(keys[i], acts[i], NODE, "PENDDING");
    json_object_set_new(o, "create_type", json_string("PIPELINE"));
    json_object_set_new(o, "namespace", json_string("ns1"));
    json_object_set_new(o, "pipeline_id", json_string(i == 2 ? "other" : "pl1"));
    json_object_set_new(o, "name", json_string(i == 0 ? "build" : "use"));
    if (i == 1) json_object_set_new(o, "with", json_pack("{s:s}", "WHO", "step"));
    put_step_obj(keys[i], o);
    f[i] = wait_status(keys[i], "SUCCEEDED", 10000);
  }
  ASSERT_STR_EQ(resp(f[0], "output.IMAGE"), "reg/app:1");
  ASSERT_STR_EQ(resp(f[0], "output.ML"), "l1\nl2");
  ASSERT_STR_EQ(st_str(f[0], "message"), "built reg/app:1");
  char *dir = wf_asprintf("%s/%s", outdir, keys[0]);
  struct stat sb;
  ASSERT(stat(dir, &sb) != 0 && errno == ENOENT);
  free(dir);
  char *log = read_file(resp(f[1], "log_path"));
  ASSERT_STR_EQ(log, "reg/app:1|l1\nl2|step");
  free(log);
  log = read_file(resp(f[2], "log_path"));
  ASSERT_STR_EQ(log, "||");
  free(log);
  for (int i = 0; i < 3; i++) json_decref(f[i]);
  teardown();
}

/* --max-parallel 1: of two PENDDING steps the second waits for the first's
 * slot, so it starts only after the first ended; both succeed. */
static void test_max_parallel(void) {
  setup_with("max_parallel", 1);
  put_action("nap", "sleep 0.3; echo done");
  start();
  put_step("p1", "nap@v1");
  put_step("p2", "nap@v1");
  json_t *a = wait_status("p1", "SUCCEEDED", 10000);
  json_t *b = wait_status("p2", "SUCCEEDED", 10000);
  /* Whichever ran first, the other started after it ended. */
  json_t *first = st_int(a, "start_at") <= st_int(b, "start_at") ? a : b;
  json_t *second = first == a ? b : a;
  ASSERT(st_int(second, "start_at") >= st_int(first, "end_at"));
  ASSERT_EQ(stats().succeeded, 2);
  json_decref(a);
  json_decref(b);
  teardown();
}

static const wf_test_t tests[] = {
    WF_TEST(success),            WF_TEST(failure),
    WF_TEST(unknown_action),     WF_TEST(missing_program),
    WF_TEST(cancel),             WF_TEST(cancel_pending),
    WF_TEST(delete_running),     WF_TEST(reassigned_running),
    WF_TEST(timeout),            WF_TEST(params),
    WF_TEST(pipeline),           WF_TEST(recover),
    WF_TEST(other_node),         WF_TEST(unknown_keys),
    WF_TEST(max_parallel),       WF_TEST(outputs),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
