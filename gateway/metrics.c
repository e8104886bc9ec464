/*
 * metrics.c — Prometheus text for /metrics: calls by endpoint and status,
 * refusals by type, latency histograms per phase (total, reserve, upstream,
 * settle) and of ledger round trips.  Fixed tables, no allocation per call.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

#define GW_M_KEYS 64
static const double gw_buckets_ms[] = {0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000,
                                       2500, 10000};
#define GW_M_BUCKETS (sizeof gw_buckets_ms / sizeof gw_buckets_ms[0])

struct gw_hist {
    uint64_t counts[GW_M_BUCKETS + 1];
    double sum_ms;
    uint64_t count;
};

struct gw_counter {
    char label[96];
    uint64_t value;
};

/* (endpoint, status) -> requests[] index: the endpoints are static
 * strings, so the hot path compares a pointer and an int, no formatting. */
struct gw_request_key {
    const char *endpoint;
    int status;
    int index;
};

struct gw_metrics {
    struct gw_request_key request_keys[GW_M_KEYS];
    int request_key_count;
    int64_t reserved_micros; /* holds outstanding from this gateway's calls */
    uint64_t spent_micros;   /* charged through this gateway since start */
    struct gw_counter requests[GW_M_KEYS];
    struct gw_counter refusals[GW_M_KEYS];
    struct gw_hist phase[4];
    struct gw_hist ledger_rtt;
};

static const char *const gw_phase_names[4] = {"total", "reserve", "upstream", "settle"};

int gw_metrics_init(struct gw *g)
{
    g->metrics = calloc(1, sizeof *g->metrics);
    return g->metrics ? 0 : -1;
}

static void gw_hist_add(struct gw_hist *h, double ms)
{
    size_t i = 0;
    while (i < GW_M_BUCKETS && ms > gw_buckets_ms[i])
        i++;
    h->counts[i]++;
    h->sum_ms += ms;
    h->count++;
}

/* The label's counter (created on first sight), or -1 when the table is full. */
static int gw_counter_find(struct gw_counter *t, const char *label)
{
    for (int i = 0; i < GW_M_KEYS; i++) {
        if (t[i].label[0] == '\0')
            snprintf(t[i].label, sizeof t[i].label, "%s", label);
        if (strcmp(t[i].label, label) == 0)
            return i;
    }
    return -1;
}

static void gw_counter_add(struct gw_counter *t, const char *label)
{
    int i = gw_counter_find(t, label);
    if (i >= 0)
        t[i].value++;
}

static void gw_request_count(struct gw_metrics *m, const char *endpoint, int status)
{
    for (int i = 0; i < m->request_key_count; i++) {
        const struct gw_request_key *k = &m->request_keys[i];
        if (k->endpoint == endpoint && k->status == status) {
            m->requests[k->index].value++;
            return;
        }
    }
    char label[96];
    snprintf(label, sizeof label, "endpoint=\"%s\",status=\"%d\"", endpoint ? endpoint : "?",
             status);
    int index = gw_counter_find(m->requests, label);
    if (index < 0)
        return;
    m->requests[index].value++;
    if (m->request_key_count < GW_M_KEYS)
        m->request_keys[m->request_key_count++] =
            (struct gw_request_key){.endpoint = endpoint, .status = status, .index = index};
}

void gw_metrics_request(struct gw *g, const char *endpoint, int status, const char *refusal,
                        double total_ms, double reserve_ms, double upstream_ms,
                        double settle_ms)
{
    struct gw_metrics *m = g->metrics;
    gw_request_count(m, endpoint, status);
    if (refusal) {
        char label[96];
        snprintf(label, sizeof label, "type=\"%s\"", refusal);
        gw_counter_add(m->refusals, label);
    }
    gw_hist_add(&m->phase[0], total_ms);
    if (reserve_ms > 0)
        gw_hist_add(&m->phase[1], reserve_ms);
    if (upstream_ms > 0)
        gw_hist_add(&m->phase[2], upstream_ms);
    if (settle_ms > 0)
        gw_hist_add(&m->phase[3], settle_ms);
}

