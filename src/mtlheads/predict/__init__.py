"""The predict step: read and check inputs, run a model over them in file order, stream the predictions into
each task's file formats (``mode=predict`` is the recipe; ``docs/predict.md``)."""
