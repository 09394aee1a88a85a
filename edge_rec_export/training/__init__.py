"""edge_rec_export training: training loops, distillation, baselines and metrics."""
