#!/usr/bin/env python3
"""gen_corpus.py — write the seed corpora of the proto fuzz targets.

Seeds are valid messages of the wire format in proto/proto.h, written with a
tiny msgpack packer of our own (no dependency, and independent of the C
encoder under test).  The field order per command type mirrors the schema
table in proto/codec.c.

    python3 tests/fuzz/gen_corpus.py            # writes tests/fuzz/corpus/...

proto_entry/ holds entries (version byte + [timestamp_ms, [cmd...]]) and a
few "\\x00" + command / map seeds, since fuzz_proto_entry feeds the input
after its first byte to proto_cmd_decode and proto_map_json.
proto_result/ holds results and two money strings.
rpc_hello/ holds hello, apply, read and challenge messages; gateway_json/
holds X-Budget-* headers, proxy and budget bodies and budget paths;
h1_response/ holds upstream HTTP/1.1 responses of every framing.
"""
import os
import struct

VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))


class Map:
    """An ordered string map (msgpack map in this exact order)."""

    def __init__(self, *pairs):
        self.pairs = pairs


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        return pack_int(v)
    if isinstance(v, str):
        return pack_sized(v.encode(), 0xa0, 31, (0xd9, 0xda, 0xdb))
    if isinstance(v, bytes):
        return pack_sized(v, None, -1, (0xc4, 0xc5, 0xc6))
    if isinstance(v, list):
        return pack_head(len(v), 0x90, (0xdc, 0xdd)) + b"".join(pack(x) for x in v)
    if isinstance(v, Map):
        body = b"".join(pack(k) + pack(x) for k, x in v.pairs)
        return pack_head(len(v.pairs), 0x80, (0xde, 0xdf)) + body
    raise TypeError(type(v))


