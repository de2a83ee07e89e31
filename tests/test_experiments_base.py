"""The experiment record: parameter validation, canonical values, the registry."""

import pytest

from diffbrain.experiments import Experiment, Param, ParamError, get, names


def _exp():
    return Experiment(
        "toy",
        (
            Param("n", int, 3, positive=True),
            Param("rate", float, 0.5, low=0.0, high=1.0),
            Param("method", str, "a", choices=("a", "b")),
            Param("flag", bool, False),
            Param("needed", float),
        ),
        run=lambda params, ctx: params,
    )


def test_validate_fills_defaults_and_canonicalises():
    out = _exp().validate({"needed": 2, "rate": 1})
    assert out == {"flag": False, "method": "a", "n": 3, "needed": 2.0, "rate": 1.0, "seed": 0}
    assert isinstance(out["needed"], float) and list(out) == sorted(out)


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"needed": 1.0, "bogus": 1}, "bogus", "unknown parameter"),
        ({}, "needed", "required"),
        ({"needed": 1.0, "n": 2.5}, "n", "expected int"),
        ({"needed": 1.0, "n": True}, "n", "expected int"),
        ({"needed": 1.0, "n": 0}, "n", "> 0"),
        ({"needed": 1.0, "rate": 1.5}, "rate", "maximum"),
        ({"needed": 1.0, "method": "c"}, "method", "one of: a, b"),
        ({"needed": float("nan")}, "needed", "finite"),
    ],
)
def test_validate_rejects_with_field(params, field, words):
    with pytest.raises(ParamError) as info:
        _exp().validate(params)
    assert info.value.field == field and words in info.value.message


def test_unknown_experiment_names_the_known_ones():
    with pytest.raises(ParamError) as info:
        get("no-such-thing")
    assert info.value.field == "experiment"
    for name in names():
        assert name in info.value.message
