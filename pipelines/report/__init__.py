"""The results store as one static HTML page: every chart inline (SVG or PNG data), no script, no network.

page.py assembles the page from a registry of sections; each section module
(training, leaderboard, per_class, confusion, retrieval, distances, ingest)
reads named queries from `sql/queries/` and returns an HTML fragment, or a
"no runs yet" note when the store holds nothing for it. html.py holds the
markup helpers and turns matplotlib figures into inline SVG.
"""
