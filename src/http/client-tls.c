/*
 * http/client-tls.c: https:// connections, between client.c's connection
 * and tls.c's memory-BIO engine (tls-internal.h).
 *
 * The socket is still a libuv stream on the client's loop; OpenSSL sits
 * between two memory BIOs and never touches it.  Ciphertext is read into a
 * per-connection buffer (conn->cbuf) and fed to OpenSSL, which hands back
 * plaintext into conn->rbuf for the parser (client-message.c), so everything
 * above (pause, drain, pooling) works on plaintext as for a plain connection.
 * What OpenSSL queues for the peer is copied into a heap write request per
 * flush (tls_wreq_t, freed in its callback) and uv_write'n; write_pending
 * counts them.  The handshake runs after the TCP connect while the
 * connection is still CONN_CONNECTING, under the same connect timer, and the
 * request is attached only once it completed.  While a user pause stops the
 * parser, the ciphertext already read stays inside OpenSSL (tls_more) and the
 * socket is not read, so memory stays bounded by one read plus one record.
 * A connection closed in good health sends close_notify best-effort
 * (uv_try_write: nothing waits for it); the SSL object dies with the
 * connection, on every path, in client.c's conn_maybe_free.
 *
 * A file of its own because it is one layer of the transport with its own
 * failure text: a TLS failure is WF_ETLS, its reason kept for
 * wf_http_client_last_error and logged once per new reason.  client.c calls
 * in at four points (TCP up, a read, the drain after a resume, sending a
 * request) and at close; everything else here is static.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http-internal.h"

/* One flush of what OpenSSL queued for the peer; owns its bytes (freed in
 * on_tls_write, which libuv calls for every write, with UV_ECANCELED after
 * uv_close, and before the close callback that frees the connection). */
typedef struct tls_wreq_s {
  uv_write_t req;
  wf__http_conn_t *conn;
  size_t n;
  char data[];
} tls_wreq_t;

void wf__http_tls_close_notify(wf__http_conn_t *conn) {
  char buf[256];
  size_t n;
  uv_buf_t b;

  /* Not after a failure: the session or the socket is already gone then. */
  if (!conn->tls || conn->tls_dead || !conn->io_inited) return;
  wf__tls_shutdown(conn->tls);
  n = wf__tls_out_pending(conn->tls);
  if (n == 0 || n > sizeof(buf)) return;
  n = wf__tls_out_take(conn->tls, buf, n);
  b = uv_buf_init(buf, (unsigned)n);
  (void)uv_try_write(&conn->io.stream, &b, 1);
}

/* A write failed (EPIPE, ECONNRESET): the peer closed, and often said why
 * first, in an alert still waiting in the socket (a TLS 1.3 server refuses
 * our certificate after our side of the handshake is done, and our next
 * write meets its close).  Reads what is there, without waiting, and fails
 * conn with the alert's reason; 0 when there was none (conn untouched). */
static int explain_write_error(wf__http_conn_t *conn) {
  uv_os_fd_t fd;
  char buf[4096];

  if (uv_fileno(&conn->io.handle, &fd) != 0) return 0;
  for (int i = 0; i < 16; i++) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    if (wf__tls_feed(conn->tls, buf, (size_t)n) < 0) break;
  }
  for (;;) {
    ssize_t n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));
    if (n > 0) continue; /* an answer that came before the close: too late */
    if (n == WF_ETLS) {
      conn->tls_dead = 1;
      wf__http_tls_fail(conn, wf__tls_error(conn->tls));
      return 1;
    }
    return 0;
  }
}

static void on_tls_write(uv_write_t *w, int status) {
  tls_wreq_t *wr = container_of(w, tls_wreq_t, req);
  wf__http_conn_t *conn = wr->conn;

  conn->wbytes -= wr->n;
  free(wr);
  conn->write_pending--;
  if (conn->state == CONN_CLOSING) return;
  if (status < 0) {
    if ((status == UV_EPIPE || status == UV_ECONNRESET) && explain_write_error(conn)) return;
    conn->tls_dead = 1;
    wf__http_conn_fail(conn, status); /* closes an idle one, fails a request */
    return;
  }
  if (conn->state == CONN_H2) {
    wf__http_h2_written(conn);
    return;
  }
  /* The response timeout counts from the end of a (possibly long) upload. */
  if (conn->state == CONN_ACTIVE && conn->write_pending == 0 && !conn->in_feed)
    wf__http_update_read_state(conn);
}

