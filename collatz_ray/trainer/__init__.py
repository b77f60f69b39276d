"""The trainer: one typed config, the model, training batches, the loss, the evaluation
metrics, checkpoints and the training loop. It knows nothing of Ray or of any tuner: its
only hook is the `on_evaluation` callback of `train`.

    from collatz_ray.trainer import TrainConfig, train
    metrics = train(TrainConfig(layers=(32, 32), epochs=300), run_dir=Path("runs/a"))
"""

from collatz_ray._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TrainConfig": "config",
        "LyapunovMLP": "model",
        "build_model": "model",
        "load_weights": "model",
        "BatchSampler": "data",
        "lyapunov_loss": "loss",
        "evaluate": "evaluation",
        "EvalSet": "evalset_csv",
        "load_evalset": "evalset_csv",
        "write_evalset": "evalset_csv",
        "ensure_default_evalset": "evalset_csv",
        "latest_checkpoint": "checkpoints",
        "load_checkpoint": "checkpoints",
        "read_weights": "checkpoints",
        "train": "loop",
        "TrainingDiverged": "loop",
        "resolve_device": "loop",
        "format_report": "text",
        "read_bank": "bank",
        "append_records": "bank",
        "new_record": "bank",
        "distinct": "bank",
    },
)

__all__ = [
    "BatchSampler",
    "EvalSet",
    "LyapunovMLP",
    "TrainConfig",
    "TrainingDiverged",
    "append_records",
    "build_model",
    "distinct",
    "ensure_default_evalset",
    "evaluate",
    "format_report",
    "latest_checkpoint",
    "load_checkpoint",
    "load_evalset",
    "load_weights",
    "lyapunov_loss",
    "new_record",
    "read_bank",
    "read_weights",
    "resolve_device",
    "train",
    "write_evalset",
]
