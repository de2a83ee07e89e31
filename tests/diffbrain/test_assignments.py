"""The one NAME=VALUE parser (diffbrain.assignments): what it accepts, and the field and class of what it refuses."""

import pytest

from diffbrain import assignments
from diffbrain.errors import BadInput
from diffbrain.params import ParamError

DEFAULTS = {"a": (0.0, 5.0), "b": (0.0, 9.0)}


def test_numbers_and_bounds_parse():
    assert assignments.split_text(" a=1, b=2.5; ,c=3 ") == ["a=1", "b=2.5", "c=3"]
    assert assignments.numbers(["a=1", " b = 2.5"], "--param", "fix") == {"a": 1.0, "b": 2.5}
    assert assignments.bounds("a=0:1; b=2:3", DEFAULTS, "gif") == {"a": (0.0, 1.0), "b": (2.0, 3.0)}
    assert assignments.bounds("", DEFAULTS, "gif") == DEFAULTS


@pytest.mark.parametrize("items, words", [(["a"], "'a' is not NAME=VALUE"), (["=1"], "is not NAME=VALUE"),
                                          (["a=x"], "'a=x' is not NAME=NUMBER"), (["a=nan"], "not NAME=NUMBER")])
def test_numbers_refused_name_the_field(items, words):
    with pytest.raises(BadInput) as info:
        assignments.numbers(items, "--param", "write e.g. --param a=0.005")
    assert info.value.field == "--param" and words in info.value.problem and "a=0.005" in info.value.fix


BAD_BOUNDS = {  # text -> (field, words)
    "a=1:0": ("bounds.a", "low 1 is not below high 0"),
    "zz=0:1": ("bounds.zz", "'zz' is not a fitted parameter of 'gif'"),
    "a=1": ("bounds", "'a=1' is not NAME=LO:HI"),
    "a=x:y": ("bounds.a", "'x:y' is not LO:HI numbers"),
    "a=0:inf": ("bounds.a", "are not finite"),
}


@pytest.mark.parametrize("text", BAD_BOUNDS)
def test_bounds_refused_in_the_callers_error_class(text):
    field, words = BAD_BOUNDS[text]
    with pytest.raises(ParamError) as info:
        assignments.bounds(text, DEFAULTS, "gif", "bounds", ParamError)
    assert info.value.field == field and words in info.value.problem
