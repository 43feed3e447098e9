"""BatchNorm Lab's science: pure NumPy (plus scikit-learn's bundled data sets).

Never imports streamlit or plotly, so every function can be used from a notebook or a test
without a server. Every function that draws random numbers takes a ``seed`` (or a
``numpy.random.Generator``) and builds its own generator: there is no global seeding.
"""
