"""The only code that imports Ray: Ray's API churn touches this package and no other.

Shape of a search (Ray 2.60, Train V2):

    Tune driver ── Tuner(collatz_trial, OptunaSearch (TPE), ASHAScheduler)     tuner.py
        └─ one Tune function trial per config ── a TorchTrainer in local mode     trial.py
              └─ in the same process: collatz_ray.trainer.train(...), reporting    worker.py
                 every evaluation through tune.report with its checkpoint

cluster.py starts or joins Ray; callbacks.py holds what Tune is told to do besides;
tracker_callbacks.py (with mlflow_tracker.py and wandb_tracker.py) what it logs to trackers;
status.py prints the live status; interrupt.py turns Ctrl-C and SIGTERM into a clean
stop; probe.py measures what a trial costs (bench_search); scan_tasks.py runs a verify
scan's chunks as Ray tasks; _ray_private.py holds every private part of Ray they use. Why
things are as they are (lean trials in Train's local mode, loopback binding, token auth)
is told in docs/ray-notes.md.
"""

import os

# Quiet, safe defaults, set before Ray is imported: token auth on every cluster we start
# or join, no Train V2 migration chatter, no experiment-sync warnings on slow disks.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# The legacy reporter prints a compact status table with the columns we choose; the
# new output engine prints every metric of every trial.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
