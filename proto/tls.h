/*
 * tls.h — TLS for the RPC port (docs/rpc.md "TLS"), as a byte filter over
 * OpenSSL with two memory BIOs: it never touches a socket, so the server
 * (cluster/server.c) and the client (proto/client.c) keep their libuv
 * streams and pass what they read through ptls_recv and what they write
 * through ptls_seal.  Nothing here blocks.
 *
 * Plaintext written before the handshake is done is held and sent, in
 * order, once it is: the server's challenge goes out right after accept
 * with no special case.  The HMAC proof of the hello stays required over
 * TLS; TLS adds privacy and, on the client, the server's identity (its
 * certificate must chain to the CA and name the address's IP in its
 * subjectAltName).
 */
#ifndef PURSER_TLS_H
#define PURSER_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

#define PTLS_MESSAGE_MAX 200

struct ptls_ctx;
struct ptls;

/* A server context: certificate chain and key (PEM files).  With `ca`,
 * client certificates are asked for and must chain to it when presented;
 * with `is_client_cert_required` too, a client without one is refused.
 * 0, or -1 with a message naming the file. */
int ptls_server_ctx_new(const char *cert, const char *key, const char *ca,
                        bool is_client_cert_required, struct ptls_ctx **out, char *msg,
                        size_t cap);
/* A client context: servers are verified against `ca` (required); `cert`
 * and `key` (both or neither) are a client certificate to present.
 * `flag` prefixes the flags named in messages ("--tls" -> "--tls-ca"). */
int ptls_client_ctx_new(const char *ca, const char *cert, const char *key, const char *flag,
                        struct ptls_ctx **out, char *msg, size_t cap);
/* Sessions made from the context keep it alive; NULL is ignored. */
void ptls_ctx_free(struct ptls_ctx *ctx);

/* One connection's session.  `host`: on a client context, the server's
 * numeric IPv4 address its certificate must name; NULL on a server.  NULL
 * when out of memory or the host is not an IP address (message set). */
struct ptls *ptls_new(struct ptls_ctx *ctx, const char *host, char *msg, size_t cap);
void ptls_free(struct ptls *t);

/* Bytes read from the socket.  The plaintext they complete is appended to
 * `plain`.  -1 with a message when the peer is not speaking TLS, the
 * handshake failed (a certificate not verified), a record is corrupt or
 * the peer closed the session: the caller drops the connection, after
 * sending what one more ptls_seal gives (the alert that tells the peer
 * why), if it cares to. */
int ptls_recv(struct ptls *t, const void *in, size_t len, struct proto_buf *plain, char *msg,
              size_t cap);
/* `buf` holds plaintext to send on entry (possibly none) and, on return,
 * the bytes to write to the socket: handshake records and the plaintext,
 * encrypted (held back until the handshake is done).  0 or -1. */
int ptls_seal(struct ptls *t, struct proto_buf *buf, char *msg, size_t cap);
/* Would ptls_seal produce bytes even without new plaintext (a handshake
 * answer, plaintext held until now)?  Callers then schedule a write. */
bool ptls_has_output(const struct ptls *t);
bool ptls_is_established(const struct ptls *t);

#endif
