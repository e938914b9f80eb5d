"""glue-runner: fine-tune and evaluate BERT-family encoders on GLUE."""

__version__ = "0.1.0"
