"""The node side: the namespace helper (`netns`) and the datapath (`datapath`).

Only this package imports pyroute2. The daemon (server, pool, store) lives beside it.
"""
