/*
 * webhook.c — delivery of the ledger's event outbox by the leader (see
 * webhook.h for the contract).
 *
 * A poll timer on the loop thread looks at the outbox when this node leads
 * and nothing is in flight: the oldest pending event after the last one sent
 * is turned into a JSON body, signed, and POSTed from a thread-pool worker
 * with libcurl.  Back on the loop, a 2xx answer submits event_ack; anything
 * else schedules a retry of the same event after a doubling delay.  The
 * worker owns a copy of everything it needs, so the ledger is only touched
 * on the loop thread.
 */
#include "cluster/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/node.h"
#include "cluster/server.h"

#define WEBHOOK_BODY_MAX (PROTO_NAME_MAX + LEDGER_EVENT_DETAIL_MAX + 256)

struct webhook {
    struct node *node;
    uv_timer_t poll_timer;
    char url[WEBHOOK_URL_MAX];
    char secret[WEBHOOK_SECRET_MAX + 1];
    size_t secret_len;
    bool was_leader;
    bool is_in_flight;
    bool is_stopped;
    uint64_t last_sent_id;     /* delivered (2xx) and acked or being acked */
    int64_t last_sent_ms;
    uint32_t failures;         /* consecutive, for the event being retried */
    int64_t next_try_ms;
};

/* One POST: everything the worker needs, copied. */
struct webhook_post {
    uv_work_t req;
    struct webhook *w;
    uint64_t event_id;
    char body[WEBHOOK_BODY_MAX];
    char url[WEBHOOK_URL_MAX];
    char signature[80];
    long http_status;
    char error[CURL_ERROR_SIZE];
};

static int64_t webhook_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t webhook_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void webhook_sign(const struct webhook *w, const char *body, char *out, size_t cap)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), w->secret, (int)w->secret_len, (const unsigned char *)body,
         strlen(body), mac, &mac_len);
    size_t n = (size_t)snprintf(out, cap, "sha256=");
    for (unsigned int i = 0; i < mac_len && n + 2 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", mac[i]);
}

/* The answer's body is not needed. */
static size_t webhook_discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

static void webhook_work_cb(uv_work_t *req)
{
    struct webhook_post *p = req->data;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(p->error, sizeof p->error, "curl_easy_init failed");
        return;
    }
    char id_header[64], ts_header[64], sig_header[128];
    snprintf(id_header, sizeof id_header, "X-Purser-Event-Id: %llu",
             (unsigned long long)p->event_id);
    snprintf(ts_header, sizeof ts_header, "X-Purser-Timestamp: %lld",
             (long long)webhook_wall_ms());
    snprintf(sig_header, sizeof sig_header, "X-Purser-Signature: %s", p->signature);
    struct curl_slist *headers = NULL;
    const char *lines[] = {"Content-Type: application/json", id_header, ts_header, sig_header,
                           "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *next = curl_slist_append(headers, lines[i]);
        if (!next) {
            snprintf(p->error, sizeof p->error, "out of memory");
            curl_slist_free_all(headers);
            curl_easy_cleanup(curl);
            return;
        }
        headers = next;
    }
    curl_easy_setopt(curl, CURLOPT_URL, p->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(p->body));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, p->error);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, webhook_discard_cb);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->http_status);
    else if (p->error[0] == '\0')
        snprintf(p->error, sizeof p->error, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void webhook_ack(struct webhook *w, uint64_t event_id)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_EVENT_ACK;
    c.role = PROTO_ROLE_ADMIN;
    c.u.event_ack.event_id = event_id;
    batch_submit(w->node, NULL, 0, &c);
}

static void webhook_after_work_cb(uv_work_t *req, int status)
{
    struct webhook_post *p = req->data;
    struct webhook *w = p->w;
    w->is_in_flight = false;
    bool is_ok = status == 0 && p->http_status >= 200 && p->http_status < 300;
    if (!w->is_stopped && is_ok) {
        w->failures = 0;
        w->last_sent_id = p->event_id;
        w->last_sent_ms = webhook_clock_ms();
        if (node_is_leader(w->node))
            webhook_ack(w, p->event_id);
    } else if (!w->is_stopped) {
        w->failures++;
        uint32_t shift = w->failures - 1 < 16 ? w->failures - 1 : 16;
        int64_t delay = (int64_t)WEBHOOK_BACKOFF_MIN_MS << shift;
        if (delay > WEBHOOK_BACKOFF_MAX_MS)
            delay = WEBHOOK_BACKOFF_MAX_MS;
        w->next_try_ms = webhook_clock_ms() + delay;
        char why[CURL_ERROR_SIZE + 16];
        if (p->http_status)
            snprintf(why, sizeof why, "HTTP %ld", p->http_status);
        else
            snprintf(why, sizeof why, "%s", p->error[0] ? p->error : "not sent");
        fprintf(stderr, "purserd: webhook: event %llu not delivered (%s), attempt %u, next in"
                        " %lld ms\n", (unsigned long long)p->event_id, why, w->failures,
                (long long)delay);
    }
    free(p);
}

