"""Annotating videos: one face file's per-frame table (``table``), and a folder or sheet of thousands
of videos in batches (``outcomes``: what is done; ``batches``: the plan, rounds and batch jobs;
``commands``: align-batch, annotate-batch, annotate-summary). docs/design.md, "Annotating videos".
"""
