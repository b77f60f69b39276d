"""What the tests share, importable as `support.<module>` (tests/ is on sys.path through
its conftest): each constant, runner and reader defined once.

- clitools: run a command in-process or as a subprocess, digest a tree, an installed env.
- experiments: experiment folders written by hand (trials, results, replicates).
- hostile: damaged and malicious inputs (corrupt files, billion laughs, bad checkpoints).
- postgres: a PostgreSQL server the test starts itself.
- raycluster: a multi-process local Ray cluster with its own ports and temp dirs.
- runs: a trainer run's metrics.
- searches: real `collatz_ray.tune` searches as subprocesses, and readers of their files.
- width: what a person reads from a command: lines over 120 columns, Python reprs, text unwrapped.
"""
