"""Corpora and labels: the AV+EC 2015 / RECOLA and Aff-Wild2 layouts, label timing, fill policy, label-shift fit."""
