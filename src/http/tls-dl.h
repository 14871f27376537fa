/*
 * tls-dl.h: the OpenSSL functions tls.c calls, as a table of pointers that
 * tls-dl.c fills from dlopen()ed libssl and libcrypto on the first https://
 * origin or TLS listener (wf__ossl_load).
 *
 * Why: the binaries do not link OpenSSL.  Most agents talk plain http:// to
 * a local etcd gateway, and mapping libssl and libcrypto at start-up cost
 * them 1.65 MB of their 4.3 MB idle RSS.
 *
 * The OpenSSL headers still give every type, constant and macro, and each
 * pointer is declared with __typeof__ of the real declaration, so calls are
 * type-checked as before.  After this header, the names of the functions
 * below are macros for their table entries: tls.c keeps calling
 * SSL_read(...) and macros such as SSL_CTX_set_mode (SSL_CTX_ctrl) land in
 * the table too.  A function missing from the list does not go unnoticed:
 * the binaries have no OpenSSL to link it from.
 *
 * Include only from tls.c and tls-dl.c (which defines WF__OSSL_NO_REDIRECT
 * to fill the table under the real names).
 */
#ifndef WF_HTTP_TLS_DL_H
#define WF_HTTP_TLS_DL_H

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stddef.h>

/* The sonames (src/meson.build: from the version of the headers). */
#ifndef WF_LIBSSL
#error "WF_LIBSSL (the libssl soname) must come from the build (src/meson.build)"
#endif
#ifndef WF_LIBCRYPTO
#error "WF_LIBCRYPTO (the libcrypto soname) must come from the build (src/meson.build)"
#endif

/* X(library, function): every OpenSSL function tls.c reaches, macros
 * resolved to the function they call; library is SSL or CRYPTO (taken from
 * WF_LIBSSL or WF_LIBCRYPTO). */
#define WF__OSSL_FUNCS(X)                        \
  X(SSL, TLS_client_method)                      \
  X(SSL, TLS_server_method)                      \
  X(SSL, SSL_CTX_new)                            \
  X(SSL, SSL_CTX_free)                           \
  X(SSL, SSL_CTX_ctrl)                           \
  X(SSL, SSL_CTX_set_verify)                     \
  X(SSL, SSL_CTX_set_default_passwd_cb)          \
  X(SSL, SSL_CTX_set_default_passwd_cb_userdata) \
  X(SSL, SSL_CTX_load_verify_locations)          \
  X(SSL, SSL_CTX_set_default_verify_paths)       \
  X(SSL, SSL_CTX_use_certificate_chain_file)     \
  X(SSL, SSL_CTX_use_PrivateKey_file)            \
  X(SSL, SSL_CTX_check_private_key)              \
  X(SSL, SSL_CTX_set_options)                    \
  X(SSL, SSL_CTX_set_session_id_context)         \
  X(SSL, SSL_CTX_set_alpn_select_cb)             \
  X(SSL, SSL_set_alpn_protos)                    \
  X(SSL, SSL_get0_alpn_selected)                 \
  X(SSL, SSL_load_client_CA_file)                \
  X(SSL, SSL_CTX_set_client_CA_list)             \
  X(SSL, SSL_new)                                \
  X(SSL, SSL_free)                               \
  X(SSL, SSL_ctrl)                               \
  X(SSL, SSL_set_bio)                            \
  X(SSL, SSL_set_connect_state)                  \
  X(SSL, SSL_set_accept_state)                   \
  X(SSL, SSL_get0_param)                         \
  X(SSL, SSL_set_hostflags)                      \
  X(SSL, SSL_set1_host)                          \
  X(SSL, SSL_do_handshake)                       \
  X(SSL, SSL_read)                               \
  X(SSL, SSL_write)                              \
  X(SSL, SSL_pending)                            \
  X(SSL, SSL_get_error)                          \
  X(SSL, SSL_get_verify_result)                  \
  WF__OSSL_PEER_CERT(X)                          \
  X(SSL, SSL_is_init_finished)                   \
  X(SSL, SSL_get_shutdown)                       \
  X(SSL, SSL_shutdown)                           \
  X(CRYPTO, BIO_s_mem)                           \
  X(CRYPTO, BIO_new)                             \
  X(CRYPTO, BIO_free)                            \
  X(CRYPTO, BIO_ctrl)                            \
  X(CRYPTO, BIO_ctrl_pending)                    \
  X(CRYPTO, BIO_read)                            \
  X(CRYPTO, BIO_write)                           \
  X(CRYPTO, ERR_get_error)                       \
  X(CRYPTO, ERR_peek_error)                      \
  X(CRYPTO, ERR_peek_last_error)                 \
  X(CRYPTO, ERR_clear_error)                     \
  X(CRYPTO, ERR_reason_error_string)             \
  X(CRYPTO, X509_VERIFY_PARAM_set1_ip_asc)       \
  X(CRYPTO, X509_verify_cert_error_string)       \
  X(CRYPTO, X509_free)

/* OpenSSL 3 renamed SSL_get_peer_certificate to SSL_get1_peer_certificate
 * (the old name is a macro for the new one in its headers, and libssl.so.3
 * exports only the new one); tls.c calls the new name either way. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define WF__OSSL_PEER_CERT(X) X(SSL, SSL_get1_peer_certificate)
#else
#define WF__OSSL_PEER_CERT(X) X(SSL, SSL_get_peer_certificate)
#endif

typedef struct wf__ossl_s {
#define WF__OSSL_FIELD(lib, fn) __typeof__(fn) *fn;
  WF__OSSL_FUNCS(WF__OSSL_FIELD)
#undef WF__OSSL_FIELD
} wf__ossl_t;

/* Filled by wf__ossl_load; all NULL before (and after a failed load). */
extern wf__ossl_t wf__ossl;

