"""Session fixtures: one worker process per framework and plan, run only when a test asks for it.

The PyTorch job runs first (it makes the reference weights); the JAX and Keras jobs then load those weights,
side by side. Three processes cover the fast tests, three more the slow ones, one per framework the
runtime test. Keras on JAX and torch (``keras-jax``, ``keras-torch``) run the smallest fast tasks in the
default suite and the rest of the fast plan in a slow job of their own (``plan.in_default_for_keras_backends``);
a test that needs one of those tasks is marked slow here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.frameworks import plan
from tests.frameworks.harness import JobResult, run_job, run_jobs

OTHERS = ("jax", "keras", *plan.KERAS_BACKENDS)


def marker(framework: str) -> str:
    """The pytest marker of a framework (``keras-jax`` -> ``keras_jax``)."""
    return framework.replace("-", "_")


def _task_id(item: pytest.Item) -> str | None:
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    if "case" in params:
        return params["case"].id
    return params["spec"]["id"] if "spec" in params else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of keras-jax/keras-torch on tasks outside their default set are slow (before ``-m`` selects)."""
    for item in items:
        params = getattr(item, "callspec", None)
        framework = params.params.get("framework") if params else None
        if framework in plan.KERAS_BACKENDS:
            task = _task_id(item)
            if task is not None and not plan.in_default_for_keras_backends(task):
                item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("frameworks")


@pytest.fixture(scope="session")
def checkpoints(workdir) -> Path:
    path = workdir / "checkpoints"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def fast_arrays() -> dict:
    return {
        **plan.inputs([*plan.FAST_CASES, plan.WEIGHTS_CASE]),
        **plan.train_inputs(),
        **plan.optimizer_inputs(),
    }


def _task_ids() -> list[str]:
    return [c.id for c in plan.FAST_CASES] + [t["id"] for t in plan.train_cases(slow=False)] + ["weights"]


@pytest.fixture(scope="session")
def reference(workdir, checkpoints, fast_arrays) -> JobResult:
    """The PyTorch job: calibrated reference weights, logits, training steps, checkpoints on disk."""
    tasks = [
        *plan.model_tasks(plan.FAST_CASES, reference=True),
        *plan.train_tasks(reference=True),
        plan.weights_task(checkpoints, reference=True),
        *plan.optimizer_tasks(),
    ]
    return run_job("torch", workdir / "torch", tasks, fast_arrays)


def _wanted(session: pytest.Session, frameworks: tuple[str, ...], *, slow: bool) -> list[str]:
    """The frameworks some selected test needs (by marker), so a ``-m jax`` run starts no Keras job."""
    wanted = set()
    for item in session.items:
        if (item.get_closest_marker("slow") is not None) != slow or item.get_closest_marker(
            "skip"
        ) is not None:
            continue
        wanted.update(fw for fw in frameworks if item.get_closest_marker(marker(fw)) is not None)
    return [fw for fw in frameworks if fw in wanted]


@pytest.fixture(scope="session")
def ported_jobs(request, workdir, checkpoints, fast_arrays, reference) -> dict[str, JobResult]:
    """The JAX and Keras jobs, run side by side: the reference weights loaded, everything repeated."""
    tasks = [
        *plan.model_tasks(plan.FAST_CASES, reference=False),
        *plan.train_tasks(reference=False),
        plan.weights_task(checkpoints, reference=False),
        *plan.optimizer_tasks(),
    ]
    arrays = {**fast_arrays, **plan.reference_weights(reference, _task_ids())}
    # a slow test of a Keras backend may read its default tasks too (the initialisation tests read
    # simple_cnn's beside the ResNets'), so a slow run of those needs this job as well
    wanted = {
        *_wanted(request.session, OTHERS, slow=False),
        *_wanted(request.session, plan.KERAS_BACKENDS, slow=True),
    }
    frameworks = [fw for fw in OTHERS if fw in wanted]
    return run_jobs({fw: (workdir / fw, _tasks_of(fw, tasks, default=True), arrays) for fw in frameworks})


