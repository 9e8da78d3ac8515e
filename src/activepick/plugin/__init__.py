"""napari layer: readers, writers, sample data, the dock widget. The only place that imports napari or Qt."""
