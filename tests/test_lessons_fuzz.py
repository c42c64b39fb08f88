"""Property tests of the lessons' readers of untrusted input: ``diagnostics.json`` and ``--weights``.
Any input loads (and then means what it says) or is one ``UserError`` line; never another exception."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.engine.diagnostics import load_diagnostics
from cnnlab.errors import UserError
from cnnlab.experiments.ensemble import parse_weights

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=4))
rows = st.lists(st.dictionaries(st.sampled_from(["step", "layer", "grad_norm", "saturated", "type"]),
                                st.one_of(scalars, st.sampled_from(["a", "b"])), max_size=5), max_size=6)


@FUZZ
@given(st.binary(max_size=300))
def test_diagnostics_any_bytes(tmp_path, data):
    path = tmp_path / "diagnostics.json"
    path.write_bytes(data)
    try:
        load_diagnostics(path)
    except UserError as e:
        assert str(e).strip() and "\n" not in str(e)


@FUZZ
@given(st.lists(st.sampled_from(["a", "b", 3]), max_size=3), rows)
def test_diagnostics_any_structure(tmp_path, layers, rs):
    path = tmp_path / "diagnostics.json"
    path.write_text(json.dumps({"layers": layers, "rows": rs}))
    try:
        d = load_diagnostics(path)
    except UserError as e:
        assert "\n" not in str(e)
        return
    for key in ("grad_norm", "saturated"):
        for name, series in d[key].items():
            assert name in d["layers"] and len(series) == len(d["steps"])
            assert all(isinstance(v, float) for v in series)


@FUZZ
@given(st.text(max_size=30), st.integers(1, 4))
def test_weights_any_text(text, n):
    try:
        w = parse_weights(text, n)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert len(w) == n and all(math.isfinite(v) and v >= 0 for v in w) and sum(w) > 0
