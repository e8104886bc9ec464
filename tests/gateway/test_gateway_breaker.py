"""The velocity circuit breaker seen through the gateway: it trips after
the spend that breaches it, the next call is refused 402 account_frozen
with reason velocity (nothing forwarded), and an admin unfreeze restores
service."""
import json

from test_gateway import CHAT, assert_error, chat_body, dumps


def test_velocity_breaker_trips_through_the_gateway_and_unfreeze_restores(env):
    acct, key = env.wallet("10")
    bot = f"{acct}/bot"
    env.ctl("breaker", "set", bot, "--velocity", "0.000001/1h")
    headers = {"X-Budget-Account": bot}
    first = env.call(CHAT, dumps(chat_body()), key, headers)
    assert first.status == 200, first  # the breaching call itself is served and charged
    spent = env.account(bot)["spent_micros"]
    assert spent > 1
    assert env.account(bot)["status"] == "frozen"
    env.mock.reset()
    r = env.call(CHAT, dumps(chat_body()), key, headers)
    assert_error(r, 402, "account_frozen", f'account "{bot}" is frozen (reason: velocity)',
                 account=bot, reason="velocity")
    assert env.mock.requests() == []
    events = env.ctl_json("events")["events"]
    trips = [e for e in events if e["type"] == "breaker" and e["account"] == bot]
    assert len(trips) == 1
    detail = json.loads(trips[0]["detail"])
    assert detail == {"reason": "velocity", "spent_micros": spent, "limit_micros": 1,
                      "window_ms": 3600000, "status": "frozen"}
    env.ctl("account", "unfreeze", bot)
    again = env.call(CHAT, dumps(chat_body()), key, headers)
    assert again.status == 200, again
    assert len(env.mock.requests()) == 1
