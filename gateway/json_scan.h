/*
 * json_scan.h — find one member of a JSON object without building the
 * document.  Reading a provider's answer for its "usage" with jansson built
 * a node per value of the whole answer (choices, messages, logprobs, ...):
 * a tenth of the gateway's CPU per call.  The scan validates the text with
 * the rules of jansson's json_loadb (flags 0: a top-level object or array,
 * strict UTF-8, no \u0000, paired surrogates, integers within int64,
 * finite reals, nesting at most 2048 deep, nothing but whitespace after)
 * and returns where the member's value lies, for jansson to load alone.
 */
#ifndef PURSER_GW_JSON_SCAN_H
#define PURSER_GW_JSON_SCAN_H

#include <stddef.h>

#define GW_JSON_FOUND 0    /* a valid object holding the key: *value set */
#define GW_JSON_ABSENT 1   /* a valid object without the key */
#define GW_JSON_INVALID (-1) /* not valid JSON, or not an object */
#define GW_JSON_ESCAPED (-2) /* a member name uses escapes: ask a full parser */

/* Where a value lies in the text; at is NULL when the member is absent. */
struct gw_json_span {
    const char *at;
    size_t len;
};

/* Several members in one pass: 0 for a valid object (spans[k] for keys[k],
 * the last one when a name repeats), else GW_JSON_INVALID or
 * GW_JSON_ESCAPED. */
int gw_json_members(const char *text, size_t len, const char *const *keys, size_t count,
                    struct gw_json_span *spans);

/* The value of the object's top-level member `key` (the last one when the
 * name repeats, as jansson keeps), as bytes of `text`. */
int gw_json_member(const char *text, size_t len, const char *key, const char **value,
                   size_t *value_len);

/* A value (bytes of a text gw_json_member validated) as jansson's
 * json_is_integer + json_integer_value would read it: 0 and *out set for an
 * integer token, -1 for any other value. */
int gw_json_integer(const char *value, size_t len, long long *out);

#endif
