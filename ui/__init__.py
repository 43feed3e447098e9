"""Streamlit glue and Plotly figure builders between the pages and the pure-NumPy core.

Imports flow one way: ``pages -> ui -> bn_core``. Figure builders take arrays and return
``plotly.graph_objects.Figure``; the Streamlit-facing helpers (URL state, cached wrappers,
shared widgets) live here too so that the pages stay thin.
"""
