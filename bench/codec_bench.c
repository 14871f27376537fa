/*
 * codec_bench: decodes and re-encodes the reference step of
 * docs/protocol.md appendix A N times, the way the node reads a stored
 * step and writes one back: json_loadb -> wf_codec_decode (Wf__Step) ->
 * wf_codec_encode (Go mode) -> json_dumps.  bench/bench.py runs it under
 * callgrind with two values of N and divides the difference of the
 * instruction counts by the difference of N, so start-up cancels out.
 *
 * Built by bench/run.sh against build-bench's static libraries.
 *   usage: codec_bench N
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/codec.h"

static const char REF[] =
    "{\"key\":\"ns1.c3r8psea0brhlbg0qdd0.1.1\",\"create_type\":\"PIPELINE\",\"namespace\":\"ns1\","
    "\"pipeline_id\":\"c3r8psea0brhlbg0qdd0\",\"create_at\":1626770673846,\"update_at\":1626770681002,"
    "\"deploy_id\":\"\",\"resource_version\":831402,\"id\":1,\"name\":\"step1.1\",\"action\":\"go_build@v1\","
    "\"with\":{\"ENV1\":\"env1\",\"ENV2\":\"env2\"},\"is_parallel\":false,\"ignore_failed\":false,"
    "\"with_audit\":false,\"audit_params\":null,\"with_notify\":false,\"notify_params\":null,"
    "\"webhooks\":null,\"node_selector\":null,"
    "\"status\":{\"flow_number\":1,\"start_at\":1626770680990,\"end_at\":0,\"status\":\"RUNNING\","
    "\"scheduled_node\":\"node-01\",\"audit_at\":0,\"audit_response\":\"UOD\",\"audit_message\":\"\","
    "\"notify_at\":0,\"notify_error\":\"\",\"message\":\"\","
    "\"response\":{\"container_id\":\"9f1c...\",\"container_warn\":\"\",\"log_driver\":\"local_file\","
    "\"log_path\":\"runner_log/2021/7/20/ns1.c3r8psea0brhlbg0qdd0.1.1\"}}}";

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: codec_bench N\n");
    return 2;
  }
  long n = atol(argv[1]);
  size_t total = 0;
  for (long i = 0; i < n; i++) {
    json_error_t je;
    json_t *o = json_loadb(REF, sizeof REF - 1, 0, &je);
    if (!o) {
      fprintf(stderr, "reference JSON: %s\n", je.text);
      return 1;
    }
    char err[256];
    ProtobufCMessage *m = wf_codec_decode(&wf__step__descriptor, o, 0, err, sizeof err);
    json_decref(o);
    if (!m) {
      fprintf(stderr, "decode: %s\n", err);
      return 1;
    }
    json_t *out = wf_codec_encode(m, WF_CODEC_NULL_EMPTY);
    char *s = json_dumps(out, JSON_COMPACT);
    total += strlen(s);
    free(s);
    json_decref(out);
    wf_codec_free(m);
  }
  printf("%ld round trips, %zu bytes written\n", n, total);
  return 0;
}
