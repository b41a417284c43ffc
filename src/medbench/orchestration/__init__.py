"""Running work in fresh processes: experiment grids, their trials and where they run.

Modules: :mod:`~medbench.orchestration.experiments` (experiment files and their grids),
:mod:`~medbench.orchestration.jobs` (a trial as a job), :mod:`~medbench.orchestration.worker` (the one child
process, ``python -m medbench.orchestration.worker JOB.json``, and its registry of job kinds),
:mod:`~medbench.orchestration.process` (its parent's side: starting it, and answered jobs),
:mod:`~medbench.orchestration.runner` (a recorded job: its row in the store, whatever happens to the child),
:mod:`~medbench.orchestration.executors` (local and Ray) and :mod:`~medbench.orchestration.runs` (a whole
grid, skipping finished trials).
"""
