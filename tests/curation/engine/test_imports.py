from __future__ import annotations

import subprocess
import sys


def test_it_imports_without_torch_django_httpx_or_vllm():
    code = (
        "import sys, curation.engine, curation.engine.backends.vllm_backend, "
        "curation.engine.serving.checkpoint_server\n"
        "heavy = [m for m in ('torch', 'transformers', 'httpx', 'django', 'vllm') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
