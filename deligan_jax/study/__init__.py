"""A study: named arms (a model plus config overrides) times seeds, trained, scored, tabulated.

``plan.py`` reads a study file and says each run's config and command; ``pinning.py``
pins a run to one core as the repeatable runs were; ``pool.py`` runs the commands over
worker processes; ``report.py`` tabulates the runs against a baseline arm (and others
named) and draws them.
The command line: :mod:`deligan_jax.cli.study`.
"""
