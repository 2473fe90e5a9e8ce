"""Reading other frameworks' trained models (nnU-Net v2) into segkit model folders."""
