"""A spot worker taken back mid-search: on a real two-node Ray cluster on this machine
(a head with no CPUs for trials, as in cluster/*.yaml, and a worker node with the CPUs and
a `spot_worker` resource), the test SIGKILLs every process of the worker node (its
raylet, its workers, the trial's process) while a trial is mid-run, then starts a
replacement node, as an autoscaler would. The search goes on there from each trial's
last checkpoint (Tune's FailureConfig restarts the trial): no report lost or repeated,
the Optuna study agrees, and `collatz_ray.results` reads the experiment as complete."""

from __future__ import annotations

import os
import signal
import subprocess

from support.clitools import results_trials
from support.raycluster import RAY, LocalCluster, free_port
from support.searches import (
    TUNE,
    Search,
    assert_increasing,
    epochs_by_trial,
    read_reports,
    trial_dirs,
    trial_states,
    wait_for,
    worker_reports,
    write_space,
)

EPOCHS, EVERY = 200, 20


def test_a_search_survives_losing_the_node_its_trials_run_on(tmp_path, eval_csv):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(HOME=str(tmp_path / "home"), RAY_AUTH_MODE="token")
    subprocess.run(
        [RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120
    )
    space = write_space(
        tmp_path / "spot.yaml",
        budget={"num_samples": 2, "epochs": EPOCHS, "eval_interval": EVERY, "grace_epochs": EPOCHS},
        parameters={"lookahead": {"values": [5, 10]}},
    )
    cluster = LocalCluster(port=free_port(), env=env)
    search = None
    try:
        cluster.start_head(num_cpus=0)
        spot = cluster.add_node(num_cpus=2, resources={"spot_worker": 1})
        (spot_id,) = cluster.node_ids_with("spot_worker")
        search = Search(
            tmp_path,
            "spot",
            "--space",
            str(space),
            "--address",
            "auto",
            "--storage",
            str(tmp_path / "store"),
            "--shared-storage",
            "--name",
            "spot",
            "--eval-csv",
            str(eval_csv),
            "--cpus-per-trial",
            "1",
            "--max-concurrent",
            "2",
            command=TUNE,
            env={**env, "RAY_ADDRESS": cluster.address},
        )
        experiment = tmp_path / "store" / "spot"
        # Mid-run for sure: a trial with a checkpointed report and more to do is frozen
        # (SIGSTOP), then its whole node is killed.
        frozen_tid = wait_for(
            lambda: _freeze_mid_run(experiment, lambda: cluster.node_processes(spot)),
            timeout=600,
            what="a trial with a checkpoint, mid-run",
            alive=search,
        )
        killed = cluster.kill_node(spot)
        assert killed, "no process of the spot node was found"
        cluster.add_node(num_cpus=2, resources={"spot_worker": 1})  # the replacement capacity
        # Ray may list the killed node as alive until its health checks fail: the
        # replacement is the spot node that is not the lost one.
        replacement_id = wait_for(
            lambda: next(iter(cluster.node_ids_with("spot_worker") - {spot_id}), None),
            timeout=120,
            what="the replacement node",
            alive=search,
        )
        assert search.wait(timeout=600) == 0, search.stderr()[-3000:]
    finally:
        if search is not None:
            search.cleanup()
        cluster.stop()

    assert replacement_id != spot_id
    assert set(trial_states(experiment).values()) == {"TERMINATED"}, trial_states(experiment)
    epochs = epochs_by_trial(experiment)
    assert_increasing(epochs)
    for tid, seq in epochs.items():
        assert seq == list(range(EVERY, EPOCHS + 1, EVERY)), (
            f"trial {tid}: evaluations lost or repeated: {seq}"
        )
    # The frozen trial ran on the lost node, then went on on the replacement, from a
    # checkpoint rather than from its start.
    nodes = [r["node_id"] for r in read_reports(trial_dirs(experiment)[frozen_tid] / "result.json")]
    moved = nodes.index(replacement_id)
    assert moved > 0 and set(nodes[:moved]) == {spot_id} and set(nodes[moved:]) == {replacement_id}, nodes

    import optuna

    study = optuna.load_study(study_name="spot", storage=f"sqlite:///{experiment / 'optuna.db'}")
    by_tune = {t.user_attrs["tune_trial_id"]: t for t in study.trials if not t.user_attrs.get("orphaned")}
    assert set(by_tune) == set(epochs), (sorted(by_tune), sorted(epochs))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in by_tune.values()), study.trials
    assert sorted(by_tune[frozen_tid].intermediate_values) == list(range(EVERY, EPOCHS + 1, EVERY))

    trials = results_trials(experiment)
    assert sorted(trials) == sorted(epochs)
    assert all(t["status"] == "TERMINATED" and not t["error"] for t in trials.values()), trials
    assert trials[frozen_tid]["recovered_from"], trials[frozen_tid]


def _freeze_mid_run(experiment, node_processes) -> str | None:
    """SIGSTOP the process of a trial that has a checkpointed report, has more to do, and
    runs among `node_processes()`; its id, or None while there is none. (The trial's
    processes are the spot node's, not the search driver's: support.searches's
    freeze_a_trial_in_flight looks among the driver's.)"""
    for tid, reports in worker_reports(experiment).items():
        if not reports or reports[-1]["epoch"] >= EPOCHS:
            continue
        pid = reports[-1]["worker_pid"]
        if pid not in node_processes():
            continue
        os.kill(pid, signal.SIGSTOP)
        now = worker_reports(experiment).get(tid) or []
        if now and now[-1]["epoch"] < EPOCHS:
            return tid
        os.kill(pid, signal.SIGCONT)  # it finished in between
    return None
