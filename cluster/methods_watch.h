/*
 * methods_watch.h — alerting reads (`breaker`, `events`) for methods.c.
 * Each answers on (c, id) and returns 0, or a LEDGER_E* code with err set
 * for the caller to turn into an RPC error.
 */
#ifndef PURSER_METHODS_WATCH_H
#define PURSER_METHODS_WATCH_H

#include <stdint.h>
#include <stdlib.h>

#include "cluster/node.h"

struct conn;

int methods_watch_breaker(struct node *n, struct conn *c, uint32_t id, const char *account,
                          struct ledger_error *err);
int methods_watch_events(struct node *n, struct conn *c, uint32_t id, struct ledger_error *err);

#endif
