"""Statistics that say whether a difference between two frameworks is real: framework-free (numpy, scipy,
statsmodels only).

- :mod:`~medbench.stats.seeds`: paired over seeds (same seed = same start, batches and noise): the mean
  difference with a t interval, TOST equivalence within a margin, a verdict, and the seeds a verdict needs.
- :mod:`~medbench.stats.images`: paired on the same test images: McNemar's exact test for ACC, DeLong's test
  for the official (macro one-vs-rest) AUC, a paired bootstrap for balanced ACC and macro-F1 (a package: one
  module per test).
- :mod:`~medbench.stats.speed`: ratios of timings with a Welch interval on their logarithms.
- :mod:`~medbench.stats.predictions`: the per-sample test predictions every training run stores.
- :mod:`~medbench.stats.pairs`: all of it for every pair of frameworks in a set of stored runs;
  :mod:`~medbench.stats.latency`: inference latency between frameworks from the benchmark's rows;
  :mod:`~medbench.stats.rows`: both as plain rows for the CLI's tables and the report.
"""
