#!/usr/bin/env python3
"""Writes the seed corpora under test/fuzz/corpus/<target>/ (docs/fuzzing.md).

The payloads are the bytes docs/peers.md recorded from etcd 3.4.23's JSON
gateway and Docker Engine 20.10.24, copied verbatim.  That file shows curl's
output, where CRLFs appear as plain line ends; the HTTP framing is written
back here with CRLF, and every chunk size line is checked against the chunk
it announces, so a copy error fails this script.  Each target's file starts
with the control bytes its fuzz-<name>.c header describes.

Run from anywhere: python3 test/fuzz/make_corpus.py  (rewrites the corpus).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')

HDR = ('HTTP/1.1 {status}\r\n'
       'Access-Control-Allow-Headers: accept, content-type, authorization\r\n'
       'Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n'
       'Access-Control-Allow-Origin: *\r\n'
       'Content-Type: application/json\r\n')
DATE = 'Date: Fri, 27 Nov 2026 10:00:41 GMT\r\n'
CLUSTER = '"cluster_id":"324952591200643719","member_id":"3319814642761637952"'


def hdr(status, extra=''):
    return HDR.format(status=status) + extra


def chunk(payload, size_hex=None):
    b = payload.encode() if isinstance(payload, str) else payload
    h = size_hex if size_hex is not None else '%x' % len(b)
    assert int(h, 16) == len(b), (h, len(b), payload)
    return h.encode() + b'\r\n' + b + b'\r\n'


def content_length(status, body, extra=''):
    return (hdr(status, extra) + DATE + 'Content-Length: %d\r\n\r\n' % len(body)).encode() + body.encode()


def chunked(status, chunks, extra='', trailer=''):
    head = (hdr(status, extra) + DATE + 'Transfer-Encoding: chunked\r\n\r\n').encode()
    return head + b''.join(chunks) + b'0\r\n' + trailer.encode() + b'\r\n'


# ---- etcd bytes (docs/peers.md §1) --------------------------------------------
PUT = '{"header":{%s,"revision":"4","raft_term":"2"}}' % CLUSTER
PUT_PREV = ('{"header":{%s,"revision":"6","raft_term":"2"},"prev_kv":{"key":"L25vZGVzL2I=",'
            '"create_revision":"5","mod_revision":"5","version":"1","value":"d29ybGQ="}}' % CLUSTER)
RANGE = ('{"header":{%s,"revision":"6","raft_term":"2"},"kvs":[{"key":"L25vZGVzL2E=",'
         '"create_revision":"4","mod_revision":"4","version":"1","value":"aGVsbG8="},'
         '{"key":"L25vZGVzL2I=","create_revision":"5","mod_revision":"6","version":"2",'
         '"value":"d29ybGQy"}],"count":"2"}' % CLUSTER)
RANGE_KEYS_ONLY = ('{"header":{%s,"revision":"6","raft_term":"2"},"kvs":[{"key":"L25vZGVzL2E=",'
                   '"create_revision":"4","mod_revision":"4","version":"1"},{"key":"L25vZGVzL2I=",'
                   '"create_revision":"5","mod_revision":"6","version":"2"}],"count":"2"}' % CLUSTER)
RANGE_COUNT = '{"header":{%s,"revision":"6","raft_term":"2"},"count":"2"}' % CLUSTER
RANGE_MORE = ('{"header":{%s,"revision":"6","raft_term":"2"},"kvs":[{"key":"L25vZGVzL2E=",'
              '"create_revision":"4","mod_revision":"4","version":"1","value":"aGVsbG8="}],'
              '"more":true,"count":"2"}' % CLUSTER)
RANGE_NONE = '{"header":{%s,"revision":"6","raft_term":"2"}}' % CLUSTER
RANGE_LEASE = ('{"header":{%s,"revision":"21","raft_term":"2"},"kvs":[{"key":"L2xlYXNlL2s=",'
               '"create_revision":"21","mod_revision":"21","version":"1","value":"dg==",'
               '"lease":"2324035650796077351"}],"count":"1"}' % CLUSTER)
DELETE = ('{"header":{%s,"revision":"7","raft_term":"2"},"deleted":"1","prev_kvs":[{"key":"L25vZGVzL2E=",'
          '"create_revision":"4","mod_revision":"4","version":"1","value":"aGVsbG8="}]}' % CLUSTER)
TXN_OK = ('{"header":{%s,"revision":"8","raft_term":"2"},"succeeded":true,'
          '"responses":[{"response_put":{"header":{"revision":"8"}}}]}' % CLUSTER)
TXN_FAIL = ('{"header":{%s,"revision":"8","raft_term":"2"},"responses":[{"response_range":'
            '{"header":{"revision":"8"},"kvs":[{"key":"L2xvY2s=","create_revision":"8",'
            '"mod_revision":"8","version":"1","value":"bWU="}],"count":"1"}}]}' % CLUSTER)
COMPACT = '{"header":{%s,"revision":"14","raft_term":"2"}}' % CLUSTER
GRANT = '{"header":{%s,"revision":"20","raft_term":"2"},"ID":"2324035650796077349","TTL":"5"}' % CLUSTER
KEEPALIVE = ('{"result":{"header":{%s,"revision":"21","raft_term":"2"},"ID":"2324035650796077351",'
             '"TTL":"5"}}' % CLUSTER)
KEEPALIVE_GONE = '{"result":{"header":{%s,"revision":"21","raft_term":"2"},"ID":"999"}}' % CLUSTER
REVOKE = '{"header":{%s,"revision":"22","raft_term":"2"}}' % CLUSTER
ERR_B64 = ('{"error":"illegal base64 data at input byte 9","message":"illegal base64 data at '
           'input byte 9","code":3}')
ERR_NOKEY = ('{"error":"etcdserver: key is not provided","message":"etcdserver: key is not '
             'provided","code":3}')
ERR_GARBAGE = ('{"error":"invalid character \'g\' looking for beginning of value","message":'
               '"invalid character \'g\' looking for beginning of value","code":3}')
ERR_LEASE = ('{"error":"etcdserver: requested lease not found","message":"etcdserver: '
             'requested lease not found","code":5}')
ERR_EXISTS = ('{"error":"etcdserver: lease already exists","message":"etcdserver: lease already '
              'exists","code":9}')
ERR_COMPACTED = ('{"error":"etcdserver: mvcc: required revision has been compacted","message":'
                 '"etcdserver: mvcc: required revision has been compacted","code":11}')
ERR_V3ALPHA = '404 page not found\n'

W_CREATED = '{"result":{"header":{%s,"revision":"8","raft_term":"2"},"created":true}}' % CLUSTER
W_PUT1 = ('{"result":{"header":{%s,"revision":"9","raft_term":"2"},"events":[{"kv":{"key":"L3cvb25l",'
          '"create_revision":"9","mod_revision":"9","version":"1","value":"MQ=="}}]}}' % CLUSTER)
W_PUT2_PREV = ('{"result":{"header":{%s,"revision":"10","raft_term":"2"},"events":[{"kv":{"key":'
               '"L3cvb25l","create_revision":"9","mod_revision":"10","version":"2","value":"MTE="},'
               '"prev_kv":{"key":"L3cvb25l","create_revision":"9","mod_revision":"9","version":"1",'
               '"value":"MQ=="}}]}}' % CLUSTER)
W_PUT2 = ('{"result":{"header":{%s,"revision":"10","raft_term":"2"},"events":[{"kv":{"key":"L3cvb25l",'
          '"create_revision":"9","mod_revision":"10","version":"2","value":"MTE="}}]}}' % CLUSTER)
W_PUT3 = ('{"result":{"header":{%s,"revision":"11","raft_term":"2"},"events":[{"kv":{"key":"L3cvdHdv",'
          '"create_revision":"11","mod_revision":"11","version":"1","value":"Mg=="}}]}}' % CLUSTER)
W_DEL1_PREV = ('{"result":{"header":{%s,"revision":"12","raft_term":"2"},"events":[{"type":"DELETE",'
               '"kv":{"key":"L3cvb25l","mod_revision":"12"},"prev_kv":{"key":"L3cvb25l",'
               '"create_revision":"9","mod_revision":"10","version":"2","value":"MTE="}}]}}' % CLUSTER)
W_DEL2_PREV = ('{"result":{"header":{%s,"revision":"13","raft_term":"2"},"events":[{"type":"DELETE",'
               '"kv":{"key":"L3cvdHdv","mod_revision":"13"},"prev_kv":{"key":"L3cvdHdv",'
               '"create_revision":"11","mod_revision":"11","version":"1","value":"Mg=="}}]}}' % CLUSTER)
W_DEL1 = ('{"result":{"header":{%s,"revision":"12","raft_term":"2"},"events":[{"type":"DELETE",'
          '"kv":{"key":"L3cvb25l","mod_revision":"12"}}]}}' % CLUSTER)
W_DEL2 = ('{"result":{"header":{%s,"revision":"13","raft_term":"2"},"events":[{"type":"DELETE",'
          '"kv":{"key":"L3cvdHdv","mod_revision":"13"}}]}}' % CLUSTER)
W_CREATED14 = '{"result":{"header":{%s,"revision":"14","raft_term":"2"},"created":true}}' % CLUSTER
W_REPLAY = ('{"result":{"header":{%s,"revision":"14","raft_term":"2"},"events":[{"kv":{"key":'
            '"L3cvb25l","create_revision":"9","mod_revision":"9","version":"1","value":"MQ=="}},'
            '{"kv":{"key":"L3cvb25l","create_revision":"9","mod_revision":"10","version":"2",'
            '"value":"MTE="}},{"kv":{"key":"L3cvdHdv","create_revision":"11","mod_revision":"11",'
            '"version":"1","value":"Mg=="}},{"type":"DELETE","kv":{"key":"L3cvb25l","mod_revision":'
            '"12"}},{"type":"DELETE","kv":{"key":"L3cvdHdv","mod_revision":"13"}}]}}' % CLUSTER)
W_COMPACTED = ('{"result":{"header":{%s,"raft_term":"2"},"canceled":true,"compact_revision":"12"}}'
               % CLUSTER)
C2 = '"cluster_id":"147207066227278384","member_id":"18251165009791698893"'
W_P_CREATED = '{"result":{"header":{%s,"revision":"1","raft_term":"2"},"created":true}}' % C2
W_PROGRESS = '{"result":{"header":{%s,"revision":"1","raft_term":"2"}}}' % C2
W_SHUTDOWN = ('{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing",'
              '"http_status":"Service Unavailable"}}')

WATCH1_CHUNKS = [(W_CREATED, '8a'), (W_PUT1, 'e6'), (W_PUT2_PREV, '14b'), (W_PUT3, 'e9'),
                 (W_DEL1_PREV, '129'), (W_DEL2_PREV, '12a')]
WATCH2 = [W_CREATED, W_PUT1, W_PUT2, W_PUT3, W_DEL1, W_DEL2]

# ---- Docker bytes (docs/peers.md §2) ----------------------------------------------
DOCKER_HDR = ('Api-Version: 1.41\r\n{ct}Docker-Experimental: false\r\nOstype: linux\r\n'
              'Server: Docker/20.10.24+dfsg1 (linux)\r\nDate: Fri, 27 Nov 2026 10:02:43 GMT\r\n')


def docker(status, ct, rest):
    c = 'Content-Type: %s\r\n' % ct if ct else ''
    return ('HTTP/1.1 %s\r\n' % status + DOCKER_HDR.format(ct=c)).encode() + rest


CREATE_BODY = '{"Id":"8e8a4b76fe34825ea8e3c8a2bcb7ed9dd61bfe44753b5d4228ecf440c98696af","Warnings":[]}\n'
NOSUCH = '{"message":"No such container: 8e8a4b76fe34825ea8e3c8a2bcb7ed9dd61bfe44753b5d4228ecf440c98696af"}\n'
FRAMES = [(2, b'err 1\n'), (1, b'out 1\n'), (2, b'err 2\n'), (1, b'out 2\n'), (2, b'err 3\n'), (1, b'out 3\n')]


def frame(stream, payload):
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, 'big') + payload


# ---- model objects ------------------------------------------------------------------
GO_STEP = ('{"key":"ns1.c3r8psea0brhlbg0qdd0.1.1","create_type":"PIPELINE","namespace":"ns1",\n'
           ' "pipeline_id":"c3r8psea0brhlbg0qdd0","create_at":1626770673846,"update_at":1626770681002,"deploy_id":"",\n'
           ' "resource_version":831402,"id":1,"name":"step1.1","action":"go_build@v1",\n'
           ' "with":{"ENV1":"env1","ENV2":"env2"},"is_parallel":false,"ignore_failed":false,"with_audit":false,\n'
           ' "audit_params":null,"with_notify":false,"notify_params":null,"webhooks":null,"node_selector":null,\n'
           ' "status":{"flow_number":1,"start_at":1626770680990,"end_at":0,"status":"RUNNING","scheduled_node":"node-01",\n'
           '   "audit_at":0,"audit_response":"UOD","audit_message":"","notify_at":0,"notify_error":"","message":"",\n'
           '   "response":{"container_id":"9f1c...","container_warn":"","log_driver":"local_file",\n'
           '               "log_path":"runner_log/2021/7/20/ns1.c3r8psea0brhlbg0qdd0.1.1"}}}\n')
USER_STEP = ('{"key":"k1","name":"n","action":"build@v1","create_at":7,"create_type":"USER",'
             '"status":{"status":"PENDDING","scheduled_node":"node-1"},'
             '"webhooks":[{"url":"http://hook","header":{"X":"1"},"events":["FAILED","SUCCEEDED"],'
             '"description":"d","status":{"start_at":1,"cost":2,"success":true,"message":"m"}}]}')
ACTION = ('{"id":"a1","name":"echo","version":"v1","display_name":"Echo","is_latest":true,'
          '"namespace":"default","create_at":1626770673846,"runner_type":"LOCAL",'
          '"runner_params":{"CMD":"sh,-c,echo hi"},"run_params":[{"required":true,'
          '"key_name":"MSG","key_desc":"what","default_value":"","value_desc":"",'
          '"value_type":"PLAIN"}],"tags":{"t":"1"},"description":"says hi","visiable_mode":"GLOBAL"}')
PIPELINE = ('{"id":"c3r8psea0brhlbg0qdd0","namespace":"ns1","name":"p","create_at":1626770673846,'
            '"with":{"ENV2":"pipe2","PIPE_ONLY":"pipe-only"},"mount":{"root":"/w","files":[{"name":"f",'
            '"download_url":"http://x/f.tgz","unpack":true,"unpack_dir":"src"}]},"on":{"events":["push"],'
            '"branches":["main"]},"status":{"current_flow":1,"start_at":2,"end_at":0,"status":"EXECUTING",'
            '"scheduler_node":"n1","message":""},"stages":[{"id":1,"name":"s1","needs":[],'
            '"steps":[{"name":"step1.1","action":"go_build@v1"}]},{"id":2,"name":"s2","needs":["s1"],'
            '"steps":[{"name":"step2.1","action":"echo@v1","with":{"MSG":"x"}}]}]}')
NODE = ('{"region":"default","resourceVersion":12,"instance_name":"host-1","service_name":"workflow",'
        '"type":"node","address":"127.0.0.1","version":"0.1.0","online":1626770673846,"tag":{"a":"b"}}')

ACTIONS_YAML = '''\
kind: action
name: echo
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo "msg=$MSG"
run_params:
  - key_name: MSG
    required: true
---
kind: action
name: fail
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo failing; exit 4
'''
OBJECTS_YAML = '''\
kind: Action
name: greet
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo hello $WHO
run_params:
  - key_name: WHO
    default_value: world
description: says hello
---
kind: Action
name: build
version: v1
runner_type: DOCKER
runner_params:
  IMAGE_URL: golang
  IMAGE_VERSION: "1.21"
  IMAGE_CMD: '["sh", "-c", "go build ./... && go test ./..."]'
run_params:
  - {key_name: REPO, required: true}
---
kind: Step
key: hello-1
action: greet@v1
with:
  WHO: operator
status:
  scheduled_node: node-01
'''
PIPELINE_YAML = '''\
kind: Pipeline
id: p1
namespace: ns
name: pl
create_at: 5
with: {A: 1, B: 1.10, C: yes, D: ~, E: 0755, F: 0x1f}
stages: [{id: 1, name: s1, steps: [{name: x, action: a@v1}]}]
---
kind: PIPELINE
name: pl
...
---
'''
CONFIG_YAML = '''\
name: build-01
etcd:
  - http://10.0.0.1:2379
  - http://10.0.0.2:2379
log-dir: /var/lib/workflow-node/logs
actions-dir: /etc/workflow-node/actions
max-parallel: 8
step-timeout: 3600
'''
ACTION_FILE_YAML = '''\
name: build
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,make -C $SRC
run_params:
  - key_name: SRC
    required: true
  - key_name: WORKFLOW_TIMEOUT
    default_value: "600"
'''
TAGS_YAML = '''\
%YAML 1.1
---
kind: Step
key: !!str 007
action: !!str build@v1
with:
  "quoted": 'single'
  literal: |
    line 1
    line 2
  folded: >
    a
    b
  empty:
  flow: [1, 2.5e3, -0x10, .inf, .nan, Null, TRUE, off]
'''


WRITTEN = {}  # target -> names written in this run


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    WRITTEN.setdefault(target, set()).add(name)


def drop_stale():
    """Removes the seeds an earlier version of this script wrote and this
    one does not, in the targets it wrote.  Kept: `regress-*` seeds (inputs
    a fuzzing run found and a commit added by hand, see docs/fuzzing.md)
    and every target this script does not write."""
    for target, names in WRITTEN.items():
        d = os.path.join(CORPUS, target)
        for name in os.listdir(d):
            if name not in names and not name.startswith('regress-'):
                os.remove(os.path.join(d, name))


def h2_frame(t, flags, sid, payload=b''):
    """One HTTP/2 frame: 24-bit length, type, flags, stream id."""
    return struct.pack('>I', len(payload))[1:] + bytes([t, flags]) + struct.pack('>I', sid) + payload


def http2_seeds():
    """fuzz-http2: [flags, cut1, cut2, cut3] + what a server sends on the
    connection whose streams 1 (buffered POST), 3 (streamed POST) and 5
    (HEAD) are ours.  Heads are HPACK with the static table: 0x88 is
    ":status 200"; a literal without indexing carries content-type as etcd
    sends it (docs/peers.md section 4)."""
    DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WU, CONT = 0, 1, 3, 4, 6, 7, 8, 9
    ES, EH, ACK = 1, 4, 1
    f = h2_frame
    st200 = b'\x88'
    ct = b'\x0f\x10\x10application/json'
    pre = (f(SETTINGS, 0, 0, struct.pack('>HI', 3, 4294967295) + struct.pack('>HI', 4, 1048576)) +
           f(WU, 0, 0, struct.pack('>I', 983041)) + f(SETTINGS, ACK, 0))

    def good(extra=b''):
        return (pre + f(HEADERS, EH, 1, st200 + ct) + f(DATA, ES, 1, b'{"kvs":[]}') +
                f(HEADERS, EH, 3, st200) + f(DATA, 0, 3, b'{"result":{"created":true}}\n') +
                f(DATA, 0, 3, b'{"result":{"events":[{"kv":{}}]}}\n') + extra +
                f(HEADERS, EH | ES, 5, st200))
    seeds = {
        'ok': b'\x00\x40\x80\xc0' + good(),
        'ok-pause': b'\x01\x10\x80\xf0' + good(f(DATA, ES, 3, b'x' * 3000)),
        'ok-cancels': b'\x06\x00\x00\x00' + good(),
        'goaway': b'\x00\x80\x80\x80' + pre + f(HEADERS, EH, 1, st200) +
                  f(GOAWAY, 0, 0, struct.pack('>II', 1, 0)) + f(DATA, ES, 1, b'{}'),
        'rst': b'\x00\x20\x40\x60' + pre + f(RST, 0, 3, struct.pack('>I', 8)) +
               f(RST, 0, 1, struct.pack('>I', 7)) + f(HEADERS, EH | ES, 5, st200),
        'ping': b'\x00\x00\x00\x00' + pre + f(PING, 0, 0, b'12345678') +
                f(PING, ACK, 0, b'\x01' + b'\x00' * 7),
        'interim': b'\x00\x00\x00\x00' + pre + f(HEADERS, EH, 1, b'\x08\x03100') +
                   f(HEADERS, EH, 1, st200) + f(DATA, ES, 1, b'{}'),
        'continuation': b'\x00\x00\x00\x00' + pre + f(HEADERS, 0, 1, st200) + f(CONT, EH, 1, ct) +
                        f(DATA, ES, 1, b'{}'),
        'bighead': b'\x00\x00\x00\x00' + pre + f(HEADERS, EH, 5, st200 +
                   b'\x0f\x10\x7f\x81\x03' + b'a' * 400 + b'\x0f\x10\x7f\x81\x03' + b'b' * 400),
        'bigbody': b'\x00\x00\x00\x00' + pre + f(HEADERS, EH, 1, st200) + f(DATA, 0, 1, b'y' * 5000) +
                   f(DATA, ES, 1, b'z'),
        'windowupdate': b'\x00\x00\x00\x00' + pre + f(WU, 0, 0, struct.pack('>I', 1000)) +
                        f(WU, 0, 1, struct.pack('>I', 1000)) + f(HEADERS, EH | ES, 1, st200),
        'watch-shutdown': b'\x01\x20\x60\xa0' + pre + f(HEADERS, EH, 3, st200 + ct) +
                          f(DATA, 0, 3, b'{"result":{"created":true}}\n') +
                          f(GOAWAY, 0, 0, struct.pack('>II', 5, 0)) +
                          f(DATA, ES, 3, b'{"error":{"grpc_code":13,"http_code":500,"message":'
                            b'"server closed the stream without sending trailers"}}'),
        'garbage': b'\x00\x10\x20\x30' + b'HTTP/1.1 200 OK\r\n\r\n',
        # nghttp2 ends the session itself (GOAWAY PROTOCOL_ERROR): the
        # streams must fail, not wait for a peer that may never close.
        'window-update-zero': b'\x00\x00\x00\x00' + pre + f(HEADERS, EH, 1, st200) +
                              f(WU, 0, 0, struct.pack('>I', 0)),
        # A server that ignores the stream window of a paused stream.
        'over-window': b'\x01\x08\x10\x20' + pre + f(HEADERS, EH, 3, st200) +
                       b''.join(f(DATA, 0, 3, b'w' * 16384) for _ in range(40)),
    }
    for name, data in seeds.items():
        write('http2', name, data)


def main():

    # http-response: [flags, pieces|cancel|small, cut1, cut2] + response
    watch1 = chunked('200 OK', [chunk(p + '\n', h) for p, h in WATCH1_CHUNKS],
                     extra='Grpc-Metadata-Content-Type: application/grpc\r\n')
    shutdown = chunked('200 OK', [chunk(W_CREATED + '\n'), chunk(W_SHUTDOWN)],
                       extra='Grpc-Metadata-Content-Type: application/grpc\r\n')
    trailer = 'Grpc-Trailer-Content-Type: application/grpc\r\n'
    err_nokey = chunked('400 Bad Request', [chunk(ERR_NOKEY)],
                        extra='Trailer: Grpc-Trailer-Content-Type\r\n', trailer=trailer)
    err_lease = chunked('404 Not Found', [chunk(ERR_LEASE)],
                        extra='Trailer: Grpc-Trailer-Content-Type\r\n', trailer=trailer)
    keepalive = chunked('200 OK', [chunk(KEEPALIVE + '\n')],
                        extra='Grpc-Metadata-Content-Type: application/grpc\r\n')
    http = {
        'etcd-watch-stream': (0x01, 0x02, 0x40, 0xa0, watch1),
        'etcd-watch-buffered': (0x00, 0x02, 0x08, 0x90, watch1),
        'etcd-watch-pause': (0x03, 0x01, 0x70, 0x00, watch1),
        'etcd-watch-cancel': (0x05, 0x0a, 0x30, 0x80, watch1),
        'etcd-watch-shutdown': (0x01, 0x01, 0xc0, 0x00, shutdown),
        'etcd-put-nokey-trailer': (0x00, 0x02, 0x80, 0xf0, err_nokey),
        'etcd-lease-404-trailer': (0x01, 0x01, 0x60, 0x00, err_lease),
        'etcd-put-bad-b64': (0x00, 0x00, 0x00, 0x00, content_length('400 Bad Request', ERR_B64)),
        'etcd-put-garbage': (0x20, 0x30, 0x00, 0x00, content_length('400 Bad Request', ERR_GARBAGE)),
        'etcd-put-200': (0x40, 0x01, 0x50, 0x00, content_length('200 OK', PUT)),
        'etcd-range-200': (0x00, 0x02, 0x20, 0x40, content_length('200 OK', RANGE)),
        'etcd-keepalive': (0x00, 0x00, 0x00, 0x00, keepalive),
        'etcd-v3alpha-404': (0x00, 0x00, 0x00, 0x00,
                             b'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n'
                             b'X-Content-Type-Options: nosniff\r\nDate: Fri, 27 Nov 2026 10:00:41 GMT\r\n'
                             b'Content-Length: 19\r\n\r\n404 page not found\n'),
        'docker-create-201': (0x00, 0x01, 0x60, 0x00,
                              docker('201 Created', 'application/json',
                                     ('Content-Length: %d\r\n\r\n' % len(CREATE_BODY) + CREATE_BODY).encode())),
        'docker-start-204': (0x40, 0x00, 0x00, 0x00, docker('204 No Content', None, b'\r\n')),
        'docker-wait-chunked': (0x01, 0x02, 0x90, 0xc0,
                                docker('200 OK', 'application/json',
                                       b'Transfer-Encoding: chunked\r\n\r\n'
                                       b'20\r\n{"Error":null,"StatusCode":137}\n\r\n0\r\n\r\n')),
        'docker-logs-frames': (0x01, 0x02, 0x30, 0x70,
                               docker('200 OK', None, b'Transfer-Encoding: chunked\r\n\r\n' +
                                      b''.join(chunk(frame(s, p), 'e') for s, p in FRAMES) +
                                      b'0\r\n\r\n')),
        'docker-attach-raw': (0x01, 0x01, 0x40, 0x00,
                              b'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n' +
                              b''.join(frame(s, p) for s, p in FRAMES)),
        'docker-attach-101': (0x01, 0x00, 0x00, 0x00,
                              b'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n'
                              b'Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n' + frame(1, b'out 1\n')),
        'docker-404': (0x00, 0x00, 0x00, 0x00,
                       docker('404 Not Found', 'application/json',
                              ('Content-Length: %d\r\n\r\n' % len(NOSUCH) + NOSUCH).encode())),
        'docker-import-100-continue': (0x00, 0x01, 0x19, 0x00,
                                       b'HTTP/1.1 100 Continue\r\n\r\n' +
                                       docker('200 OK', 'application/json',
                                              b'Transfer-Encoding: chunked\r\n\r\n' +
                                              chunk('{"status":"sha256:411cdc80be6e6807fb8259db5ffc15aced98851f1631732b59178662f78323bf"}\n') +
                                              b'0\r\n\r\n')),
        'head-request': (0x10, 0x00, 0x00, 0x00, content_length('200 OK', PUT)),
    }
    for name, (f, s, c1, c2, resp) in http.items():
        write('http-response', name, bytes([f, s, c1, c2]) + resp)

    # watch-stream: [bound, stop, 8 piece sizes] + de-chunked stream
    sizes = bytes([0x88, 0x10, 0xff, 0x03, 0x40, 0x00, 0xe5, 0x7f])
    ws = {
        'watch1-prev-kv': ''.join(p + '\n' for p, _ in WATCH1_CHUNKS),
        'watch2': ''.join(p + '\n' for p in WATCH2),
        'replay': W_CREATED14 + '\n' + W_REPLAY + '\n',
        'compacted': W_CREATED14 + '\n' + W_COMPACTED + '\n',
        'progress': W_P_CREATED + '\n' + W_PROGRESS + '\n' + W_PROGRESS + '\n',
        'shutdown': W_CREATED + '\n' + W_SHUTDOWN,
        'keepalive-stream': KEEPALIVE + '\n' + KEEPALIVE + '\n\n\n',
        'crlf-blank': W_CREATED + '\r\n \r\n\t\n' + W_PUT1 + '\r\n',
    }
    for name, body in ws.items():
        write('watch-stream', name, bytes([0x00, 0xff]) + sizes + body.encode())
    write('watch-stream', 'small-bound', bytes([0xa0, 0xff]) + sizes + ''.join(WATCH2[:2]).encode())
    write('watch-stream', 'stop-at-2', bytes([0x00, 0x02]) + sizes + ws['watch2'].encode())

    # etcd-response: [op | msg size << 4, status - 200] + body; op 9 = the
    # error parser.  The auth answer (op 8) is not in docs/peers.md: its shape
    # is etcd's AuthenticateResponse (header + token), the token made up.
    write('etcd-response', 'auth', bytes([8 | 0xc0, 0]) +
          ('{"header":{%s,"revision":"22","raft_term":"2"},"token":'
           '"wHWmzDThNpHZnULJ.24"}' % CLUSTER).encode())
    ops = {'RANGE': 0, 'PUT': 1, 'TXN': 2, 'DELETE': 3, 'COMPACT': 4, 'GRANT': 5,
           'KEEPALIVE': 6, 'REVOKE': 7}
    er = [('put', 'PUT', PUT), ('put-prev', 'PUT', PUT_PREV), ('range', 'RANGE', RANGE),
          ('range-keys-only', 'RANGE', RANGE_KEYS_ONLY), ('range-count', 'RANGE', RANGE_COUNT),
          ('range-more', 'RANGE', RANGE_MORE), ('range-none', 'RANGE', RANGE_NONE),
          ('range-lease', 'RANGE', RANGE_LEASE), ('delete', 'DELETE', DELETE),
          ('txn-ok', 'TXN', TXN_OK), ('txn-fail', 'TXN', TXN_FAIL), ('compact', 'COMPACT', COMPACT),
          ('grant', 'GRANT', GRANT), ('keepalive', 'KEEPALIVE', KEEPALIVE + '\n\n'),
          ('keepalive-gone', 'KEEPALIVE', KEEPALIVE_GONE + '\n\n'),
          ('keepalive-error', 'KEEPALIVE', W_SHUTDOWN), ('revoke', 'REVOKE', REVOKE)]
    for name, op, body in er:
        write('etcd-response', name, bytes([ops[op] | 0xc0, 0]) + body.encode())
    for name, status, body in [('err-b64', 400, ERR_B64), ('err-nokey', 400, ERR_NOKEY),
                               ('err-garbage', 400, ERR_GARBAGE), ('err-lease', 404, ERR_LEASE),
                               ('err-exists', 412, ERR_EXISTS), ('err-compacted', 400, ERR_COMPACTED),
                               ('err-v3alpha', 404, ERR_V3ALPHA)]:
        write('etcd-response', name, bytes([0x09 | 0xc0, status - 200]) + body.encode())
    write('etcd-response', 'err-short-msg', bytes([0x09 | 0x10, 200]) + ERR_NOKEY.encode())

    # codec: [message | flags, patch] + JSON
    cd = [('go-step', 0x00, 0x00, GO_STEP), ('go-step-gomode', 0x10, 0x00, GO_STEP),
          ('go-step-patch', 0x20, 0xd3, GO_STEP), ('user-step-omit', 0x2c, 0x14, USER_STEP),
          ('action', 0x01, 0x00, ACTION), ('action-gomode', 0x15, 0x00, ACTION),
          ('pipeline', 0x02, 0x00, PIPELINE), ('pipeline-omit', 0x0a, 0x00, PIPELINE),
          ('node', 0x03, 0x00, NODE), ('node-gomode', 0x13, 0x00, NODE)]
    for name, b0, b1, text in cd:
        write('codec', name, bytes([b0, b1]) + text.encode())

    # yaml: [flags] + documents
    for name, b0, text in [('actions', 0x00, ACTIONS_YAML), ('objects', 0x02, OBJECTS_YAML),
                           ('pipeline', 0x00, PIPELINE_YAML), ('config', 0x00, CONFIG_YAML),
                           ('action-file', 0x00, ACTION_FILE_YAML), ('tags', 0x00, TAGS_YAML),
                           ('json-array', 0x01, '[' + ACTION[:-1] + ',"kind":"Action"},'
                            '{"kind":"Step","key":"k","action":"echo@v1"}]'),
                           ('json-step', 0x03, GO_STEP[:-2] + ',"kind":"Step"}'),
                           ('short-err', 0x10, 'kind: Step\nkey: a/b\naction: x\n')]:
        write('yaml', name, bytes([b0]) + text.encode())

    # outputs: [error buffer size | truncated << 7] + the step's output file
    # (GITHUB_OUTPUT format); the same bytes feed the summary line and the
    # pipeline key reader (test/fuzz/fuzz-outputs.c).
    outputs = [
        ('simple', 0x00, b'A=1\nB=hello world\nEMPTY=\n'),
        ('heredoc', 0x00, b'LOG<<EOF\nline 1\n\nA=not an output\nEOF\nVERSION=1.2.3\n'),
        ('crlf', 0x00, b'A=1\r\n\r\nB<<E\r\nx\r\ny\r\nE\r\nC=a\rb\r\n'),
        ('repeat', 0x00, b'A=1\nA=x=y<<z\nA<<X=Y\n\nX=Y\nB<<E\nE'),
        ('utf8', 0x00, 'A=\u00e9\u20ac\U0001f600\tok\n'.encode()),
        ('bad-utf8', 0x00, b'A=1\nB=\xed\xa0\x80\n'),
        ('bad-name', 0x10, b'A=1\n1X=2\n'),
        ('unclosed', 0x00, b'A=1\nLOG<<EOF\nx\n'),
        ('nul', 0x00, b'A=1\nB=x\x00y\n'),
        ('truncated', 0x80, b'A=1\n'),
        ('summary', 0x00, 'built 3 images \u2713\tok\x1b[0m\r\nmore\n'.encode()),
        ('pipeline-key', 0x00, b'ns1.c3r8psea0brhlbg0qdd0.2.13\n'),
    ]
    for name, b0, text in outputs:
        write('outputs', name, bytes([b0]) + text)

    # http-request: [end | small << 2, cut1, cut2, cut3] + the request
    # (test/fuzz/fuzz-http-request.c).  The handler's answer is the path's
    # second byte mod 11: /c sync, /d another status, /e Content-Length
    # stream, /f chunked stream, /g reply later, /h reply now, /i abort now,
    # /j abort later, /k end before a head, /l end with a write in flight,
    # /m head and end; the third byte sizes a streamed body.
    acts = 'cdefghijklm'
    for i, a in enumerate(acts):
        req = 'GET /%sx%s HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n' % (a, 'abc'[i % 3])
        write('http-request', 'act-' + a, bytes([i % 4, 0x30, 0x80, 0xd0]) + req.encode())
    fields = ('GET /cq/v1/steps/ns.p.1.1/log?follow=1&offset=10#frag?no HTTP/1.1\r\n'
              'Host: node-1:9464\r\nAUTHORIZATION: Bearer one\r\nauthorization: Bearer s3cr3t-t0ken\r\n'
              'Range: bytes=10-\r\nIf-None-Match: "5f3a-10"\r\nX-Authorization: no\r\n\r\n')
    long_name = 'Authorization' + 'x' * 52
    hr = {
        'fields': (0x00, 0x10, 0x20, 0x30, fields),
        'fields-dribble': (0x03, 0x05, 0x0b, 0x13, fields),
        'head-stream-length': (0x00, 0x00, 0x00, 0x00, 'HEAD /ea HTTP/1.1\r\nHost: x\r\n\r\n'),
        'head-stream-chunked': (0x01, 0x00, 0x00, 0x00, 'HEAD /fb HTTP/1.1\r\n\r\n'),
        'head-sync': (0x03, 0x00, 0x00, 0x00, 'HEAD /c?x=1 HTTP/1.1\r\n\r\n'),
        'head-reply': (0x00, 0x00, 0x00, 0x00, 'HEAD /g1 HTTP/1.1\r\n\r\n'),
        'empty-values': (0x00, 0x40, 0x00, 0x00, 'GET /c HTTP/1.1\r\nRange:\r\nIf-None-Match: "a"\r\nIf-None-Match:\r\n\r\n'),
        'long-name': (0x00, 0x20, 0x60, 0xa0, 'GET /c HTTP/1.1\r\n%s: Bearer x\r\nRange: bytes=0-1\r\n\r\n' % long_name),
        'value-1024': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nAuthorization: %s\r\n\r\n' % ('v' * 1024)),
        'value-1025': (0x01, 0x80, 0x00, 0x00, 'GET /c HTTP/1.1\r\nRange: %s\r\n\r\n' % ('w' * 1025)),
        'head-over-small': (0x04, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nX-Pad: %s\r\n\r\n' % ('p' * 300)),
        'post-405': (0x00, 0x00, 0x00, 0x00, 'POST /c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello'),
        'delete-405': (0x03, 0x00, 0x00, 0x00, 'DELETE /c HTTP/1.1\r\n\r\n'),
        'options-star': (0x00, 0x00, 0x00, 0x00, 'OPTIONS * HTTP/1.1\r\n\r\n'),
        'get-body': (0x00, 0x30, 0x00, 0x00, 'GET /e HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody'),
        'get-chunked-body': (0x00, 0x30, 0x50, 0x70, 'GET /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'),
        'get-body-413': (0x04, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nContent-Length: 300\r\n\r\n' + 'b' * 300),
        'incomplete-head': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nHost: x\r\n'),
        'incomplete-nohalf': (0x03, 0x00, 0x00, 0x00, 'GET /e HTTP/1.1\r\nHost'),
        'incomplete-body': (0x02, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc'),
        'pipelined': (0x00, 0x00, 0x00, 0x00, 'GET /c1 HTTP/1.1\r\n\r\nGET /d2 HTTP/1.1\r\n\r\n'),
        'http10': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/1.0\r\n\r\n'),
        'http09-garbage': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/9.9\r\n\r\n'),
        'absolute-form': (0x00, 0x00, 0x00, 0x00, 'GET http://node-1:9464/c?x=1 HTTP/1.1\r\n\r\n'),
        'upgrade': (0x00, 0x00, 0x00, 0x00, 'GET /f HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
        'leading-crlf': (0x00, 0x00, 0x00, 0x00, '\r\n\r\nGET /c HTTP/1.1\r\n\r\n'),
        'obs-fold': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\r\nRange: bytes=0-1,\r\n 5-6\r\n\r\n'),
        'lf-only': (0x00, 0x00, 0x00, 0x00, 'GET /c HTTP/1.1\nRange: x\n\n'),
        'leave-mid-stream': (0x02, 0x00, 0x00, 0x00, 'GET /fz HTTP/1.1\r\n\r\n'),
        'half-close-stream': (0x01, 0x00, 0x00, 0x00, 'GET /ez HTTP/1.1\r\n\r\n'),
    }
    for name, (b0, c1, c2, c3, req) in hr.items():
        write('http-request', name, bytes([b0, c1, c2, c3]) + req.encode())
    write('http-request', 'tls-hello', bytes([0, 0, 0, 0]) +
          b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + bytes(range(32)) + b'\r\n\r\n')
    http2_seeds()
    drop_stale()


if __name__ == '__main__':
    main()
