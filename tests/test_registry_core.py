"""The registry core: spec grammar, option validation, listing, duplicate names, lazy modules."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from endobench.errors import UserError
from endobench.registry import Registry, RegistryError, SpecError, format_spec


class EveryOptions(BaseModel):
    k: int = Field(ge=1)


class ListOptions(BaseModel):
    frames: tuple[int, ...]

    @field_validator("frames", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return tuple(int(v) for v in value.split(",")) if isinstance(value, str) else value


class AdaptiveOptions(BaseModel):
    confidence: float = 0.5
    budget: int | None = None


@pytest.fixture()
def policies() -> Registry:
    reg: Registry = Registry("keyframe policy", "test policies")
    reg.register("first", lambda: ("first",))

    @reg.register("every", options=EveryOptions, usage="every:K")
    def every(options: EveryOptions, scale: int = 1) -> tuple:
        """Every K-th frame."""
        return ("every", options.k * scale)

    reg.register("list", lambda o: ("list", o.frames), options=ListOptions)
    reg.register("adaptive", lambda o: ("adaptive", o), options=AdaptiveOptions)
    return reg


def test_spec_forms_build(policies: Registry) -> None:
    assert policies.build("first") == ("first",)
    assert policies.build("every:10") == ("every", 10)
    assert policies.build(" Every:3 ", scale=2) == ("every", 6)
    assert policies.build("list:0,12,30") == ("list", (0, 12, 30))
    opts = policies.build("adaptive:confidence=0.25,budget=none")[1]
    assert (opts.confidence, opts.budget) == (0.25, None)
    assert policies.build("adaptive:0.3")[1].confidence == pytest.approx(0.3)
    assert policies.build("adaptive")[1] == AdaptiveOptions()


def test_listing(policies: Registry) -> None:
    assert policies.names() == ["adaptive", "every", "first", "list"]
    assert "first" in policies and "nope" not in policies
    assert policies.forms() == "adaptive:CONFIDENCE | every:K | first | list:FRAMES"
    assert policies.get("every").description == "Every K-th frame."
    assert policies.get("every").module == __name__


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("every:0", "keyframe policy 'every:0': k: Input should be greater than or equal to 1"),
        ("every:x", "keyframe policy 'every:x': k: Input should be a valid integer"),
        ("first:2", "keyframe policy 'first:2': 'first' takes no argument"),
        ("sometimes", "keyframe policy 'sometimes': expected one of adaptive:CONFIDENCE | every:K"),
        ("adaptive:drift=1", "unknown or malformed field 'drift=1'; expected key=value with keys"),
        ("", "keyframe policy '': expected a string"),
        ("every", "keyframe policy 'every': k: Field required (usage: every:K)"),
    ],
)
def test_bad_specs_name_the_spec_and_field(policies: Registry, spec: str, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        policies.parse(spec)
    assert expected in str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


def test_canonical_text(policies: Registry) -> None:
    assert str(policies.parse("every:10")) == "every:k=10"
    assert str(policies.parse("adaptive")) == "adaptive"
    assert str(policies.parse("adaptive:budget=3")) == "adaptive:budget=3"
    assert str(policies.parse("list:1,2")) == "list:frames=1|2"
    assert format_spec("first", None) == "first"


def test_names_are_unique_across_modules(policies: Registry) -> None:
    policies.register("first", lambda: "again")  # same module: a re-run cell, replaces
    assert policies.build("first") == "again"
    namespace = {"__name__": "someone_else"}
    with pytest.raises(RegistryError, match="registered twice: by test_registry_core and by"):
        exec("reg.register('first', lambda: 0)", namespace, {"reg": policies})
    with pytest.raises(RegistryError, match="expected a word"):
        policies.register("a:b", lambda: 0)
    with pytest.raises(RegistryError, match="'zzz' is not registered; expected one of adaptive"):
        policies.get("zzz")


def test_builtin_modules_load_on_first_lookup(tmp_path, monkeypatch) -> None:
    (tmp_path / "eb_lazy_mod.py").write_text(
        "from test_registry_core import LAZY\nLAZY.register('lazy', lambda: 42)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    global LAZY
    LAZY = Registry("thing", "lazy things", ("eb_lazy_mod",))
    assert "eb_lazy_mod" not in sys.modules
    assert LAZY.build("lazy") == 42
    assert LAZY.get("lazy").module == "eb_lazy_mod"


LAZY: Registry


def test_registration_order_and_check() -> None:
    reg: Registry = Registry("backbone", "test backbones", sort=False)
    for name in ("small", "base", "large"):
        reg.register(name, name.upper(), description=f"{name} model")
    assert reg.names() == ["small", "base", "large"]  # listed as the module presents them
    assert reg.forms() == "small | base | large"
    assert reg.check("base") == "base"
    with pytest.raises(RegistryError) as err:
        reg.check("huge")
    assert str(err.value) == "unknown backbone 'huge'; expected one of small, base, large"
    with pytest.raises(RegistryError, match="^unknown format 'huge'; expected one of small"):
        reg.check("huge", "format")
    with pytest.raises(SpecError, match="expected a string"):
        reg.build(7)  # not a spec string: the same one-line error as parse


def test_a_name_unknown_to_another_registry_is_that_registrys_error() -> None:
    backbones: Registry = Registry("backbone", "test backbones", sort=False)
    backbones.register("small", "S")

    class AffinityOptions(BaseModel):
        backbone: str

        @field_validator("backbone")
        @classmethod
        def _known(cls, value: str) -> str:
            return backbones.check(value)

    propagators: Registry = Registry("propagator", "test propagators")
    propagators.register("affinity", lambda o: o.backbone, options=AffinityOptions)
    assert propagators.build("affinity:small") == "small"
    with pytest.raises(SpecError) as err:
        propagators.parse("affinity:huge")
    assert str(err.value) == "unknown backbone 'huge'; expected one of small"


def test_arg_then_pairs_and_nested_specs() -> None:
    """``name:ARG,key=value`` fills the first field then named ones; a ``nested=True`` entry takes
    the whole rest as another registry's spec (its own ``:``, ``,`` and ``=`` untouched)."""

    class FlowEstimatorOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        preset: str = "ultrafast"
        scale: int | None = None

    estimators: Registry = Registry("flow estimator", "test estimators")
    estimators.register("dis", lambda o: (o.preset, o.scale), options=FlowEstimatorOptions)

    class FlowOptions(BaseModel):
        method: str = "dis"

        @field_validator("method")
        @classmethod
        def _known(cls, value: str) -> str:
            estimators.parse(value)
            return value

    propagators: Registry = Registry("propagator", "test propagators")
    propagators.register(
        "flow", lambda o: estimators.build(o.method), options=FlowOptions, nested=True
    )
    assert estimators.build("dis:medium,scale=1") == ("medium", 1)
    assert estimators.build("dis:scale=0,preset=fast") == ("fast", 0)
    assert propagators.build("flow:dis:medium,scale=1") == ("medium", 1)
    assert propagators.build("flow:dis:preset=fast,scale=none") == ("fast", None)
    assert propagators.build("flow") == ("ultrafast", None)
    # The canonical text of a nested spec parses back to the same options.
    parsed = propagators.parse("flow:dis:medium,scale=1")
    assert str(parsed) == "flow:method=dis:medium,scale=1"
    assert propagators.parse(str(parsed)) == parsed
    with pytest.raises(SpecError) as err:
        propagators.parse("flow:dis:medium,sclae=1")
    assert str(err.value) == (
        "propagator 'flow:dis:medium,sclae=1': method: flow estimator 'dis:medium,sclae=1': "
        "unknown or malformed field 'sclae=1'; expected key=value with keys preset, scale "
        "(usage: flow:METHOD)"
    )
    with pytest.raises(SpecError, match=r"'dis:medium,preset=fast': field 'preset' is given twice"):
        estimators.parse("dis:medium,preset=fast")
    with pytest.raises(SpecError, match=r"scale: Input should be a valid integer"):
        estimators.parse("dis:medium,scale=half")
    with pytest.raises(RegistryError, match="nested=True needs an options model"):
        propagators.register("bad", lambda: 0, nested=True)
