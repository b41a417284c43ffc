"""Session fixtures: one worker process per framework and plan, run only when a test asks for it.

The PyTorch job runs first (it makes the reference weights); the JAX and Keras jobs then load those weights,
side by side. Three processes cover the fast tests, three more the slow ones, one per framework the
runtime test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.frameworks import plan
from tests.frameworks.harness import JobResult, run_job, run_jobs

OTHERS = ("jax", "keras")


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
        wanted.update(fw for fw in frameworks if item.get_closest_marker(fw) is not None)
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
    frameworks = _wanted(request.session, OTHERS, slow=False)
    return run_jobs({fw: (workdir / fw, tasks, arrays) for fw in frameworks})


@pytest.fixture(scope="session")
def jax_job(ported_jobs) -> JobResult:
    return ported_jobs["jax"]


@pytest.fixture(scope="session")
def keras_job(ported_jobs) -> JobResult:
    return ported_jobs["keras"]


@pytest.fixture
def ported(request) -> JobResult:
    """The job of the framework a test is parametrised with (``framework`` = "jax" or "keras")."""
    return request.getfixturevalue(f"{request.getfixturevalue('framework')}_job")


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
    return request.getfixturevalue(f"{request.getfixturevalue('framework')}_slow_job")
