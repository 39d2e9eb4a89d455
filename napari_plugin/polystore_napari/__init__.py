"""npe2 napari plugin for polystore."""
