"""Node registry: signatures are schemas, docs are complete, names are unique."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
import xarray as xr

from testbench import cli
from testbench.errors import RegistryError
from testbench.nodes import Range, check_value, lookup, register, registry, stimulus


def test_every_builtin_setting_is_documented():
    missing = [f"{name}.{s}" for name, spec in registry().items()
               for s, setting in spec.settings.items() if not setting.doc]
    assert missing == []


def test_every_builtin_has_summary_and_kinds():
    specs = registry()
    for kind in ("stimulus", "dut", "analyzer", "sink"):
        assert any(s.kind == kind for s in specs.values()), kind
    assert all(s.summary for s in specs.values())


def test_registering_a_name_twice_is_an_error():
    def other_sine(*, frequency: float = 1.0) -> xr.DataArray:
        """Not the real sine."""

    with pytest.raises(RegistryError, match=r"node type 'sine' is registered twice: by testbench\.stimuli\..*"
                                            r"and by test_nodes:.*other_sine; fix: rename"):
        register("stimulus", "sine", other_sine)


def test_varargs_and_missing_defaults_are_refused():
    def varargs(*inputs, gain: float = 1.0):
        """Sum."""

    def nodefault(x, *, gain: float):
        """Gain."""

    with pytest.raises(RegistryError, match=r"\*args/\*\*kwargs are not allowed"):
        stimulus("varargs_node", register=False)(varargs)
    with pytest.raises(RegistryError, match=r"setting 'gain' has no default"):
        stimulus("nodefault_node", register=False)(nodefault)


def test_lookup_reports_close_names_and_bad_references():
    with pytest.raises(RegistryError, match=r"unknown node type 'step_respons'; did you mean "
                                            r"'step_response'\?"):
        lookup("step_respons")
    with pytest.raises(RegistryError, match=r"module 'testbench\.nodes' has no attribute 'nope'"):
        lookup("testbench.nodes:nope")
    with pytest.raises(RegistryError, match=r"'testbench\.nodes:lookup' is not a node"):
        lookup("testbench.nodes:lookup")


@pytest.mark.parametrize("tp, value, expected, problem", [
    (float, 1, 1.0, None),
    (float, True, True, "expected a number"),
    (float, "1.0", "1.0", "expected a number"),
    (int, 2.0, 2.0, "expected an integer"),
    (Annotated[float, Range(gt=0)], 0.0, 0.0, "must be > 0"),
    (Annotated[int, Range(ge=1, le=3)], 4, 4, "must be <= 3"),
    (Literal["a", "b"], "c", "c", "expected one of 'a', 'b'"),
    (float | None, None, None, None),
    (str | list[str], ["x", "y"], ["x", "y"], None),
    (list[Annotated[int, Range(ge=0)]], [1, -2], [1, -2], "list item -2: must be >= 0"),
])
def test_check_value(tp, value, expected, problem):
    got, why = check_value(tp, value)
    assert got == expected
    assert (why is None) if problem is None else (problem in why)


def test_cli_nodes_lists_settings_with_types_and_docs(capsys):
    assert cli.main(["nodes"]) == 0
    out = capsys.readouterr().out
    assert "lstm_cells  [dut]" in out
    assert "chunk_cells: int (>= 1) = 256" in out
    assert cli.main(["nodes", "sine_response"]) == 0
    out = capsys.readouterr().out  # settings from the signature; the docstring without Parameters
    assert "steady_frac: float (> 0 and <= 1) = 0.5" in out and "Returns" in out
    assert cli.main(["nodes", "sine_respons"]) == 2
    assert "did you mean 'sine_response'" in capsys.readouterr().err
