"""What the GPU subprocess runs: SFT (with iw-SFT), GRPO in the code-executing engine, and
evaluation, each a TRL-style script, with their helpers (data, rewards, scoring, runtime).

    python -m training.scripts.sft      --config training/scripts/configs/sft.yaml ...
    python -m training.scripts.grpo     --config training/scripts/configs/grpo_cort.yaml ...
    python -m training.scripts.evaluate --model PATH --problems a.jsonl b.jsonl --output_dir out/

Plain Python with no Django import (the app in ``training/`` launches these, never imports the
entry points). torch, transformers and trl are imported inside each entry point's ``main`` (and
by ``callbacks``), so ``import training.scripts`` stays light. See training/README.md.
"""
