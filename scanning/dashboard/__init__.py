"""The web dashboard: server-rendered HTML pages over the store, served by the function app.

``pages.handle`` takes a parsed request (``DashboardRequest``) and returns the page
(``DashboardResponse``); ``scanning.functions.dashboard`` adapts it to an HTTP function.
No script or style is fetched from anywhere, so the dashboard works air-gapped.
"""
