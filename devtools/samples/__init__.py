"""The sample-telemetry generator behind ``python -m devtools.make_samples``, in parts:
``catalog`` (the estate), ``device`` (rows and command lines), ``benign`` (the ordinary day),
``attacks`` (each device's scenario with the attacks and hard negatives), ``writer`` (files)."""