/* Sends what OpenSSL queued (handshake flights, the request, alerts).
 * Returns 0, or the uv_write error after the connection was failed with it. */
int wf__http_tls_flush(wf__http_conn_t *conn) {
  tls_wreq_t *wr;
  uv_buf_t b;
  size_t n;
  int r;

  if (conn->state == CONN_CLOSING) return 0;
  n = wf__tls_out_pending(conn->tls);
  if (n == 0) return 0;
  wr = wf_malloc(sizeof(*wr) + n);
  wr->conn = conn;
  n = wf__tls_out_take(conn->tls, wr->data, n);
  wr->n = n;
  b = uv_buf_init(wr->data, (unsigned)n);
  r = uv_write(&wr->req, &conn->io.stream, &b, 1, on_tls_write);
  if (r < 0) {
    free(wr);
    conn->tls_dead = 1;
    wf__http_conn_fail(conn, r);
    return r;
  }
  conn->write_pending++;
  conn->wbytes += n;
  return 0;
}

/* The TLS session failed (why: its reason): keep it for
 * wf_http_client_last_error, log it, and fail the connection with WF_ETLS.
 * Each new reason is logged once at warn; a repeat (every reconnect of a
 * watch to a server that keeps refusing us) goes to debug until a request
 * succeeds over TLS again (client.c's complete_req clears tls_logged). */
void wf__http_tls_fail(wf__http_conn_t *conn, const char *why) {
  wf_http_client_t *c = conn->client;

  conn->tls_dead = 1;
  snprintf(c->tls_err, sizeof(c->tls_err), "%s", why);
  if (!conn->req && conn->state != CONN_H2) {
    wf__http_conn_drop(conn, why);
    return;
  }
  if (strcmp(c->tls_logged, why) != 0) {
    snprintf(c->tls_logged, sizeof(c->tls_logged), "%s", why);
    wf_warn(NULL, "http %s: %s", c->origin, why);
  } else {
    wf_debug(NULL, "http %s: %s", c->origin, why);
  }
  wf__http_conn_fail(conn, WF_ETLS);
}

/* A record arrived on a pooled connection: session tickets and key updates
 * keep it usable; data, close_notify or an error do not. */
static void tls_idle_read(wf__http_conn_t *conn) {
  ssize_t n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));

  if (wf__http_tls_flush(conn) != 0 || conn->state != CONN_IDLE) return;
  if (n == 0) return;
  conn->tls_dead = n < 0;
  wf__http_conn_drop(conn, n > 0 ? "unexpected bytes"
                           : n == UV_EOF ? "close_notify" : wf__tls_error(conn->tls));
}

void wf__http_tls_pump(wf__http_conn_t *conn) {
  wf_http_req_t *req = conn->req;
  ssize_t n;

  conn->tls_more = 0;
  for (;;) {
    if (req->paused || conn->parser_paused) {
      conn->tls_more = 1; /* resumed through client.c's drain */
      break;
    }
    n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));
    if (n == 0) break;
    if (n < 0) {
      /* A fatal error may have queued an alert for the peer. */
      if (wf__http_tls_flush(conn) != 0) return;
      if (n == UV_EOF) {
        /* close_notify: a body delimited by the close ends here. */
        conn->tls_dead = 1;
        wf__http_on_eof(conn, UV_EOF);
      } else {
        wf__http_tls_fail(conn, wf__tls_error(conn->tls));
      }
      return;
    }
    conn->got_bytes = 1;
    wf__http_feed(conn, conn->rbuf, (size_t)n);
    if (wf__http_gone(conn, req)) break;
  }
  /* The response ended and the connection is pooled, but the same read
   * brought more records (typically the server's close_notify right behind
   * its answer): judge them now, as if they came while idle, rather than
   * hand out a connection that is already closed. */
  if (conn->state == CONN_IDLE && wf__tls_buffered(conn->tls)) {
    tls_idle_read(conn);
    return;
  }
  wf__http_tls_flush(conn);
}

