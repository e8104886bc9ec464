/*
 * test_tls.c — the RPC port's TLS filter (proto/tls.c) with a client and a
 * server session wired to each other in memory: plaintext written before
 * the handshake is held and delivered in order, fragmented reads, the
 * server's identity (CA and IP SAN), client certificates, and bytes that
 * are not TLS.  Certificates come from scripts/make-test-certs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/tls.h"

static char dir[64];

static const char *path(const char *name)
{
    static char buf[8][128];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static int certs_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/purser-tls-unit-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null", MAKE_TEST_CERTS, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int certs_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct pair {
    struct ptls_ctx *sctx, *cctx;
    struct ptls *server, *client;
    struct proto_buf to_server, to_client; /* plaintext each side received */
    char server_error[PTLS_MESSAGE_MAX], client_error[PTLS_MESSAGE_MAX];
    int server_rc, client_rc;
};

static void pair_open(struct pair *p, const char *ca, const char *client_cert,
                      const char *client_key, bool is_required, const char *client_ca,
                      const char *host)
{
    char msg[PTLS_MESSAGE_MAX];
    memset(p, 0, sizeof *p);
    assert_int_equal(ptls_server_ctx_new(path("server.pem"), path("server.key"), ca,
                                         is_required, &p->sctx, msg, sizeof msg), 0);
    assert_int_equal(ptls_client_ctx_new(client_ca, client_cert, client_key, "--tls", &p->cctx,
                                         msg, sizeof msg), 0);
    p->server = ptls_new(p->sctx, NULL, msg, sizeof msg);
    p->client = ptls_new(p->cctx, host, msg, sizeof msg);
    assert_non_null(p->server);
    assert_non_null(p->client);
    proto_buf_init(&p->to_server);
    proto_buf_init(&p->to_client);
}

static void pair_close(struct pair *p)
{
    ptls_free(p->server);
    ptls_free(p->client);
    ptls_ctx_free(p->sctx);
    ptls_ctx_free(p->cctx);
    proto_buf_free(&p->to_server);
    proto_buf_free(&p->to_client);
}

/* Seal `plain` on one side and feed the bytes to the other in `chunk`-byte
 * reads.  Returns the number of bytes that crossed. */
static size_t send_side(struct ptls *from, const char *plain, struct ptls *to,
                        struct proto_buf *received, size_t chunk, int *to_rc, char *to_error)
{
    struct proto_buf wire;
    char msg[PTLS_MESSAGE_MAX];
    proto_buf_init(&wire);
    if (plain != NULL)
        assert_int_equal(proto_buf_append(&wire, plain, strlen(plain)), 0);
    assert_int_equal(ptls_seal(from, &wire, msg, sizeof msg), 0);
    size_t n = wire.len;
    for (size_t off = 0; off < wire.len && *to_rc == 0; off += chunk) {
        size_t len = wire.len - off < chunk ? wire.len - off : chunk;
        *to_rc = ptls_recv(to, wire.data + off, len, received, to_error, PTLS_MESSAGE_MAX);
    }
    proto_buf_free(&wire);
    return n;
}

/* Exchange until neither side has anything to send (or one failed). */
static void pump(struct pair *p, const char *client_plain, const char *server_plain,
                 size_t chunk)
{
    for (int round = 0; round < 20 && p->server_rc == 0 && p->client_rc == 0; round++) {
        size_t moved = send_side(p->client, client_plain, p->server, &p->to_server, chunk,
                                 &p->server_rc, p->server_error);
        if (p->server_rc != 0)
            break;
        moved += send_side(p->server, server_plain, p->client, &p->to_client, chunk,
                           &p->client_rc, p->client_error);
        client_plain = server_plain = NULL;
        if (moved == 0)
            break;
    }
}

static void assert_text(const struct proto_buf *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

/* Both sides write before the handshake is done (the server's challenge
 * right after accept): the bytes are held, then arrive in order. */
static void test_plaintext_before_the_handshake_arrives_in_order(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL, NULL, NULL, false, path("ca.pem"), "127.0.0.1");
    pump(&p, "hello-from-client ", "challenge ", 1 << 16);
    assert_int_equal(p.server_rc, 0);
    assert_int_equal(p.client_rc, 0);
    assert_true(ptls_is_established(p.client));
    assert_true(ptls_is_established(p.server));
    assert_text(&p.to_client, "challenge ");
    assert_text(&p.to_server, "hello-from-client ");
    /* and after it, more in both directions, one byte per read */
    pump(&p, "second", "answer", 1);
    assert_text(&p.to_client, "challenge answer");
    assert_text(&p.to_server, "hello-from-client second");
    assert_false(ptls_has_output(p.client));
    assert_false(ptls_has_output(p.server));
    pair_close(&p);
}

static void test_a_large_write_crosses_in_many_records(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL, NULL, NULL, false, path("ca.pem"), "127.0.0.1");
    pump(&p, NULL, NULL, 4096);
    size_t n = 200000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    pump(&p, big, NULL, 1000);
    assert_int_equal(p.server_rc, 0);
    assert_text(&p.to_server, big);
    free(big);
    pair_close(&p);
}

