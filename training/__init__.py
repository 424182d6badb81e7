"""sarmae-train: SARMAE pretraining and fine-tuning (configs, data readers, loops, metrics)."""
