"""RunConfig: everything one run needs, built from the command line by cli.py."""

from dataclasses import asdict, dataclass
from pathlib import Path

# Used where neither a flag nor the task's recipe (tasks/*.yaml) sets a value:
# run_glue.py's defaults, so a bare glue-run behaves like the script people know.
DEFAULTS = {
    "learning_rate": 2e-5,
    "num_train_epochs": 3.0,
    "batch_size": 32,
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
}


@dataclass
class RunConfig:
    task: str
    model: str
    model_name: str | None = None  # how the model is named in results/ (default: from --model)
    # data: the Hub by default, else a GLUE folder, else the user's own files
    data_dir: Path | None = None
    train_file: Path | None = None
    validation_file: Path | None = None
    test_file: Path | None = None
    text_columns: tuple[str, ...] | None = None
    label_column: str = "label"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None
    max_seq_length: int = 128
    # optimisation: None means "the task's recipe, else DEFAULTS"
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    batch_size: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    eval_batch_size: int | None = None  # default: 4 x batch size (no gradients to hold)
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    auto_batch_size: bool = False  # on CUDA out-of-memory: halve each micro-batch, keep the effective batch
    seed: int = 42
    # hardware
    device: str = "auto"
    fp16: bool = False
    bf16: bool = False
    cuda_graphs: bool = True
    # outputs
    output_dir: Path | None = None
    results_dir: Path = Path("results")
    do_predict: bool = False
    save_model: bool = False
    cache_dir: Path | None = None
    logging_steps: int = 20
    # checkpoints (checkpoint.py): every save_steps steps and at each epoch end
    save_steps: int | None = None
    save_total_limit: int = 2
    resume: bool | None = None  # None: resume when a checkpoint with the same settings exists
    # loading
    ignore_mismatched_sizes: bool = False
    trust_remote_code: bool = False

    def resolved(self, recipe: dict) -> "RunConfig":
        """A copy with every unset hyper-parameter taken from the recipe or DEFAULTS."""
        values = asdict(self)
        for key, default in DEFAULTS.items():
            if values[key] is None:
                values[key] = type(default)(recipe.get(key, default))
        return RunConfig(**values)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