static void test_a_server_from_another_ca_is_refused(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL, NULL, NULL, false, path("other-ca.pem"), "127.0.0.1");
    pump(&p, "hello", "challenge", 1 << 16);
    assert_int_equal(p.client_rc, -1);
    assert_non_null(strstr(p.client_error, "certificate verify failed"));
    assert_int_equal(p.to_client.len, 0);
    pair_close(&p);
}

static void test_the_certificate_must_name_the_address(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL, NULL, NULL, false, path("ca.pem"), "127.0.0.2");
    pump(&p, "hello", "challenge", 1 << 16);
    assert_int_equal(p.client_rc, -1);
    assert_non_null(strstr(p.client_error, "IP address mismatch"));
    pair_close(&p);
}

static void test_a_host_name_is_not_an_address(void **state)
{
    (void)state;
    char msg[PTLS_MESSAGE_MAX];
    struct ptls_ctx *ctx;
    assert_int_equal(ptls_client_ctx_new(path("ca.pem"), NULL, NULL, "--tls", &ctx, msg,
                                         sizeof msg), 0);
    assert_null(ptls_new(ctx, "localhost", msg, sizeof msg));
    assert_non_null(strstr(msg, "not a numeric IP"));
    ptls_ctx_free(ctx);
}

static void test_client_certificates_optional_then_required(void **state)
{
    (void)state;
    struct pair p;
    /* --tls-ca alone: no certificate is fine */
    pair_open(&p, path("ca.pem"), NULL, NULL, false, path("ca.pem"), "127.0.0.1");
    pump(&p, "hello", "challenge", 1 << 16);
    assert_int_equal(p.server_rc, 0);
    assert_text(&p.to_server, "hello");
    pair_close(&p);
    /* a certificate from the CA is verified and accepted */
    pair_open(&p, path("ca.pem"), path("client.pem"), path("client.key"), true, path("ca.pem"),
              "127.0.0.1");
    pump(&p, "hello", "challenge", 1 << 16);
    assert_int_equal(p.server_rc, 0);
    assert_text(&p.to_server, "hello");
    assert_text(&p.to_client, "challenge");
    pair_close(&p);
    /* required and missing: the server refuses and tells the client why */
    pair_open(&p, path("ca.pem"), NULL, NULL, true, path("ca.pem"), "127.0.0.1");
    pump(&p, "hello", "challenge", 1 << 16);
    assert_int_equal(p.server_rc, -1);
    assert_non_null(strstr(p.server_error, "peer did not return a certificate"));
    assert_int_equal(p.to_server.len, 0);
    assert_true(ptls_has_output(p.server)); /* the alert */
    int rc = 0;
    send_side(p.server, NULL, p.client, &p.to_client, 1 << 16, &rc, p.client_error);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(p.client_error, "certificate required"));
    pair_close(&p);
}

static void test_bytes_that_are_not_tls_are_refused(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL, NULL, NULL, false, path("ca.pem"), "127.0.0.1");
    static const char frame[] = "\x00\x00\x00\x10" "not a tls record";
    assert_int_equal(ptls_recv(p.server, frame, sizeof frame - 1, &p.to_server,
                               p.server_error, sizeof p.server_error), -1);
    assert_non_null(strstr(p.server_error, "TLS handshake failed"));
    assert_int_equal(p.to_server.len, 0);
    /* a failed session stays failed */
    assert_int_equal(ptls_recv(p.server, "x", 1, &p.to_server, p.server_error,
                               sizeof p.server_error), -1);
    pair_close(&p);
}

static void test_bad_files_name_the_flag(void **state)
{
    (void)state;
    char msg[PTLS_MESSAGE_MAX];
    struct ptls_ctx *ctx = NULL;
    assert_int_equal(ptls_client_ctx_new("/nonexistent.pem", NULL, NULL, "--cluster-tls", &ctx,
                                         msg, sizeof msg), -1);
    assert_null(ctx);
    assert_non_null(strstr(msg, "--cluster-tls-ca /nonexistent.pem"));
    assert_int_equal(ptls_client_ctx_new(path("ca.pem"), path("client.pem"), NULL, "--tls",
                                         &ctx, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "both --tls-cert and --tls-key"));
    assert_int_equal(ptls_server_ctx_new(path("server.pem"), path("client.key"), NULL, false,
                                         &ctx, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "--tls-key"));
    assert_int_equal(ptls_server_ctx_new(path("server.pem"), path("server.key"), NULL, true,
                                         &ctx, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "needs --tls-ca"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plaintext_before_the_handshake_arrives_in_order),
        cmocka_unit_test(test_a_large_write_crosses_in_many_records),
        cmocka_unit_test(test_a_server_from_another_ca_is_refused),
        cmocka_unit_test(test_the_certificate_must_name_the_address),
        cmocka_unit_test(test_a_host_name_is_not_an_address),
        cmocka_unit_test(test_client_certificates_optional_then_required),
        cmocka_unit_test(test_bytes_that_are_not_tls_are_refused),
        cmocka_unit_test(test_bad_files_name_the_flag),
    };
    return cmocka_run_group_tests(tests, certs_setup, certs_teardown);
}