void gw_metrics_money(struct gw *g, int64_t reserved_micros, int64_t released_micros,
                      int64_t spent_micros)
{
    struct gw_metrics *m = g->metrics;
    m->reserved_micros += reserved_micros - released_micros;
    m->spent_micros += (uint64_t)spent_micros;
}

void gw_metrics_ledger_rtt(struct gw *g, double ms)
{
    gw_hist_add(&g->metrics->ledger_rtt, ms);
}

static void gw_hist_render(struct proto_buf *b, const char *name, const char *labels,
                           const struct gw_hist *h)
{
    char line[256];
    uint64_t cum = 0;
    for (size_t i = 0; i <= GW_M_BUCKETS; i++) {
        cum += h->counts[i];
        int n;
        if (i < GW_M_BUCKETS)
            n = snprintf(line, sizeof line, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
                         labels[0] ? "," : "", gw_buckets_ms[i] / 1000.0, (unsigned long long)cum);
        else
            n = snprintf(line, sizeof line, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                         labels[0] ? "," : "", (unsigned long long)cum);
        proto_buf_append(b, line, (size_t)n);
    }
    int n = snprintf(line, sizeof line, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
                     h->sum_ms / 1000.0, name, labels, (unsigned long long)h->count);
    proto_buf_append(b, line, (size_t)n);
}

char *gw_metrics_render(struct gw *g, size_t *len)
{
    struct gw_metrics *m = g->metrics;
    struct proto_buf b;
    proto_buf_init(&b);
    char line[256];
    int n = snprintf(line, sizeof line,
                     "# TYPE purser_gateway_requests_total counter\n");
    proto_buf_append(&b, line, (size_t)n);
    for (int i = 0; i < GW_M_KEYS && m->requests[i].label[0]; i++) {
        n = snprintf(line, sizeof line, "purser_gateway_requests_total{%s} %llu\n",
                     m->requests[i].label, (unsigned long long)m->requests[i].value);
        proto_buf_append(&b, line, (size_t)n);
    }
    n = snprintf(line, sizeof line, "# TYPE purser_gateway_refusals_total counter\n");
    proto_buf_append(&b, line, (size_t)n);
    for (int i = 0; i < GW_M_KEYS && m->refusals[i].label[0]; i++) {
        n = snprintf(line, sizeof line, "purser_gateway_refusals_total{%s} %llu\n",
                     m->refusals[i].label, (unsigned long long)m->refusals[i].value);
        proto_buf_append(&b, line, (size_t)n);
    }
    n = snprintf(line, sizeof line, "# TYPE purser_gateway_phase_seconds histogram\n");
    proto_buf_append(&b, line, (size_t)n);
    for (int i = 0; i < 4; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "phase=\"%s\"", gw_phase_names[i]);
        gw_hist_render(&b, "purser_gateway_phase_seconds", labels, &m->phase[i]);
    }
    n = snprintf(line, sizeof line, "# TYPE purser_gateway_ledger_rtt_seconds histogram\n");
    proto_buf_append(&b, line, (size_t)n);
    gw_hist_render(&b, "purser_gateway_ledger_rtt_seconds", "", &m->ledger_rtt);
    n = snprintf(line, sizeof line,
                 "# TYPE purser_gateway_reserved_micros gauge\n"
                 "purser_gateway_reserved_micros %lld\n"
                 "# TYPE purser_gateway_spent_micros_total counter\n"
                 "purser_gateway_spent_micros_total %llu\n",
                 (long long)m->reserved_micros, (unsigned long long)m->spent_micros);
    proto_buf_append(&b, line, (size_t)n);
    n = snprintf(line, sizeof line, "# TYPE purser_gateway_ready gauge\npurser_gateway_ready %d\n",
                 g->is_ready ? 1 : 0);
    proto_buf_append(&b, line, (size_t)n);
    *len = b.len;
    proto_buf_append(&b, "", 1);
    return b.data;
}
