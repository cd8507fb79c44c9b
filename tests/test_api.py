"""The public API in pyspark.ml's style, checked on every public stage: a typed getter and setter for each
Param (declared in source, generated from the declarations and current), a keyword-only constructor signature
listing the Params, the README's Param tables naming every Param, and the names the README points users at
importable from public modules. No Spark session: these are properties of the classes."""

from __future__ import annotations

import inspect
import pathlib
import re
import subprocess
import sys
import typing

import pytest
from pyspark.ml.param import Param

import spark_aoai
from spark_aoai import ai, transformers
from spark_aoai._spark.stage import SECRET_ARGUMENTS, AzureOpenAIStage

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC_MODULES = (spark_aoai, transformers, ai)


def public_stages() -> list[type[AzureOpenAIStage]]:
    """Every stage class a user can reach from a public module."""
    found: dict[str, type[AzureOpenAIStage]] = {}
    for module in PUBLIC_MODULES:
        for name in getattr(module, "__all__", dir(module)):
            value = getattr(module, name)
            if inspect.isclass(value) and issubclass(value, AzureOpenAIStage) and value is not AzureOpenAIStage:
                found[value.__qualname__] = value
    return sorted(found.values(), key=lambda cls: cls.__qualname__)


STAGES = public_stages()


def params_of(cls: type[AzureOpenAIStage]) -> list[str]:
    return sorted(name for name in dir(cls) if isinstance(getattr(cls, name, None), Param))


def upper(name: str) -> str:
    return name[0].upper() + name[1:]


def declared_in_source(cls: type, method: str) -> bool:
    """``method`` is defined in the body of a class of ``cls``'s MRO (not added at run time)."""
    for klass in cls.__mro__:
        if method in vars(klass):
            try:
                return f"def {method}(" in inspect.getsource(klass)
            except (OSError, TypeError):
                return False
    return False


def test_the_generated_accessors_are_current():
    done = subprocess.run(
        [sys.executable, "scripts/gen_accessors.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_are_public_stages_to_walk():
    names = {cls.__name__ for cls in STAGES}
    assert {"ChatCompletion", "Embedding", "Classify", "Similarity"} <= names, names


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_every_param_has_a_typed_getter_and_setter_declared_in_source(cls):
    missing = []
    for name in params_of(cls):
        for method in (f"get{upper(name)}", f"set{upper(name)}"):
            function = getattr(cls, method, None)
            if function is None or not declared_in_source(cls, method):
                missing.append(method)
                continue
            hints = typing.get_type_hints(function)
            if "return" not in hints or (method.startswith("set") and "value" not in hints):
                missing.append(f"{method} (untyped)")
    assert not missing, f"{cls.__name__}: {missing}"


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_each_setter_sets_what_its_getter_reads_and_returns_the_stage(cls):
    stage = cls()
    checked = 0
    for name in params_of(cls):
        param = stage.getParam(name)
        if not stage.hasDefault(param) or stage.getOrDefault(param) is None:
            continue
        value = stage.getOrDefault(param)
        assert getattr(stage, f"set{upper(name)}")(value) is stage
        assert stage.isSet(param), name
        assert getattr(stage, f"get{upper(name)}")() == value, name
        checked += 1
    assert checked >= 10, f"{cls.__name__}: only {checked} Params have defaults to check"


def test_a_setter_refuses_a_wrong_value_naming_the_param():
    with pytest.raises(spark_aoai.ConfigurationError, match="temperature"):
        transformers.ChatCompletion().setTemperature("hot")  # type: ignore[arg-type]
    with pytest.raises(spark_aoai.ConfigurationError, match="maxAttempts"):
        transformers.Embedding().setMaxAttempts(0)


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_the_constructor_signature_lists_every_param_keyword_only(cls):
    signature = inspect.signature(cls)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    assert sorted(set(signature.parameters) - set(SECRET_ARGUMENTS)) == params_of(cls)
    assert set(SECRET_ARGUMENTS) <= set(signature.parameters)


def readme_table_names() -> set[str]:
    """The first cell of every README table row written as a name in backquotes."""
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Za-z][A-Za-z0-9]*)` \|", text, re.M))


def test_the_readme_tables_name_every_param_of_every_stage():
    named = readme_table_names()
    missing = sorted({f"{cls.__name__}.{name}" for cls in STAGES for name in params_of(cls) if name not in named})
    assert not missing, f"README tables do not list: {missing}"


def test_the_names_the_readme_points_at_are_public():
    text = (ROOT / "README.md").read_text()
    before_how_it_works = text.split("## How it works")[0]
    assert not re.findall(r"spark_aoai\._\w+", before_how_it_works), "the README points users at private modules"
    assert [code.value for code in spark_aoai.ErrorCode][:1] == ["invalid_input"]
    assert "gpt-4o" in spark_aoai.PRICE_TABLE and isinstance(spark_aoai.PRICE_TABLE["gpt-4o"], spark_aoai.Price)
    assert "classify" in ai.TASKS and isinstance(ai.TASKS["classify"], ai.Task)
    assert spark_aoai.JobStatistics.__name__ == "JobStatistics"
    assert spark_aoai.BatchJob.__name__ == "BatchJob"


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_off_is_spelled_one_way_unset(cls):
    """No Param defaults to 0 or "" to mean "off": off is unset (None), and its getter returns None."""
    stage = cls()
    zeros = [
        name
        for name in params_of(cls)
        if stage.hasDefault(stage.getParam(name))
        and not isinstance(stage.getOrDefault(stage.getParam(name)), bool)
        and stage.getOrDefault(stage.getParam(name)) in (0, "")
    ]
    assert not zeros, f"{cls.__name__}: {zeros} default to 0 or '' (leave them unset)"
    assert stage.getCacheDir() is None and stage.getMaxRequestsPerMinute() is None
