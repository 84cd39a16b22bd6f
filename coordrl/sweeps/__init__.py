"""The seed-sweep runner behind ``python -m coordrl.sweep`` (the CLI lives in
:mod:`coordrl.sweep`). Importing any of these modules imports neither torch nor SB3.

- :mod:`~coordrl.sweeps.definition`: what a sweep is (:class:`SweepDefinition`, :class:`RunSpec`),
  parsing seeds, timesteps and ``--set`` overrides, the sweep YAML file, :class:`SweepError`.
- :mod:`~coordrl.sweeps.layout`: the sweep directory (:class:`SweepDir`: ``manifest.json``,
  ``runs/``, ``logs/``, ``locks/``, ``failed/``) and :class:`RunLock`.
- :mod:`~coordrl.sweeps.attempt`: one ``coordrl.train`` process for one run
  (:class:`RunAttempt`, :class:`RunOutcome`) and the stop sequence (:class:`Stopper`).
- :mod:`~coordrl.sweeps.progress`: the live progress line (:class:`Progress`).
- :mod:`~coordrl.sweeps.local`: the local backend (a pool of training processes).
- :mod:`~coordrl.sweeps.ray_backend`: the Ray backend (Ray imported only when used).
- :mod:`~coordrl.sweeps.results`: the runs of a sweep as results (:func:`collect_runs`, what
  ``compare`` reads) and the end-of-sweep summary table.
"""
