/*
 * tls.c — the RPC port's TLS filter (tls.h is the contract).
 *
 * Each session is an SSL object between two memory BIOs: `rbio` holds what
 * the socket delivered and SSL has not consumed, `wbio` what SSL produced
 * for the socket.  Memory BIOs grow as needed, so SSL_write never answers
 * WANT_WRITE and writes everything at once; WANT_READ only means "more
 * bytes from the peer first".
 */
#include "proto/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define PTLS_READ_CHUNK (16u << 10) /* one TLS record's plaintext at most */

struct ptls_ctx {
    SSL_CTX *ssl;
    bool is_server;
};

struct ptls {
    SSL *ssl;
    BIO *rbio;
    BIO *wbio;
    bool is_server;
    bool is_established;
    bool is_failed;        /* only the alert saying why is left to send */
    struct proto_buf held; /* plaintext written before the handshake was done */
};

static int tls_fail(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tls_fail(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The oldest queued OpenSSL error, as "reason" text; clears the queue so
 * one connection's failure does not show up in the next one's message. */
static const char *tls_error_text(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (reason != NULL)
        snprintf(buf, cap, "%s", reason);
    else if (e != 0)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "unknown error");
    ERR_clear_error();
    return buf;
}

static SSL_CTX *ctx_base(bool is_server, char *msg, size_t cap)
{
    SSL_CTX *ssl = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (ssl == NULL) {
        tls_fail(msg, cap, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    /* Connections are long-lived and reconnects are rare: no tickets. */
    SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ssl, 0);
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    return ssl;
}

static int ctx_load_identity(SSL_CTX *ssl, const char *cert, const char *key, const char *flag,
                             char *msg, size_t cap)
{
    char why[PTLS_MESSAGE_MAX];
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1)
        return tls_fail(msg, cap, "%s-cert %s: cannot load the certificate chain (%s)", flag,
                        cert, tls_error_text(why, sizeof why));
    if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl) != 1)
        return tls_fail(msg, cap, "%s-key %s: cannot load a key that matches the certificate (%s)",
                        flag, key, tls_error_text(why, sizeof why));
    return 0;
}

static int ctx_load_ca(SSL_CTX *ssl, const char *ca, const char *flag, char *msg, size_t cap)
{
    char why[PTLS_MESSAGE_MAX];
    if (SSL_CTX_load_verify_locations(ssl, ca, NULL) != 1)
        return tls_fail(msg, cap, "%s-ca %s: cannot load CA certificates (%s)", flag, ca,
                        tls_error_text(why, sizeof why));
    return 0;
}

static int ctx_wrap(SSL_CTX *ssl, bool is_server, struct ptls_ctx **out, char *msg, size_t cap)
{
    struct ptls_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        SSL_CTX_free(ssl);
        return tls_fail(msg, cap, "out of memory");
    }
    ctx->ssl = ssl;
    ctx->is_server = is_server;
    *out = ctx;
    return 0;
}

int ptls_server_ctx_new(const char *cert, const char *key, const char *ca,
                        bool is_client_cert_required, struct ptls_ctx **out, char *msg,
                        size_t cap)
{
    *out = NULL;
    if (cert == NULL || key == NULL)
        return tls_fail(msg, cap, "--tls-cert and --tls-key go together");
    if (is_client_cert_required && ca == NULL)
        return tls_fail(msg, cap, "requiring client certificates needs --tls-ca");
    SSL_CTX *ssl = ctx_base(true, msg, cap);
    if (ssl == NULL)
        return -1;
    if (ctx_load_identity(ssl, cert, key, "--tls", msg, cap) != 0 ||
        (ca != NULL && ctx_load_ca(ssl, ca, "--tls", msg, cap) != 0)) {
        SSL_CTX_free(ssl);
        return -1;
    }
    if (ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ssl, names);
        int mode = SSL_VERIFY_PEER;
        if (is_client_cert_required)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ssl, mode, NULL);
    }
    return ctx_wrap(ssl, true, out, msg, cap);
}

int ptls_client_ctx_new(const char *ca, const char *cert, const char *key, const char *flag,
                        struct ptls_ctx **out, char *msg, size_t cap)
{
    *out = NULL;
    if (ca == NULL)
        return tls_fail(msg, cap, "TLS needs a CA to verify the server with (%s-ca)", flag);
    if ((cert == NULL) != (key == NULL))
        return tls_fail(msg, cap, "a client certificate needs both %s-cert and %s-key", flag,
                        flag);
    SSL_CTX *ssl = ctx_base(false, msg, cap);
    if (ssl == NULL)
        return -1;
    if (ctx_load_ca(ssl, ca, flag, msg, cap) != 0 ||
        (cert != NULL && ctx_load_identity(ssl, cert, key, flag, msg, cap) != 0)) {
        SSL_CTX_free(ssl);
        return -1;
    }
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    return ctx_wrap(ssl, false, out, msg, cap);
}

