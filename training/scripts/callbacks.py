"""The TrainerCallback shared by SFT and GRPO: metrics events, graceful cancel, and the
resolved config beside every checkpoint."""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from .runtime import CancelToken, MetricsWriter, save_config

# Trainer log keys → the names the metrics file promises (first match wins).
_METRIC_KEYS = {
    "loss": ("loss",),
    "learning_rate": ("learning_rate",),
    "grad_norm": ("grad_norm",),
    "reward": ("reward",),
    "reward_std": ("reward_std",),
    "completion_length": ("completions/mean_length",),
    "code_calls": ("rollout/code_calls",),
    "failed_code_calls": ("rollout/failed_code_calls",),
    "interpreter_tokens": ("rollout/interpreter_tokens",),
    "mean_token_accuracy": ("mean_token_accuracy",),
    "iw_weight_max": ("iw/weight_max",),
    "kl": ("kl",),
}
_SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second")


def _any_rank(flag: bool, args) -> bool:
    """True on every rank when any rank has it: all ranks must stop at the same step, or the
    checkpoint's collectives hang (a launcher may signal only some processes)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    import torch

    t = torch.tensor([1 if flag else 0], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def pick_metrics(logs: dict[str, Any]) -> dict[str, Any]:
    """The promised metric names found in a Trainer log dict."""
    out = {}
    for name, keys in _METRIC_KEYS.items():
        for key in keys:
            if key in logs:
                out[name] = logs[key]
                break
    return out


class CalmCallback(TrainerCallback):
    """Writes ``step`` / ``log`` / ``eval`` / ``checkpoint`` events to ``metrics`` (one
    ``step`` event per optimizer step, with the step's metrics when the Trainer logged them),
    stops the run with a checkpoint when ``cancel`` is set, and saves ``config`` as
    ``calm_config.yaml`` into every checkpoint folder."""

    def __init__(
        self,
        metrics: MetricsWriter,
        cancel: CancelToken | None = None,
        config: dict[str, Any] | None = None,
        *,
        kind: str = "",
        meta: dict[str, Any] | None = None,
    ):
        self.metrics = metrics
        self.cancel = cancel or CancelToken()
        self.config = config or {}
        self.kind = kind
        self.meta = meta or {}
        self._pending_step: int | None = None
        self.stopped_for_cancel = False
        self.checkpoints: list[str] = []

    # --- helpers ----------------------------------------------------------------------------

    def _base(self, state) -> dict[str, Any]:
        return {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch}

    def _flush_step(self, state, metrics: dict[str, Any] | None = None) -> None:
        if self._pending_step is None:
            return
        fields = self._base(state)
        fields["step"] = self._pending_step
        fields.update(metrics or {})
        if state.is_world_process_zero:
            self.metrics.emit("step", **fields)
        self._pending_step = None

    # --- Trainer events -----------------------------------------------------------------------

    def on_step_begin(self, args, state, control, **kwargs):
        self._flush_step(state)

    def on_step_end(self, args, state, control, **kwargs):
        self._pending_step = state.global_step
        if _any_rank(self.cancel.cancelled, args) and not self.stopped_for_cancel:
            # Stop after this step, saving a checkpoint first (Trainer saves, then stops).
            control.should_save = True
            control.should_training_stop = True
            self.stopped_for_cancel = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if state.is_world_process_zero:
            self.metrics.emit("log", **self._base(state), logs=logs)
        is_eval = any(k.startswith("eval_") for k in logs)
        is_summary = any(k in logs for k in _SUMMARY_KEYS)
        if not is_eval and not is_summary:
            self._flush_step(state, pick_metrics(logs))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero:
            self.metrics.emit("eval", **self._base(state), metrics=dict(metrics or {}))

    def on_save(self, args, state, control, **kwargs):
        self._flush_step(state)
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.is_world_process_zero:
            if os.path.isdir(path):
                save_config(path, self.config, kind=self.kind, step=state.global_step, **self.meta)
            self.checkpoints.append(path)
            self.metrics.emit("checkpoint", **self._base(state), path=path)

    def on_train_end(self, args, state, control, **kwargs):
        self._flush_step(state)
