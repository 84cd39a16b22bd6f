"""Statistics and reports over the runs of a sweep: per-game tests (``stats``), rliable
aggregates (``aggregate``), Atari reference scores, the comparison itself (``comparison``), plots
and the Markdown report. Imports neither torch nor SB3."""
