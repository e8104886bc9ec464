/*
 * config.c — the gateway's routing file (API.md "Gateway config"):
 *   {"upstreams": {"NAME": {"base_url", "provider": "openai|anthropic",
 *                           "api_key_env"}},
 *    "models": {"MODEL": {"upstream": "NAME", "max_output_tokens"?: N}},
 *    "upstream_timeout_ms"?: N}
 * Provider keys are read from the named environment variables at start and
 * never logged.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

const struct gw_model_conf *gw_config_model(const struct gw_config *c, const char *model)
{
    for (uint32_t i = 0; i < c->model_count; i++)
        if (strcmp(c->models[i].name, model) == 0)
            return &c->models[i];
    return NULL;
}

static int gw_config_upstreams(json_t *ups, struct gw_config *out, char *msg, size_t cap)
{
    const char *name;
    json_t *u;
    json_object_foreach(ups, name, u)
    {
        if (out->upstream_count >= GW_UPSTREAMS_MAX) {
            snprintf(msg, cap, "more than %d upstreams", GW_UPSTREAMS_MAX);
            return -1;
        }
        struct gw_upstream_conf *uc = &out->upstreams[out->upstream_count];
        const char *base = json_string_value(json_object_get(u, "base_url"));
        const char *prov = json_string_value(json_object_get(u, "provider"));
        const char *env = json_string_value(json_object_get(u, "api_key_env"));
        if (!base || !prov || strlen(name) >= sizeof uc->name ||
            strlen(base) >= sizeof uc->base_url ||
            (strcmp(prov, "openai") != 0 && strcmp(prov, "anthropic") != 0)) {
            snprintf(msg, cap, "upstream \"%.64s\": needs base_url and provider openai|anthropic",
                     name);
            return -1;
        }
        snprintf(uc->name, sizeof uc->name, "%s", name);
        snprintf(uc->base_url, sizeof uc->base_url, "%s", base);
        size_t bl = strlen(uc->base_url);
        while (bl > 0 && uc->base_url[bl - 1] == '/')
            uc->base_url[--bl] = '\0';
        uc->provider = strcmp(prov, "anthropic") == 0 ? GW_PROVIDER_ANTHROPIC : GW_PROVIDER_OPENAI;
        if (env) {
            snprintf(uc->api_key_env, sizeof uc->api_key_env, "%s", env);
            const char *key = getenv(env);
            snprintf(uc->api_key, sizeof uc->api_key, "%s", key ? key : "");
        }
        out->upstream_count++;
    }
    return 0;
}

int gw_config_load(const char *path, struct gw_config *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->upstream_timeout_ms = 300000;
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        snprintf(msg, cap, "%s:%d: %s", path, jerr.line, doc ? "not an object" : jerr.text);
        json_decref(doc);
        return -1;
    }
    json_t *ups = json_object_get(doc, "upstreams");
    json_t *models = json_object_get(doc, "models");
    if (!json_is_object(ups) || !json_is_object(models)) {
        snprintf(msg, cap, "%s: needs \"upstreams\" and \"models\" objects", path);
        json_decref(doc);
        return -1;
    }
    json_t *t = json_object_get(doc, "upstream_timeout_ms");
    if (json_is_integer(t) && json_integer_value(t) > 0)
        out->upstream_timeout_ms = (uint32_t)json_integer_value(t);
    if (gw_config_upstreams(ups, out, msg, cap) != 0) {
        json_decref(doc);
        return -1;
    }
    const char *name;
    json_t *m;
    json_object_foreach(models, name, m)
    {
        if (out->model_count >= GW_MODELS_MAX || strlen(name) >= sizeof out->models[0].name) {
            snprintf(msg, cap, "%s: too many models or a model name too long", path);
            json_decref(doc);
            return -1;
        }
        const char *up = json_string_value(json_object_get(m, "upstream"));
        int idx = -1;
        for (uint32_t i = 0; up && i < out->upstream_count; i++)
            if (strcmp(out->upstreams[i].name, up) == 0)
                idx = (int)i;
        if (idx < 0) {
            snprintf(msg, cap, "model \"%.64s\": unknown upstream", name);
            json_decref(doc);
            return -1;
        }
        struct gw_model_conf *mc = &out->models[out->model_count++];
        snprintf(mc->name, sizeof mc->name, "%s", name);
        mc->upstream = idx;
        json_t *mo = json_object_get(m, "max_output_tokens");
        mc->max_output_tokens = json_is_integer(mo) ? json_integer_value(mo) : 0;
    }
    json_decref(doc);
    return 0;
}