/* Advances the handshake; once it is done the request goes out. */
static void tls_handshake_step(wf__http_conn_t *conn) {
  int r = wf__tls_handshake(conn->tls);

  if (wf__http_tls_flush(conn) != 0) return;
  if (r == 1) return; /* more from the server; the connect timer still runs */
  if (r < 0) {
    wf__http_tls_fail(conn, wf__tls_error(conn->tls));
    return;
  }
  wf_debug(NULL, "http %s: TLS session established", conn->client->origin);
  if (conn->h2_offer) {
    if (wf__tls_alpn_is(conn->tls, "h2")) {
      wf__http_h2_start(conn);
      return;
    }
    wf__http_h2_declined(conn->client);
  }
  wf__http_attach(conn, conn->req);
}

void wf__http_tls_on_read(wf__http_conn_t *conn, ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    conn->tls_dead = 1;
    if (conn->state == CONN_IDLE) {
      wf__http_conn_drop(conn, wf__http_errstr((int)nread));
    } else if (conn->state == CONN_CONNECTING && nread == UV_EOF) {
      /* Typically a server that does not speak TLS on this port, or one
       * that refused our hello without an alert. */
      wf__http_tls_fail(conn, "TLS handshake failed: the server closed the connection");
    } else if (conn->state == CONN_CONNECTING || conn->state == CONN_H2) {
      wf__http_conn_fail(conn, (int)nread);
    } else {
      wf__http_on_eof(conn, (int)nread);
    }
    return;
  }
  if (wf__tls_feed(conn->tls, buf->base, (size_t)nread) < 0) {
    wf__http_tls_fail(conn, wf__tls_error(conn->tls));
    return;
  }
  switch (conn->state) {
    case CONN_CONNECTING:
      tls_handshake_step(conn);
      break;
    case CONN_IDLE:
      tls_idle_read(conn);
      break;
    case CONN_ACTIVE:
      wf__http_tls_pump(conn);
      if (conn->state == CONN_ACTIVE) wf__http_update_read_state(conn);
      break;
    case CONN_H2:
      wf__http_h2_pump(conn);
      break;
    case CONN_WRITE_WAIT: /* plain connections only */
    case CONN_CLOSING:
      break;
  }
}

/* Reading starts here (wf__http_update_read_state only reads for a request
 * or the pool); the connect timer keeps running until the handshake is
 * done. */
void wf__http_tls_start(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;
  char err[WF__HTTP_TLS_ERR_LEN];

  conn->tls = wf__tls_create(c->tls, c->o.host, err, sizeof(err));
  if (!conn->tls) {
    wf__http_tls_fail(conn, err);
    return;
  }
  /* The probe of a client in WF_HTTP2_AUTO offers h2 first (client-h2.c). */
  if (conn->h2_offer &&
      wf__tls_offer_alpn(conn->tls, (const unsigned char *)"\x02h2\x08http/1.1", 12) < 0) {
    wf__http_tls_fail(conn, wf__tls_error(conn->tls));
    return;
  }
  conn->cbuf = wf_malloc(WF__HTTP_CIPHER_BUF_SIZE);
  if (wf__http_start_reading(conn) < 0) return;
  tls_handshake_step(conn);
}

int wf__http_tls_send(wf__http_conn_t *conn, const char *p, size_t n) {
  /* Encrypted into OpenSSL's queue, then sent by tls_flush. */
  if (wf__tls_write(conn->tls, p, n) < 0) {
    wf__http_tls_fail(conn, wf__tls_error(conn->tls));
    return WF_ETLS;
  }
  return wf__http_tls_flush(conn);
}