def _tasks_of(framework: str, tasks: list[dict], *, default: bool) -> list[dict]:
    """A Keras backend's share of the fast plan: its default tasks, or (``default=False``) the others."""
    if framework not in plan.KERAS_BACKENDS:
        return tasks
    return [t for t in tasks if plan.in_default_for_keras_backends(t["id"]) == default]


@pytest.fixture(scope="session")
def ported_extra_jobs(request, workdir, checkpoints, fast_arrays, reference) -> dict[str, JobResult]:
    """keras-jax and keras-torch on the fast plan's larger cases (slow tests only), side by side."""
    tasks = [
        *plan.model_tasks(plan.FAST_CASES, reference=False),
        *plan.train_tasks(reference=False),
    ]
    arrays = {**fast_arrays, **plan.reference_weights(reference, _task_ids())}
    frameworks = _wanted(request.session, plan.KERAS_BACKENDS, slow=True)
    return run_jobs(
        {fw: (workdir / f"{fw}_extra", _tasks_of(fw, tasks, default=False), arrays) for fw in frameworks}
    )


def job_of(request, framework: str, task_id: str) -> JobResult:
    """The job that ran ``task_id`` in ``framework`` (a Keras backend's slow job for its larger cases)."""
    if framework in plan.KERAS_BACKENDS and not plan.in_default_for_keras_backends(task_id):
        return request.getfixturevalue("ported_extra_jobs")[framework]
    return request.getfixturevalue("ported_jobs")[framework]


@pytest.fixture
def job_for(request):
    """``job_for(framework, task_id)``: :func:`job_of` for tests that read several tasks of one framework."""
    return lambda framework, task_id: job_of(request, framework, task_id)


@pytest.fixture(scope="session")
def jax_job(ported_jobs) -> JobResult:
    return ported_jobs["jax"]


@pytest.fixture(scope="session")
def keras_job(ported_jobs) -> JobResult:
    return ported_jobs["keras"]


@pytest.fixture
def ported(request) -> JobResult:
    """The job of the framework a test is parametrised with (``framework``: jax, keras, keras-jax ...) that
    ran the test's case."""
    framework = request.getfixturevalue("framework")
    task = _task_id(request.node)
    if task is None:
        return request.getfixturevalue("ported_jobs")[framework]
    return job_of(request, framework, task)


# ---- slow plan ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slow_arrays() -> dict:
    return {**plan.inputs(plan.SLOW_CASES, seed=2), **plan.train_inputs()}


def _slow_tasks(*, reference: bool) -> list[dict]:
    return [
        *plan.model_tasks(plan.SLOW_CASES, reference=reference),
        *plan.train_tasks(reference=reference, slow=True),
    ]


@pytest.fixture(scope="session")
def slow_reference(workdir, slow_arrays) -> JobResult:
    return run_job("torch", workdir / "torch_slow", _slow_tasks(reference=True), slow_arrays)


@pytest.fixture(scope="session")
def ported_slow_jobs(request, workdir, slow_arrays, slow_reference) -> dict[str, JobResult]:
    ids = [c.id for c in plan.SLOW_CASES] + [t["id"] for t in plan.train_cases(slow=True)]
    arrays = {**slow_arrays, **plan.reference_weights(slow_reference, ids)}
    frameworks = _wanted(request.session, OTHERS, slow=True)
    tasks = _slow_tasks(reference=False)
    return run_jobs({fw: (workdir / f"{fw}_slow", tasks, arrays) for fw in frameworks})


@pytest.fixture(scope="session")
def jax_slow_job(ported_slow_jobs) -> JobResult:
    return ported_slow_jobs["jax"]


@pytest.fixture(scope="session")
def keras_slow_job(ported_slow_jobs) -> JobResult:
    return ported_slow_jobs["keras"]


@pytest.fixture
def ported_slow(request) -> JobResult:
    return request.getfixturevalue("ported_slow_jobs")[request.getfixturevalue("framework")]
