"""The sections of bench/gpu.py, one module each, named as the section.

A section module has NAME, HEADING (printed before it runs, formatted with the sizes; None for
none), run(bench) -> None ("ran") or a status string ("skipped: ...", "error: ..."), and
summary(result), which prints its part of the closing summary. The shared pieces:
bench (sizes and the Bench context: device, synthetic chips on it, the CNN step), data
(synthetic chips and features), timing (timed loops, peak memory), environment.

Nothing here imports anything beyond torch, numpy and affectflow's torch-only modules.
"""