def pack_int(v):
    if 0 <= v <= 0x7F:
        return bytes([v])
    if -32 <= v < 0:
        return struct.pack(">b", v)
    if v >= 0:
        for tag, fmt, hi in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                             (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
            if v <= hi:
                return bytes([tag]) + struct.pack(fmt, v)
    for tag, fmt, lo in ((0xD0, ">b", -128), (0xD1, ">h", -32768),
                         (0xD2, ">i", -2**31), (0xD3, ">q", -2**63)):
        if v >= lo:
            return bytes([tag]) + struct.pack(fmt, v)
    raise ValueError(v)


def pack_sized(data, fix, fix_max, tags):
    n = len(data)
    if fix is not None and n <= fix_max:
        return bytes([fix | n]) + data
    for tag, fmt, hi in zip(tags, (">B", ">H", ">I"), (0xFF, 0xFFFF, 0xFFFFFFFF)):
        if n <= hi:
            return bytes([tag]) + struct.pack(fmt, n) + data
    raise ValueError(n)


def pack_head(n, fix, tags):
    if n <= 15:
        return bytes([fix | n])
    if n <= 0xFFFF:
        return bytes([tags[0]]) + struct.pack(">H", n)
    return bytes([tags[1]]) + struct.pack(">I", n)


META = Map(("team", "search"), ("note", "quote \" backslash \\ tab \t \u00e9"))
HASH = bytes(range(32))

# [type, role, key, fields...] in the order of cmd_schemas[] in codec.c.
COMMANDS = {
    "account_create": [1, 1, "k-create", "acme/eng/bot", 2500000000, 2, -300, META],
    "account_update": [2, 1, "", "acme/eng/bot", None, 3, None, None],
    "account_freeze": [3, 1, "", "acme/eng", "runaway loop"],
    "account_unfreeze": [4, 1, "", "acme/eng", ""],
    "account_close": [5, 1, "k-close", "acme/old", "retired"],
    "reserve": [6, 0, "k-res-1", "acme/eng/bot", "vendor/openai", 1234567, 60000, 0, META],
    "commit": [7, 0, "k-commit", 18446744073709551615, -7, Map(("tokens", "1234"))],
    "release": [8, 0, "", 42],
    "expire": [9, 1, ""],
    "transfer": [10, 0, "", "acme/a", "acme/b", 9223372036854775807, 2, Map()],
    "grant_create": [11, 0, "", "acme/eng", "nightly", 5000000, 86400000, META],
    "grant_close": [12, 0, "", 9],
    "period_close": [13, 1, "", "2026-10"],
    "price_set": [14, 1, "", "claude-sonnet", 3000000, 15000000, 300000, 3750000],
    "key_create": [15, 1, "", "key-7", HASH, "acme/eng/bot", 0],
    "key_revoke": [16, 1, "", "key-7"],
    "policy_set": [17, 1, "", ["team", "ticket"]],
    "breaker_set": [18, 1, "", "acme/eng/bot", 50000000, 3600000, 1320, 420, 300, 5000000],
    "alert_set": [19, 1, "", "acme/eng", "50,80,100"],
    "event_ack": [20, 1, "", 7],
    # 18..20: another branch's types
    "rate_limit_set": [21, 1, "", "", "project_id", "p-42", 60, 100000, 0, 0],
    "approval_set": [22, 1, "", 25000000],
    # trailing optional tokens
    "reserve_tokens": [6, 0, "k-res-2", "acme/eng/bot", "", 1234567, 60000, 1, META, 128000],
    "commit_tokens": [7, 0, "k-commit-2", 17, 1200000, Map(), 4096],
}

TS = 1763251200000


def entry(cmds, ts=TS):
    return bytes([VERSION]) + pack([ts, cmds])


def result(status, id_, amount, remaining, expires, transfer, overrun, returned, name, msg):
    return pack([status, id_, amount, remaining, expires, transfer, overrun, returned,
                 name, msg])


def entry_seeds():
    seeds = {"entry_" + name: entry([cmd]) for name, cmd in COMMANDS.items()}
    seeds["entry_all"] = entry(list(COMMANDS.values()))
    seeds["entry_empty"] = entry([], ts=-1)
    for name in ("reserve", "account_update", "key_create"):
        seeds["cmd_" + name] = b"\x00" + pack(COMMANDS[name])
    seeds["map_escapes"] = b"\x00" + pack(Map(("k\x00\x01", "v\xff"), ("\u20ac", "\"\\")))
    return seeds


def result_seeds():
    return {
        "result_empty": result(0, 0, 0, 0, 0, 0, 0, 0, "", ""),
        "result_reserve": result(0, 17, 1000000, 2**63 - 1, TS + 60000, 0, 0, 0, "", ""),
        "result_refusal": result(4, 0, 0, 250000, 0, 0, 0, 0, "acme/eng",
                                 "account \"acme/eng\" has 0.250000 USD left"),
        "result_commit": result(0, 17, 1200000, 3000000, 0, 99, 200000, -1, "", ""),
        "result_rate_limited": pack([11, 0, 0, 0, 0, 0, 0, 0, "project_id=p-42",
                                     "rate limit of project_id=p-42", 2500]),
        "money_plain": b"12.5",
        "money_min": b"-9223372036854.775808",
    }


def request(id_, method, params):
    return pack([0, id_, method, params])


def rpc_hello_seeds():
    """RPC messages without their length prefix, as fuzz_rpc_hello decodes
    them (requests dispatch on the method; anything else is bare params)."""
    proof = bytes(range(100, 132))
    return {
        "hello_gateway": request(0x80000000, "hello", [1, "gateway", proof]),
        "hello_reader_nil_proof": request(1, "hello", [1, "reader", None]),
        "hello_bad_version": request(1, "hello", [2, "admin", proof]),
        "apply_reserve": request(2, "apply", [pack(COMMANDS["reserve"])]),
        "read_account": request(3, "read", ["account", "linear", "acme/eng"]),
        "read_key_by_hash": request(4, "read", ["key_by_hash", "stale", HASH]),
        "read_report": request(5, "read", ["report", "stale", "account", 2026, 10,
                                           ["team", "ticket"], 100]),
        "read_journal": request(6, "read", ["journal", "linear", 2026, 10]),
        "read_estimate": request(7, "read", ["estimate", "stale", "triage", "gpt-4o"]),
        "read_breaker": request(8, "read", ["breaker", "linear", "acme/eng/bot"]),
        "read_rate_limits": request(9, "read", ["rate_limits", "stale"]),
        "challenge": pack([2, "challenge", [1, bytes(32), 3]]),
        "params_hello_admin": pack([1, "admin", proof]),
    }


def gateway_json_seeds():
    """A selector byte (low 3 bits: budget op reserve, commit, release,
    account, grant, grant_close, transfer, estimate; bit 3: POST), then text fed to
    every gateway parser: header, body and path."""
    post = 8
    return {
        "metadata": bytes([post]) + b'{"team":"search","ticket":"T-1","note":"\u00e9\""}',
        "hint": bytes([post]) + b"0.25",
        "proxy_openai": bytes([post]) + b'{"model":"gpt-4o","stream":true,"max_tokens":100,'
                        b'"messages":[{"role":"user","content":"hi"}]}',
        "proxy_anthropic": bytes([post]) + b'{"model":"claude-sonnet","max_completion_tokens":'
                           b'7,"max_tokens":-1,"stream":false}',
        "budget_reserve": bytes([post | 0]) + b'{"amount_micros":5000,"ttl_ms":1000,'
                          b'"payee":"vendor/x","account":"acme/eng","metadata":{"run":"7"}}',
        "budget_commit": bytes([post | 1]) + b'{"actual_micros":4200,"metadata":{"k":"v"}}',
        "budget_grant": bytes([post | 4]) + b'{"amount_micros":1,"parent":"acme","workflow":'
                        b'"nightly"}',
        "budget_transfer": bytes([post | 6]) + b'{"amount_micros":3,"debit":"acme/a",'
                           b'"credit":"acme/b","kind":"chargeback"}',
        "budget_estimate": bytes([post | 7]) + b'{"workflow":"triage","model":"gpt-4o",'
                           b'"prompt_bytes":1200,"max_tokens":50}',
        "path_estimate": bytes([post | 7]) + b"estimate",
        "path_commit": bytes([post | 1]) + b"reservations/42/commit",
        "path_account": bytes([3]) + b"accounts/acme/eng",
    }


def h1_response_seeds():
    """fuzz_h1_response's prefix (flags: 1 HEAD request, 2 the connection
    ends; a 16-bit split seed; the largest piece), then a response stream."""
    def seed(stream, flags=2, split=(0x12, 0x34), piece=7):
        return bytes([flags, split[0], split[1], piece]) + stream

    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    return {
        "length": seed(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 13\r\nX-Request-Id:  req-1 \r\n\r\n{\"id\":\"c-1\"}"),
        "length_keep_alive_next": seed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                       b"HTTP/1.1 200 OK\r\n", flags=0),
        "chunked": seed(chunked + b"7\r\ndata: 1\r\nA\r\ndata: 22\n\n\r\n0\r\n\r\n",
                        piece=3),
        "chunked_ext_trailers": seed(chunked + b"5;name=v;q=\"a;b\"\r\nhello\r\n"
                                     b"6 ; x\r\n world\r\n0;last\r\nX-Sum: 1\r\n\r\n"),
        "chunked_lf_only": seed(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
                                b"3\nabc\n0\n\n", piece=1),
        "eof": seed(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nuntil the end"),
        "http10_keep_alive": seed(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
                                  b"Content-Length: 1\r\n\r\nx", flags=0),
        "interim": seed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: </a>\r\n"
                        b"\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
        "no_content": seed(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", flags=0),
        "head_request": seed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", flags=1),
        "error_status": seed(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
                             b"Content-Length: 24\r\nConnection: close\r\n\r\n"
                             b"{\"error\":{\"type\":\"x\"}}"),
        "truncated": seed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
    }


def write(dirname, seeds):
    path = os.path.join(HERE, "corpus", dirname)
    os.makedirs(path, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("proto_entry", entry_seeds())
    write("proto_result", result_seeds())
    write("rpc_hello", rpc_hello_seeds())
    write("gateway_json", gateway_json_seeds())
    write("h1_response", h1_response_seeds())
