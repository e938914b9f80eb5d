"""`python -m glue_runner.cli` with a probe on each rank, for tests/test_distributed.py.

    torchrun --standalone --nproc-per-node 2 tests/ddp_probe.py PROBE_DIR <glue-run flags>

The product is not changed: the probe wraps run.train and run.predict
from outside, then runs the CLI module as `-m` would. Each rank writes
PROBE_DIR/rank<N>.json with a hash of its weights before and after training,
and, for every distributed prediction, whether it equals the same model's
prediction made by this process alone, in the same precision (so the gathered
shards are complete, in place, and counted once). With PROBE_SIGTERM_AT_STEP=N
each rank sends itself SIGTERM after its N-th optimizer step.
"""

import hashlib
import json
import os
import runpy
import signal
import sys
from pathlib import Path

import numpy as np

from glue_runner import run
from glue_runner.train import Runtime

probe_dir = Path(sys.argv.pop(1))
report = {"rank": int(os.environ["RANK"]), "predictions": []}
real_train, real_predict = run.train, run.predict


def weights_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train(model, *args, **kwargs):
    stop_at = int(os.environ.get("PROBE_SIGTERM_AT_STEP", "0"))  # each rank signals itself, as a cluster would
    if stop_at:
        inner, steps = kwargs["report"], []

        def signal_at_step(step_report):
            inner(step_report)
            steps.append(step_report)
            if len(steps) == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)

        kwargs["report"] = signal_at_step
    report["before"] = weights_hash(model)
    stats = real_train(model, *args, **kwargs)
    report["after"] = weights_hash(model)
    return stats


def predict(model, dataset, cfg, rt, *, pad_id, on_batch=None, **read):
    gathered = real_predict(model, dataset, cfg, rt, pad_id=pad_id, on_batch=on_batch, **read)
    alone = real_predict(model, dataset, cfg, Runtime(rt.device, amp_dtype=rt.amp_dtype), pad_id=pad_id, **read)
    report["predictions"].append({"rows": len(dataset), "equal_to_one_process": bool(np.array_equal(gathered, alone))})
    return gathered


run.train, run.predict = train, predict
try:
    runpy.run_module("glue_runner.cli", run_name="__main__", alter_sys=True)
finally:
    (probe_dir / f"rank{report['rank']}.json").write_text(json.dumps(report))
