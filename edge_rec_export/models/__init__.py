"""edge_rec_export models: torch models, one per file with its config."""