void ptls_ctx_free(struct ptls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

struct ptls *ptls_new(struct ptls_ctx *ctx, const char *host, char *msg, size_t cap)
{
    struct ptls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        tls_fail(msg, cap, "out of memory");
        return NULL;
    }
    t->is_server = ctx->is_server;
    proto_buf_init(&t->held);
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        tls_fail(msg, cap, "out of memory for a TLS session");
        goto fail;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns the BIOs from here */
    if (t->is_server) {
        SSL_set_accept_state(t->ssl);
        return t;
    }
    /* The address is an IP: the certificate must name it (IP SAN); no SNI. */
    if (host == NULL ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
        tls_fail(msg, cap, "TLS: \"%s\" is not a numeric IP address", host ? host : "(null)");
        goto fail;
    }
    SSL_set_connect_state(t->ssl);
    return t;
fail:
    if (t->ssl != NULL) {
        SSL_free(t->ssl); /* frees the BIOs once set */
    } else {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
    }
    ERR_clear_error();
    free(t);
    return NULL;
}

void ptls_free(struct ptls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    proto_buf_free(&t->held);
    free(t);
}

bool ptls_is_established(const struct ptls *t)
{
    return t->is_established;
}

bool ptls_has_output(const struct ptls *t)
{
    return BIO_ctrl_pending(t->wbio) > 0 || (t->is_established && t->held.len > 0);
}

/* An SSL call failed with `rc`: 0 when it only wants more input, else -1
 * with the reason (the verify result when a certificate was refused). */
static int tls_check(struct ptls *t, int rc, const char *what, char *msg, size_t cap)
{
    char why[PTLS_MESSAGE_MAX];
    int err = SSL_get_error(t->ssl, rc);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return tls_fail(msg, cap, "TLS: the peer closed the session");
    case SSL_ERROR_SSL: {
        long verify = SSL_get_verify_result(t->ssl);
        tls_error_text(why, sizeof why);
        if (verify != X509_V_OK)
            return tls_fail(msg, cap, "TLS %s failed: %s (%s)", what, why,
                            X509_verify_cert_error_string(verify));
        return tls_fail(msg, cap, "TLS %s failed: %s", what, why);
    }
    default:
        ERR_clear_error();
        return tls_fail(msg, cap, "TLS %s failed (SSL error %d)", what, err);
    }
}

/* Drive the handshake: 0 (done, or waiting for the peer) or -1. */
static int tls_handshake(struct ptls *t, char *msg, size_t cap)
{
    if (t->is_established)
        return 0;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->is_established = true;
        return 0;
    }
    return tls_check(t, rc, "handshake", msg, cap);
}

static int tls_write(struct ptls *t, const void *data, size_t len, char *msg, size_t cap)
{
    const char *p = data;
    while (len > 0) {
        int n = len > INT32_MAX ? INT32_MAX : (int)len;
        int rc = SSL_write(t->ssl, p, n);
        if (rc <= 0) {
            tls_check(t, rc, "write", msg, cap);
            return -1; /* a memory BIO never wants more: any failure is one */
        }
        p += rc;
        len -= (size_t)rc;
    }
    return 0;
}

static int tls_recv(struct ptls *t, const void *in, size_t len, struct proto_buf *plain,
                    char *msg, size_t cap)
{
    if (len > INT32_MAX)
        return tls_fail(msg, cap, "TLS: read larger than 2 GiB");
    if (len > 0 && BIO_write(t->rbio, in, (int)len) != (int)len)
        return tls_fail(msg, cap, "TLS: out of memory");
    if (tls_handshake(t, msg, cap) != 0)
        return -1;
    if (!t->is_established)
        return 0;
    for (;;) {
        char chunk[PTLS_READ_CHUNK];
        int rc = SSL_read(t->ssl, chunk, sizeof chunk);
        if (rc <= 0)
            return tls_check(t, rc, "read", msg, cap);
        if (proto_buf_append(plain, chunk, (size_t)rc) != 0)
            return tls_fail(msg, cap, "TLS: out of memory");
    }
}

int ptls_recv(struct ptls *t, const void *in, size_t len, struct proto_buf *plain, char *msg,
              size_t cap)
{
    if (t->is_failed)
        return tls_fail(msg, cap, "TLS: the session failed before");
    if (tls_recv(t, in, len, plain, msg, cap) == 0)
        return 0;
    t->is_failed = true;
    return -1;
}

int ptls_seal(struct ptls *t, struct proto_buf *buf, char *msg, size_t cap)
{
    if (t->is_failed) {
        buf->len = 0; /* nothing more goes out but the alert */
    } else if (tls_handshake(t, msg, cap) != 0) {
        t->is_failed = true;
        return -1;
    } else if (!t->is_established) {
        if (buf->len > 0 && proto_buf_append(&t->held, buf->data, buf->len) != 0)
            return tls_fail(msg, cap, "TLS: out of memory");
    } else {
        if (t->held.len > 0) {
            if (tls_write(t, t->held.data, t->held.len, msg, cap) != 0)
                return -1;
            proto_buf_free(&t->held);
        }
        if (buf->len > 0 && tls_write(t, buf->data, buf->len, msg, cap) != 0)
            return -1;
    }
    buf->len = 0;
    /* Whatever SSL produced: records, or after a failure the alert. */
    char *wire = NULL;
    long n = BIO_get_mem_data(t->wbio, &wire);
    if (n > 0) {
        if (proto_buf_append(buf, wire, (size_t)n) != 0)
            return tls_fail(msg, cap, "TLS: out of memory");
        (void)BIO_reset(t->wbio);
    }
    return 0;
}
