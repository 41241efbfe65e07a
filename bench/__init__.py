"""Benchmarks: ``make bench`` runs them all and ends with one ``name: value unit`` line
per figure, so runs can be compared over time."""
