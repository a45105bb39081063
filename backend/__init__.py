"""Models, data pipeline, training and evaluation. torch and numpy; never bpy."""