/* Loads both libraries and every function, once per process (later calls
 * only repeat the outcome); the libraries stay loaded until exit.  0, or -1
 * with the library and dlerror()'s text in err, e.g. "cannot load OpenSSL
 * (libssl.so.3) for https://: libssl.so.3: cannot open shared object file:
 * No such file or directory". */
int wf__ossl_load(char *err, size_t errlen);

#ifndef WF__OSSL_NO_REDIRECT
#define TLS_client_method (wf__ossl.TLS_client_method)
#define TLS_server_method (wf__ossl.TLS_server_method)
#define SSL_CTX_new (wf__ossl.SSL_CTX_new)
#define SSL_CTX_free (wf__ossl.SSL_CTX_free)
#define SSL_CTX_ctrl (wf__ossl.SSL_CTX_ctrl)
#define SSL_CTX_set_verify (wf__ossl.SSL_CTX_set_verify)
#define SSL_CTX_set_default_passwd_cb (wf__ossl.SSL_CTX_set_default_passwd_cb)
#define SSL_CTX_set_default_passwd_cb_userdata (wf__ossl.SSL_CTX_set_default_passwd_cb_userdata)
#define SSL_CTX_load_verify_locations (wf__ossl.SSL_CTX_load_verify_locations)
#define SSL_CTX_set_default_verify_paths (wf__ossl.SSL_CTX_set_default_verify_paths)
#define SSL_CTX_use_certificate_chain_file (wf__ossl.SSL_CTX_use_certificate_chain_file)
#define SSL_CTX_use_PrivateKey_file (wf__ossl.SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_check_private_key (wf__ossl.SSL_CTX_check_private_key)
#define SSL_CTX_set_options (wf__ossl.SSL_CTX_set_options)
#define SSL_CTX_set_session_id_context (wf__ossl.SSL_CTX_set_session_id_context)
#define SSL_CTX_set_alpn_select_cb (wf__ossl.SSL_CTX_set_alpn_select_cb)
#define SSL_set_alpn_protos (wf__ossl.SSL_set_alpn_protos)
#define SSL_get0_alpn_selected (wf__ossl.SSL_get0_alpn_selected)
#define SSL_load_client_CA_file (wf__ossl.SSL_load_client_CA_file)
#define SSL_CTX_set_client_CA_list (wf__ossl.SSL_CTX_set_client_CA_list)
#define SSL_new (wf__ossl.SSL_new)
#define SSL_free (wf__ossl.SSL_free)
#define SSL_ctrl (wf__ossl.SSL_ctrl)
#define SSL_set_bio (wf__ossl.SSL_set_bio)
#define SSL_set_connect_state (wf__ossl.SSL_set_connect_state)
#define SSL_set_accept_state (wf__ossl.SSL_set_accept_state)
#define SSL_get0_param (wf__ossl.SSL_get0_param)
#define SSL_set_hostflags (wf__ossl.SSL_set_hostflags)
#define SSL_set1_host (wf__ossl.SSL_set1_host)
#define SSL_do_handshake (wf__ossl.SSL_do_handshake)
#define SSL_read (wf__ossl.SSL_read)
#define SSL_write (wf__ossl.SSL_write)
#define SSL_pending (wf__ossl.SSL_pending)
#define SSL_get_error (wf__ossl.SSL_get_error)
#define SSL_get_verify_result (wf__ossl.SSL_get_verify_result)
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define SSL_get1_peer_certificate (wf__ossl.SSL_get1_peer_certificate)
#else
#define SSL_get_peer_certificate (wf__ossl.SSL_get_peer_certificate)
#define SSL_get1_peer_certificate SSL_get_peer_certificate
#endif
#define SSL_is_init_finished (wf__ossl.SSL_is_init_finished)
#define SSL_get_shutdown (wf__ossl.SSL_get_shutdown)
#define SSL_shutdown (wf__ossl.SSL_shutdown)
#define BIO_s_mem (wf__ossl.BIO_s_mem)
#define BIO_new (wf__ossl.BIO_new)
#define BIO_free (wf__ossl.BIO_free)
#define BIO_ctrl (wf__ossl.BIO_ctrl)
#define BIO_ctrl_pending (wf__ossl.BIO_ctrl_pending)
#define BIO_read (wf__ossl.BIO_read)
#define BIO_write (wf__ossl.BIO_write)
#define ERR_get_error (wf__ossl.ERR_get_error)
#define ERR_peek_error (wf__ossl.ERR_peek_error)
#define ERR_peek_last_error (wf__ossl.ERR_peek_last_error)
#define ERR_clear_error (wf__ossl.ERR_clear_error)
#define ERR_reason_error_string (wf__ossl.ERR_reason_error_string)
#define X509_VERIFY_PARAM_set1_ip_asc (wf__ossl.X509_VERIFY_PARAM_set1_ip_asc)
#define X509_verify_cert_error_string (wf__ossl.X509_verify_cert_error_string)
#define X509_free (wf__ossl.X509_free)
#endif

#endif