static int webhook_first_cb(void *arg, const struct ledger_event_view *e)
{
    *(struct ledger_event_view *)arg = *e;
    return 1;
}

/* The oldest pending event with id > after, or false. */
static bool webhook_next(struct webhook *w, uint64_t after, struct ledger_event_view *e)
{
    struct ledger_error err = {0};
    e->id = 0;
    if (ledger_event_list(w->node->ledger, after, 1, webhook_first_cb, e, &err) != 0) {
        fprintf(stderr, "purserd: webhook: reading the outbox: %s\n", err.message);
        return false;
    }
    return e->id != 0;
}

static void webhook_poll_cb(uv_timer_t *t)
{
    struct webhook *w = t->data;
    bool is_leader = node_is_leader(w->node);
    if (is_leader && !w->was_leader) {
        /* A new term of ours: whatever is still pending was not acked. */
        w->last_sent_id = 0;
        w->failures = 0;
        w->next_try_ms = 0;
    }
    w->was_leader = is_leader;
    if (!is_leader || w->is_in_flight || !w->node->ledger)
        return;
    int64_t now = webhook_clock_ms();
    if (now < w->next_try_ms)
        return;
    struct ledger_event_view e;
    /* Sent but its ack never applied (lost with a leader change or a full
     * queue): send it again. */
    if (w->last_sent_id > 0 && webhook_next(w, 0, &e) && e.id <= w->last_sent_id &&
        now - w->last_sent_ms > WEBHOOK_ACK_WAIT_MS)
        w->last_sent_id = e.id - 1;
    if (!webhook_next(w, w->last_sent_id, &e))
        return;
    struct webhook_post *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->w = w;
    p->event_id = e.id;
    p->req.data = p;
    snprintf(p->url, sizeof p->url, "%s", w->url);
    snprintf(p->body, sizeof p->body,
             "{\"id\":%llu,\"type\":\"%s\",\"account\":\"%s\",\"ts_ms\":%lld,\"detail\":%s}",
             (unsigned long long)e.id, e.type, e.account, (long long)e.ts_ms,
             e.detail_json[0] ? e.detail_json : "{}");
    webhook_sign(w, p->body, p->signature, sizeof p->signature);
    if (uv_queue_work(w->node->loop, &p->req, webhook_work_cb, webhook_after_work_cb) != 0) {
        free(p);
        return;
    }
    w->is_in_flight = true;
}

static int webhook_secret_read(struct webhook *w, const char *path, char *msg, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, cap, "--webhook-secret %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(w->secret, 1, WEBHOOK_SECRET_MAX + 1, f);
    fclose(f);
    if (n > WEBHOOK_SECRET_MAX) {
        snprintf(msg, cap, "--webhook-secret %s: more than %d bytes", path, WEBHOOK_SECRET_MAX);
        return -1;
    }
    while (n > 0 && (w->secret[n - 1] == '\n' || w->secret[n - 1] == '\r' ||
                     w->secret[n - 1] == ' ' || w->secret[n - 1] == '\t'))
        n--;
    w->secret[n] = '\0';
    if (n == 0) {
        snprintf(msg, cap, "--webhook-secret %s: the file is empty", path);
        return -1;
    }
    w->secret_len = n;
    return 0;
}

int webhook_start(struct node *n, const char *url, const char *secret_path, char *msg,
                  size_t cap)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(msg, cap, "--webhook-url must start with http:// or https://");
        return -1;
    }
    if (strlen(url) >= WEBHOOK_URL_MAX) {
        snprintf(msg, cap, "--webhook-url is longer than %d bytes", WEBHOOK_URL_MAX - 1);
        return -1;
    }
    if (!secret_path) {
        snprintf(msg, cap, "--webhook-url needs --webhook-secret FILE");
        return -1;
    }
    /* Lives as long as the process: a POST in flight may still point at it. */
    struct webhook *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    if (webhook_secret_read(w, secret_path, msg, cap) != 0) {
        free(w);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(msg, cap, "libcurl failed to initialize");
        free(w);
        return -1;
    }
    snprintf(w->url, sizeof w->url, "%s", url);
    w->node = n;
    uv_timer_init(n->loop, &w->poll_timer);
    w->poll_timer.data = w;
    uv_timer_start(&w->poll_timer, webhook_poll_cb, WEBHOOK_POLL_MS, WEBHOOK_POLL_MS);
    n->webhook = w;
    return 0;
}

void webhook_stop(struct webhook *w)
{
    if (!w || w->is_stopped)
        return;
    w->is_stopped = true;
    uv_timer_stop(&w->poll_timer);
    uv_close((uv_handle_t *)&w->poll_timer, NULL);
}
