"""The packed file: its seal, its strict reader and the schema of models and DDNNs."""
