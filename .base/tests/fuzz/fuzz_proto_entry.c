/*
 * fuzz_proto_entry.c — libFuzzer target for the entry and command decoders
 * and the JSON view of maps.
 *
 * The whole input is decoded as an entry; the input after its first byte is
 * decoded as one command and read as a stored map by proto_map_json (so a
 * seed "\x00" + command reaches the command decoder directly).  Oracles:
 *   - whatever decodes re-encodes, decodes again to equal fields, and
 *     re-encodes to the same bytes (the encoding is canonical);
 *   - every decoded map's `raw` is a string map proto_map_json can print;
 *   - proto_map_json never claims more than it wrote.
 * Any violation aborts.  Run with ASan/UBSan (see tests/fuzz/meson.build;
 * configure with CFLAGS=-fsanitize=fuzzer-no-link,address,undefined so the
 * library is instrumented too).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/proto_equal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Worst case JSON of a full map: 16 * (64 + 256) bytes, 6 out per byte. */
#define FUZZ_JSON_CAP 65536

static struct proto_cmd cmds_first[PROTO_BATCH_MAX];
static struct proto_cmd cmds_second[PROTO_BATCH_MAX];
static char json[FUZZ_JSON_CAP];

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "oracle violated: %s (%s)\n", what, detail);
    abort();
}

static const struct proto_map *cmd_map(const struct proto_cmd *c)
{
    switch (c->type) {
    case PROTO_CMD_ACCOUNT_CREATE:
    case PROTO_CMD_ACCOUNT_UPDATE:
        return c->u.account.has_tags ? &c->u.account.tags : NULL;
    case PROTO_CMD_RESERVE: return &c->u.reserve.metadata;
    case PROTO_CMD_COMMIT: return &c->u.commit.metadata;
    case PROTO_CMD_TRANSFER: return &c->u.transfer.metadata;
    case PROTO_CMD_GRANT_CREATE: return &c->u.grant_create.metadata;
    default: return NULL;
    }
}

static void check_map_json(const struct proto_cmd *c)
{
    const struct proto_map *m = cmd_map(c);
    if (m == NULL)
        return;
    if (m->raw.len == 0)
        fuzz_fail("decoded map without raw bytes", proto_cmd_type_name(c->type));
    int n = proto_map_json(m->raw.ptr, m->raw.len, json, sizeof json);
    if (n < 0 || (size_t)n != strlen(json))
        fuzz_fail("decoded map does not print as JSON", proto_cmd_type_name(c->type));
}

static void check_same_bytes(const struct proto_buf *a, const struct proto_buf *b,
                             const char *what)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
        fuzz_fail("re-encoding changed the bytes", what);
}

static void entry_round_trip(const struct proto_entry *first)
{
    struct proto_buf b1, b2;
    struct proto_entry second;
    struct proto_error err;
    proto_buf_init(&b1);
    proto_buf_init(&b2);
    if (proto_entry_encode(&b1, first) != 0)
        fuzz_fail("entry encode", "out of memory");
    if (proto_entry_decode(b1.data, b1.len, &second, cmds_second, PROTO_BATCH_MAX, &err) != 0)
        fuzz_fail("re-encoded entry does not decode", err.message);
    if (second.timestamp_ms != first->timestamp_ms || second.cmd_count != first->cmd_count)
        fuzz_fail("entry header changed", "timestamp or count");
    for (uint32_t i = 0; i < first->cmd_count; i++) {
        if (!proto_cmd_same(&first->cmds[i], &second.cmds[i]))
            fuzz_fail("command changed in the round trip",
                      proto_cmd_type_name(first->cmds[i].type));
        check_map_json(&first->cmds[i]);
    }
    if (proto_entry_encode(&b2, &second) != 0)
        fuzz_fail("entry encode", "out of memory");
    check_same_bytes(&b1, &b2, "entry");
    proto_buf_free(&b1);
    proto_buf_free(&b2);
}

static void cmd_round_trip(const struct proto_cmd *first)
{
    struct proto_buf b1, b2;
    struct proto_cmd second;
    struct proto_error err;
    proto_buf_init(&b1);
    proto_buf_init(&b2);
    if (proto_cmd_encode(&b1, first) != 0)
        fuzz_fail("command encode", "out of memory");
    if (proto_cmd_decode(b1.data, b1.len, &second, &err) != 0)
        fuzz_fail("re-encoded command does not decode", err.message);
    if (!proto_cmd_same(first, &second))
        fuzz_fail("command changed in the round trip", proto_cmd_type_name(first->type));
    check_map_json(first);
    if (proto_cmd_encode(&b2, &second) != 0)
        fuzz_fail("command encode", "out of memory");
    check_same_bytes(&b1, &b2, "command");
    proto_buf_free(&b1);
    proto_buf_free(&b2);
}

static void check_error(int rc, const struct proto_error *err)
{
    if (rc != err->code || err->message[0] == '\0' ||
        strnlen(err->message, sizeof err->message) == sizeof err->message)
        fuzz_fail("error without a code or a message", err->message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_entry entry;
    struct proto_cmd cmd;
    struct proto_error err;
    int rc = proto_entry_decode(data, size, &entry, cmds_first, PROTO_BATCH_MAX, &err);
    if (rc == 0)
        entry_round_trip(&entry);
    else
        check_error(rc, &err);
    if (size == 0)
        return 0;
    rc = proto_cmd_decode(data + 1, size - 1, &cmd, &err);
    if (rc == 0)
        cmd_round_trip(&cmd);
    else
        check_error(rc, &err);
    int n = proto_map_json(data + 1, size - 1, json, sizeof json);
    if (n >= 0 && (size_t)n != strlen(json))
        fuzz_fail("proto_map_json length", "differs from strlen");
    return 0;
}
