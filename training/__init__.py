"""CALM Studio's training package: SFT (with iw-SFT), GRPO in the code-executing engine, and
evaluation, each a TRL-style script launched as a subprocess by the GPU worker.

    python -m training.sft      --config training/configs/sft.yaml ...
    python -m training.grpo     --config training/configs/grpo_cort.yaml ...
    python -m training.evaluate --model PATH --problems a.jsonl b.jsonl --output_dir out/

Plain Python with no Django import. torch, transformers and trl are imported inside each
entry point's ``main`` (and by ``training.callbacks``), so ``import training`` stays light.
See README.md here for the data formats, the metrics-file events and the scale-out notes.
"""

from __future__ import annotations
