"""The studies of a result set, one module each: its pure table functions (DataFrames in, DataFrames
out), its verdict rules, and its report section (Markdown). :mod:`scadf_lib.report` orders the
sections; notebooks 04-08 read the results through these modules.

Units: MSE in m² (mean over points of the squared Euclidean error), distances in m.
"""
