"""SFT on token-level trajectories (CALM's golden set): only the Reasoner's own tokens are trained.

```bash
# the shipped recipe (full fine-tuning of the Reasoner), overridable on the command line
python -m training.scripts.sft --config training/scripts/configs/sft.yaml \
    --model_name_or_path /models/Qwen3-4B-Thinking-2507 \
    --train_file var/exports/golden.jsonl --output_dir var/runs/sft-1

# LoRA, iw-SFT, progress events for a worker to tail
python -m training.scripts.sft --config training/scripts/configs/sft.yaml \
    --model_name_or_path /models/Qwen3-4B-Thinking-2507 --train_file golden.jsonl \
    --use_peft --lora_r 32 --lora_alpha 64 --learning_rate 1e-4 \
    --iw_sft true --iw_w_max 16 --metrics_file var/runs/sft-2/metrics.jsonl \
    --output_dir var/runs/sft-2

# several GPUs
accelerate launch --config_file training/scripts/accelerate/zero2.yaml -m training.scripts.sft \
    --config training/scripts/configs/sft.yaml --train_file golden.jsonl --output_dir var/runs/sft-3
```

The data is pre-tokenized (``training/scripts/data.py``): ``input_ids`` + ``labels`` with -100 on
the prompt, on interpreter output and (when the export chose so) on hint tokens, or ``input_ids`` +
``token_tags`` from which labels are built here (``--train_on_hints``). TRL keeps a dataset's
``labels`` column as it is (no completion or assistant mask is recomputed; both are switched
off here); it only truncates to ``max_length``, which keeps ids and labels aligned.

``--iw_sft true`` weights each sequence by the clipped likelihood ratio of the current model to
a frozen reference (the starting model; with LoRA, the adapter switched off); see
``training/scripts/iw_sft.py`` for the exact form. A record's ``weight`` multiplies its loss in
both modes.

SIGTERM stops the run after the current step with a checkpoint and exits 0; the metrics file
(``--metrics_file`` or ``CALM_METRICS_FILE``) then ends with ``{"event": "done", "status":
"cancelled"}``. ``calm_config.yaml`` (the resolved config) is saved in ``output_dir`` and in
every checkpoint.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .data import load_sft_records
from .runtime import CancelToken, MetricsWriter, library_versions, resolved_config, run_training

log = logging.getLogger(__name__)


@dataclass
class SFTScriptArguments:
    """Data and CALM options of an SFT run (TRL's SFTConfig and ModelConfig hold the rest)."""

    train_file: str = field(
        default="", metadata={"help": "Token-level SFT JSONL (input_ids + labels or token_tags)."}
    )
    eval_file: str | None = field(default=None, metadata={"help": "Optional held-out JSONL."})
    train_on_hints: bool = field(
        default=True,
        metadata={"help": "For token_tags records: train hint tokens (tag 3) as the model's own."},
    )
    use_record_weights: bool = field(
        default=True, metadata={"help": "Multiply each record's loss by its `weight`."}
    )
    iw_sft: bool = field(default=False, metadata={"help": "Importance-weighted SFT."})
    iw_w_min: float = field(default=0.0, metadata={"help": "iw-SFT: lower clip of the weight."})
    iw_w_max: float = field(default=16.0, metadata={"help": "iw-SFT: upper clip of the weight."})
    iw_temperature: float = field(
        default=1.0, metadata={"help": "iw-SFT: w = exp(T * mean log-ratio)."}
    )
    iw_normalize: str = field(
        default="batch",
        metadata={"help": "iw-SFT: 'batch' (weights average 1 per micro-batch) or 'none'."},
    )
    metrics_file: str | None = field(
        default=None, metadata={"help": "Append JSON events here (default: $CALM_METRICS_FILE)."}
    )


def make_parser():
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser(
        (SFTScriptArguments, SFTConfig, ModelConfig), prog="python -m training.scripts.sft"
    )


def parse_args(argv: Sequence[str] | None = None):
    """``(script_args, training_args, model_args)`` from ``--config`` YAML + command line."""
    return make_parser().parse_args_and_config(list(argv) if argv is not None else None)


# --- the trainer ------------------------------------------------------------------------------


def _with_weights(base_collator):
    """Wrap TRL's collator so the batch also carries each record's ``weight``."""
    import torch

    def collate(examples):
        batch = base_collator(examples)
        if "weight" in examples[0]:
            batch["weight"] = torch.tensor(
                [float(e.get("weight", 1.0)) for e in examples], dtype=torch.float32
            )
        return batch

    return collate


@functools.cache
def trainer_class():
    """``CalmSFTTrainer``: TRL's SFTTrainer with per-sequence weights (record weights, iw-SFT).
    Built on first use so that importing this module does not import trl."""
    import torch
    from trl import SFTTrainer

    from .iw_sft import iw_sft_weights

    class CalmSFTTrainer(SFTTrainer):
        def __init__(self, *args, calm: SFTScriptArguments, ref_model=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.calm = calm
            self.ref_model = None
            if ref_model is not None:
                ref_model.eval().requires_grad_(False)
                if self.is_deepspeed_enabled:
                    from trl.models import prepare_deepspeed

                    self.ref_model = prepare_deepspeed(ref_model, self.accelerator)
                else:
                    self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
            # The weight column must survive `remove_unused_columns` and reach the batch.
            self.data_collator = _with_weights(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "weight"]

        def _reference_logps(self, model, inputs):
            """Summed log-prob of the trained tokens per sequence under the reference."""
            with torch.no_grad():
                if self.ref_model is not None:
                    out = self.ref_model(**inputs, fused_lm_head=True)
                else:  # LoRA: the base model is the reference
                    unwrapped = self.accelerator.unwrap_model(model)
                    with unwrapped.disable_adapter():
                        out = model(**inputs, fused_lm_head=True)
            return out.log_probs.sum(dim=1)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("weight", None)
            if not self.calm.use_record_weights:
                weight = None
            plain = weight is None or bool(torch.all(weight == 1.0))
            if not self.calm.iw_sft and plain:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return self._weighted_loss(model, inputs, weight, return_outputs, num_items_in_batch)

        def _weighted_loss(self, model, inputs, weight, return_outputs, num_items_in_batch):
            mode = "train" if self.model.training else "eval"
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            logp, mask = outputs.log_probs, outputs.label_mask  # (B, T-1), zero where ignored
            lengths = mask.sum(dim=1)
            if self.calm.iw_sft:
                w = iw_sft_weights(
                    logp.detach().sum(dim=1),
                    self._reference_logps(model, inputs),
                    lengths,
                    quality=weight,
                    w_min=self.calm.iw_w_min,
                    w_max=self.calm.iw_w_max,
                    temperature=self.calm.iw_temperature,
                    normalize=self.calm.iw_normalize,
                ).to(logp.device)
            else:
                w = weight.to(logp.device)
            num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = -(logp * w[:, None].to(logp.dtype)).sum() / torch.as_tensor(num_tokens).clamp(
                min=1
            )
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            # The metrics SFTTrainer.compute_loss would have logged, plus the weights.
            valid = lengths > 0
            n = mask.sum().clamp(min=1)
            self._metrics[mode]["entropy"].append((outputs.entropy.detach().sum() / n).item())
            self._metrics[mode]["mean_token_accuracy"].append((outputs.is_top1.sum() / n).item())
            if valid.any():
                self._metrics[mode]["iw/weight_mean"].append(w[valid].mean().item())
                self._metrics[mode]["iw/weight_max"].append(w[valid].max().item())
                self._metrics[mode]["iw/weight_min"].append(w[valid].min().item())
            if mode == "train" and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    return CalmSFTTrainer


def build_trainer(
    script_args: SFTScriptArguments,
    training_args,
    model_args,
    *,
    metrics: MetricsWriter | None = None,
    cancel: CancelToken | None = None,
):
    """The configured ``CalmSFTTrainer`` (not yet trained), with the CALM callback attached."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import get_peft_config, get_quantization_config

    from .callbacks import CalmCallback

    if not script_args.train_file:
        raise ValueError("--train_file is required")
    if training_args.assistant_only_loss:
        raise ValueError("assistant_only_loss does not apply: labels come with the data")
    if script_args.iw_normalize not in ("batch", "none"):
        raise ValueError("--iw_normalize is 'batch' or 'none'")
    padding_free = training_args.padding_free or training_args.packing
    if padding_free and (script_args.iw_sft or script_args.use_record_weights):
        if script_args.iw_sft:
            raise ValueError("iw-SFT needs one sequence per row: turn off packing/padding_free")
        log.warning("packing/padding_free: record weights are ignored")
        script_args.use_record_weights = False
    if (
        script_args.iw_sft
        and script_args.iw_normalize == "batch"
        and training_args.per_device_train_batch_size == 1
    ):
        log.warning(
            "iw-SFT with one sequence per micro-batch and --iw_normalize batch: every weight "
            "normalises to 1 (plain SFT). Use a larger batch or --iw_normalize none."
        )
    # The labels in the data are the loss mask: TRL must not build another one.
    training_args.completion_only_loss = False

    model_path = model_args.model_name_or_path
    tokenizer = AutoTokenizer.from_pretrained(
        model_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    vocab = len(tokenizer)
    train = load_sft_records(
        script_args.train_file, train_on_hints=script_args.train_on_hints, vocab_size=vocab
    )
    evaluation = None
    if script_args.eval_file:
        evaluation = Dataset.from_list(
            load_sft_records(
                script_args.eval_file, train_on_hints=script_args.train_on_hints, vocab_size=vocab
            )
        )

    model_init_kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    if training_args.model_init_kwargs:
        model_init_kwargs.update(training_args.model_init_kwargs)
    training_args.model_init_kwargs = model_init_kwargs
    peft_config = get_peft_config(model_args)

    ref_model = None
    if script_args.iw_sft and peft_config is None:
        ref_model = AutoModelForCausalLM.from_pretrained(model_path, **model_init_kwargs)
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(ref_model)

    config = resolved_config(script_args, training_args, model_args)
    callback = CalmCallback(
        metrics or MetricsWriter(None),
        cancel,
        config,
        kind="sft",
        meta=library_versions(),
    )
    trainer = trainer_class()(
        model=model_path,
        args=training_args,
        train_dataset=Dataset.from_list(train),
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=get_quantization_config(model_args),
        callbacks=[callback],
        calm=script_args,
        ref_model=ref_model,
    )
    trainer.calm_callback = callback
    return trainer


# --- the entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    return run_training("sft", build_trainer, args, metrics_file=args[0].metrics_file)


if __name__ == "__main__":
    sys.exit(main())
