"""Running work in fresh processes: experiment grids, their trials and where they run.

Modules: :mod:`~medbench.orchestration.experiments` (experiment files and their grids),
:mod:`~medbench.orchestration.jobs` (a trial as a job), :mod:`~medbench.orchestration.runner` (one job in a
fresh worker process), :mod:`~medbench.orchestration.worker` (the worker's entry point,
``python -m medbench.orchestration.worker JOB.json``), :mod:`~medbench.orchestration.executors` (local and
Ray) and :mod:`~medbench.orchestration.runs` (a whole grid, skipping finished trials).
"""
