"""One module per model kind, each with a BaseModel subclass `MODEL` (registry.py lists them).

To add a kind: copy template_model.py to models/<kind>.py, fill it in, and add one ModelKind line to
registry.KINDS. `voxlift train <kind>`, the Train panel and (if it reconstructs) evaluate, reconstruct and the
add-on then know it.
"""
