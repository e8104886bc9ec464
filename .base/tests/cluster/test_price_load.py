"""purserctl price load: the shipped price file loads exactly; a bad file
changes nothing."""
import json
import os

from conftest import ROOT

PRICES = os.path.join(ROOT, "prices", "default.json")


def test_default_price_file_loads_every_model_exactly(cluster3):
    h = cluster3
    p = h.ctl("price", "load", PRICES)
    assert p.returncode == 0, p.stderr
    listed = {r["model"]: r for r in json.loads(h.ctl("--json", "price", "list", check=True).stdout)["prices"]}
    with open(PRICES) as f:
        spec = json.load(f)["models"]
    assert set(listed) == set(spec)
    assert listed["gpt-4o-mini"]["input_micros"] == 150_000
    assert listed["gpt-4o-mini"]["cached_micros"] == 75_000
    assert listed["gpt-4o-mini"]["output_micros"] == 600_000
    assert listed["claude-sonnet-4-0"]["cache_write_micros"] == 3_750_000
    # Cache prices default to the input price when the file has none.
    assert listed["text-embedding-3-small"]["cached_micros"] == 20_000


def test_price_file_with_a_float_is_refused_and_changes_nothing(cluster3, tmp_path):
    h = cluster3
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"a": {"input": "1", "output": "2"}, "b": {"input": 0.1, "output": "1"}}}')
    p = h.ctl("price", "load", str(bad))
    assert p.returncode == 2 and "decimal string" in p.stderr
    listed = json.loads(h.ctl("--json", "price", "list", check=True).stdout)["prices"]
    assert listed == []
