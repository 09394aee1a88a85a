"""edge_rec_export data: data readers, input formats and click logs."""
