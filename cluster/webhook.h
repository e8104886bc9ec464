/*
 * webhook.h — the leader delivers the ledger's event outbox to one HTTP
 * endpoint (purserd --webhook-url, --webhook-secret).
 *
 * Delivery is at least once, in event id order, one event at a time: POST
 * the event as JSON, signed with HMAC-SHA256 of the body under the shared
 * secret; a 2xx answer is acknowledged with an event_ack command (replicated,
 * so every replica drops the event).  Failures retry with exponential
 * backoff (WEBHOOK_BACKOFF_*).  A node that becomes leader starts again from
 * the oldest unacknowledged event, so what the old leader did not get
 * acknowledged is delivered again (receivers deduplicate by event id).
 *
 * The POST runs with libcurl's easy interface in the libuv thread pool; the
 * loop thread only reads the ledger and submits acks.
 *
 * Headers:
 *   X-Purser-Event-Id:   the event id (decimal)
 *   X-Purser-Timestamp:  when this attempt was sent (Unix ms; not signed)
 *   X-Purser-Signature:  sha256=<hex HMAC-SHA256(secret, body)>
 */
#ifndef PURSER_WEBHOOK_H
#define PURSER_WEBHOOK_H

#include <stddef.h>

#define WEBHOOK_SECRET_MAX 4096      /* bytes in the secret file */
#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_POLL_MS 100          /* how often the leader looks at the outbox */
#define WEBHOOK_TIMEOUT_MS 5000      /* one POST, connect included */
#define WEBHOOK_BACKOFF_MIN_MS 200   /* first retry delay, doubled per failure */
#define WEBHOOK_BACKOFF_MAX_MS 30000
#define WEBHOOK_ACK_WAIT_MS 10000    /* delivered but not yet acked: send again */

struct node;
struct webhook;

/* Read the secret from `secret_path` (trailing whitespace trimmed; never
 * logged) and start delivering to `url` whenever this node leads.  Returns 0,
 * or -1 with msg set. */
int webhook_start(struct node *n, const char *url, const char *secret_path, char *msg,
                  size_t cap);
/* Stop polling (a POST in flight finishes and is forgotten).  NULL is fine. */
void webhook_stop(struct webhook *w);

#endif
