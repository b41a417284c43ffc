"""Every back-end against the back-end contract (``medbench.frameworks.base.CONTRACT``), function by function.

As Keras 3's ``ops_test`` runs each op on every backend, this runs each contract function on every back-end
package, but statically: the module's source is parsed, not imported, so no framework is needed and the
check covers every back-end on every machine. That the functions also *behave* alike is what the
equivalence, training and resume tests check through :class:`~medbench.frameworks.base.Backend`.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from medbench.frameworks import FRAMEWORKS, REQUIRES, get_framework, package_of
from medbench.frameworks.base import CONTRACT, OPTIONAL_CONTRACT, Backend

PACKAGES = sorted({package_of(name) for name in FRAMEWORKS})
ROOT = Path(__file__).resolve().parents[2] / "src" / "medbench" / "frameworks"


def _functions(protocol: type) -> list[str]:
    return sorted(n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_"))


# every module of the contract in every back-end; an optional module wherever a back-end has it
CASES = [
    (package, module, function)
    for package in PACKAGES
    for module, protocol in CONTRACT.items()
    for function in _functions(protocol)
] + [
    (package, module, function)
    for package in PACKAGES
    for module, protocol in OPTIONAL_CONTRACT.items()
    if (ROOT / package / f"{module}.py").exists()
    for function in _functions(protocol)
]
PROTOCOLS = {**CONTRACT, **OPTIONAL_CONTRACT}


def _defined(package: str, module: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse((ROOT / package / f"{module}.py").read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize(("package", "module", "function"), CASES, ids=lambda v: str(v))
def test_each_backend_exports_each_contract_function_with_its_parameters(package, module, function):
    found = _defined(package, module).get(function)
    assert found is not None, f"medbench.frameworks.{package}.{module} has no {function}()"
    wanted = inspect.signature(getattr(PROTOCOLS[module], function)).parameters
    positional = [p.name for p in wanted.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = [p.name for p in wanted.values() if p.kind is p.KEYWORD_ONLY]
    args = found.args
    # positional parameters are passed by position: their number must match, their names may differ
    assert len(args.args) >= len(positional), f"{package}.{module}.{function} takes too few arguments"
    extra = args.args[len(positional) :]
    assert len(args.defaults) >= len(extra), f"{package}.{module}.{function} requires more than {positional}"
    names = {a.arg for a in args.args + args.kwonlyargs}
    takes_any = args.kwarg is not None  # **options, passed on unchanged
    missing = [k for k in keyword if k not in names and not takes_any]
    assert not missing, f"{package}.{module}.{function} does not take {missing}"
    # nothing beyond the contract is required: extra parameters have defaults
    required_kw = {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None}
    assert required_kw <= set(keyword), f"{package}.{module}.{function} requires {required_kw - set(keyword)}"


@pytest.mark.parametrize(("package", "module", "function"), CASES, ids=lambda v: str(v))
def test_each_backend_keeps_the_contracts_defaults(package, module, function):
    """A default the contract gives (``repeats=3`` of a step breakdown, ``top=10`` operations) is the same in
    every back-end, so the frameworks are measured alike when the caller leaves it out."""
    found = _defined(package, module)[function]
    protocol = CONTRACT.get(module) or OPTIONAL_CONTRACT[module]
    wanted = inspect.signature(getattr(protocol, function)).parameters
    args = found.args
    given = dict(
        zip([a.arg for a in args.args[len(args.args) - len(args.defaults) :]], args.defaults, strict=True)
    )
    given.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None})
    for name, parameter in wanted.items():
        if parameter.default is parameter.empty or name not in given:
            continue
        assert ast.literal_eval(given[name]) == parameter.default, (
            f"{package}.{module}.{function}({name}=...)"
        )


def test_the_contract_is_every_module_the_backend_object_loads():
    backend = Backend("torch", "torch")
    with pytest.raises(ValueError, match="not a module of the back-end contract"):
        backend.module("framework")
    calls = {n for n, v in vars(Backend).items() if inspect.isfunction(v) or isinstance(v, property)}
    # the object is the contract's one user: every method goes through a contract module
    source = inspect.getsource(Backend)
    for module in PROTOCOLS:
        assert f'self.module("{module}")' in source, module
    assert {"configure", "build_model", "create_trainer", "gpu_peak", "kernel_rates"} <= calls


def test_an_optional_module_is_used_where_a_backend_has_it_and_skipped_where_not():
    import sys

    # the benchmark's best-kernel yardstick is PyTorch's (medbench.bench.artifacts.KERNEL_FRAMEWORKS)
    assert ("torch", "kernels", "kernel_rates") in CASES
    assert Backend("jax", "jax").has_module("kernels") is False
    assert Backend("torch", "torch").has_module("kernels") is True
    before = set(sys.modules)

    def rate(fn, flops, sync):
        raise AssertionError("a back-end without kernels measured something")

    a = b = None
    assert Backend("jax", "jax").kernel_rates(a=a, b=b, conv_shape={}, rate=rate) == {}
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in ("jax", "flax", "torch")}


def test_a_framework_without_its_modules_says_what_to_install(monkeypatch):
    import importlib.util

    from medbench import frameworks
    from medbench.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(frameworks, "_BACKENDS", {})
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "flax" else real(n, *a))
    with pytest.raises(ConfigError, match="needs flax") as info:
        get_framework("jax")
    assert "medbench[jax]" in info.value.fix
    assert set(REQUIRES) == set(FRAMEWORKS)


FRAMEWORK_MODULES = {"torch", "torchvision", "jax", "jaxlib", "flax", "optax", "tensorflow", "keras"}


def test_shared_code_imports_no_framework():
    """Only a back-end's own package imports its framework (even lazily, inside a function): shared code
    reaches a framework through :class:`Backend`, so what it measures or runs stays the back-end's."""
    found = []
    for path in sorted(ROOT.parent.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).parts
        if parts[0] == "frameworks" and parts[1] in PACKAGES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{'/'.join(parts)}:{node.lineno} {n}" for n in names if n.split(".")[0] in FRAMEWORK_MODULES
            ]
    assert not found, f"shared code imports a framework: {found}"
